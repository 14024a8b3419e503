"""Calling user functions the way the Python worker does, and reporting their failures like the host.

Async functions run on the event loop, sync ones on a worker thread (so a slow one holds up nothing
else); a failure is logged with the traceback from the user's own first frame, the frames of the
emulator and of the machinery between it and the user's code left out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import os
import threading
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from emulator.app._app_index import FunctionInfo
from emulator.functions._invocation_context import InvocationContext

logger = logging.getLogger("emulator.functions")


async def call_function(function: FunctionInfo, kwargs: dict[str, Any], context: InvocationContext) -> Any:
    """Async functions on the loop, sync ones on a worker thread (the worker's thread pool)."""
    if function.is_async:
        result = await function.user_function(**kwargs)
    else:

        def run() -> Any:
            context.thread_local_storage.invocation_id = context.invocation_id
            return function.user_function(**kwargs)

        result = await asyncio.to_thread(run)
    if inspect.isawaitable(result):
        result = await result
    return result


def function_directory(function: FunctionInfo, script_root: Path | None) -> str:
    """``context.function_directory``: v2 apps get the script root (``script_root``), v1 apps the
    function's own folder."""
    if script_root is not None:
        return str(script_root)
    code = getattr(inspect.unwrap(function.user_function), "__code__", None)
    return str(Path(code.co_filename).resolve().parent) if code is not None else ""


def log_function_failure(function: FunctionInfo, exc: BaseException) -> None:
    """The host's error line for a failed invocation, with the user's part of the traceback."""
    details = user_traceback(exc)
    logger.error(
        "Function '%s' failed: %s: %s%s",
        function.name,
        type(exc).__name__,
        exc,
        f"\n{details}" if details else "",
    )


# Frames of the emulator and of the machinery between it and the user's code, skipped when printing a
# user function's traceback.
_HOST_CODE_DIRS = tuple(
    str(Path(p).resolve().parent) + os.sep
    # emulator/functions/ -> every file of the emulator package.
    for p in (str(Path(__file__).resolve().parent), asyncio.__file__, concurrent.futures.__file__)
    if p is not None
)
_HOST_CODE_FILES = tuple(str(Path(m.__file__).resolve()) for m in (threading, contextlib) if m.__file__)


def _is_host_frame(filename: str) -> bool:
    with contextlib.suppress(OSError, ValueError):
        resolved = str(Path(filename).resolve())
        return resolved in _HOST_CODE_FILES or any(resolved.startswith(d) for d in _HOST_CODE_DIRS)
    return False


def user_traceback(exc: BaseException) -> str:
    """The traceback of a user function's exception from its first frame in user code ("" if none)."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and _is_host_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is None:
        return ""
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()
