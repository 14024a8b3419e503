"""Running a triggered function the way the host and the worker do, for every non-HTTP trigger."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from emulator.app._app_index import FunctionInfo
from emulator.functions._bindings import Bindings, TriggerValue
from emulator.functions._invocations import InvocationLog
from emulator.http._http_triggers import InvocationContext, _user_traceback

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


class FunctionRunner:
    """Binds, invokes and flushes one function invocation; failures are logged, not raised."""

    def __init__(
        self,
        bindings: Bindings,
        invocations: InvocationLog,
        script_root: Path | None,
        extension_input: Callable[[FunctionInfo, Mapping[str, Any]], Any],
    ) -> None:
        self.bindings = bindings
        self._invocations = invocations
        self._script_root = script_root
        self._extension_input = extension_input

    def _function_directory(self, function: FunctionInfo) -> str:
        # v2 apps: the worker reports the script root; v1 apps: the function's own folder.
        if self._script_root is not None:
            return str(self._script_root)
        code = getattr(inspect.unwrap(function.user_function), "__code__", None)
        return str(Path(code.co_filename).resolve().parent) if code is not None else ""

    async def run(self, function: FunctionInfo, trigger: TriggerValue, reason: str) -> bool:
        """True when the function and its output bindings succeeded."""
        try:
            with self._invocations.invoke(function.name, reason=reason) as record:
                context = InvocationContext(
                    invocation_id=record.invocation_id,
                    function_name=function.name,
                    function_directory=self._function_directory(function),
                )

                def extension_input(binding: Mapping[str, Any]) -> Any:
                    return self._extension_input(function, binding)

                call = await self.bindings.prepare(
                    function, trigger, context, extension_input=extension_input
                )
                result = await call_function(function, call.kwargs, context)
                await self.bindings.finish(call, result)
            return True
        except Exception as exc:
            details = _user_traceback(exc)
            logger.error(
                "Function '%s' failed: %s: %s%s",
                function.name,
                type(exc).__name__,
                exc,
                f"\n{details}" if details else "",
            )
            return False
