"""The task hub replay check from tests: do the instances in flight still replay on this code?"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from emulator.durable._history import OrchestrationStatus
from emulator.testing._replay import app_index
from emulator.tools._hub_replay import DEFAULT_CONCURRENCY, HubCheck
from emulator.tools._hub_replay_cli import check_app_hub

T = TypeVar("T")


def check_hub_replays(
    task_hub: str,
    *,
    script_root: str | os.PathLike[str] | None = None,
    connection: str | None = None,
    statuses: Iterable[OrchestrationStatus | str] | None = None,
    instance_id_prefix: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> HubCheck:
    """Replay every instance of ``task_hub`` not finished against the app at ``script_root``
    (default: the current directory), reading only. ``connection`` is a setting name or a
    connection string (default: the app's ``AzureWebJobsStorage``, as the host reads it)."""
    root = Path(script_root or Path.cwd()).resolve()
    index = app_index(root)
    wanted = None if statuses is None else [OrchestrationStatus[str(getattr(s, "name", s))] for s in statuses]
    return _run_apart(
        lambda: check_app_hub(
            root,
            task_hub,
            index,
            connection=connection,
            statuses=wanted,
            instance_id_prefix=instance_id_prefix,
            concurrency=concurrency,
        )
    )


def assert_hub_replays(
    task_hub: str,
    *,
    script_root: str | os.PathLike[str] | None = None,
    connection: str | None = None,
    statuses: Iterable[OrchestrationStatus | str] | None = None,
    instance_id_prefix: str | None = None,
) -> HubCheck:
    """:func:`check_hub_replays`, failing the test with every diff when an instance would break."""
    check = check_hub_replays(
        task_hub,
        script_root=script_root,
        connection=connection,
        statuses=statuses,
        instance_id_prefix=instance_id_prefix,
    )
    if not check.ok:
        raise AssertionError("\n".join([*(c.format() for c in check.broken), check.summary()]))
    return check


def _run_apart(check: Callable[[], T]) -> T:
    """``check()`` (which runs an event loop of its own), on a thread when this one runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return check()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = check()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="hub-replay")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    result: T = outcome["value"]
    return result
