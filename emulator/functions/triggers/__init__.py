"""Timer, queue and blob triggers: the listeners the host starts next to HTTP and durable functions.

A function whose trigger cannot be set up (a bad schedule, a missing connection setting) is logged as
in error and the rest of the app runs, as on the Functions host. Triggers of types the emulator does
not provide are listed as not emulated and never fire.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from emulator.app._app_index import AppIndex, FunctionInfo
from emulator.app._trigger_kinds import not_emulated_reason
from emulator.functions._accounts import ConnectionSettingError, StorageAccounts
from emulator.functions._binding_expressions import BindingExpressionError, resolve_app_settings
from emulator.functions._bindings import Bindings
from emulator.functions._invocations import InvocationLog
from emulator.functions.triggers import hostid
from emulator.functions.triggers._runner import FunctionRunner
from emulator.functions.triggers.blob import (
    POISON_QUEUE,
    BlobFunction,
    BlobPathPattern,
    BlobsOptions,
    BlobTriggers,
    blob_trigger_queue_name,
)
from emulator.functions.triggers.queue import (
    QueueListener,
    QueuesOptions,
    ReceivedMessage,
    poison_queue_name,
    queue_trigger_value,
    queues_options,
)
from emulator.functions.triggers.schedules import ScheduleError, create_schedule
from emulator.functions.triggers.timer import StorageScheduleMonitor, TimerListener

logger = logging.getLogger("emulator.triggers")

_QUEUE_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")

__all__ = ["TriggerListeners", "queues_options"]


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


class TriggerListeners:
    """Starts and stops every timer, queue and blob listener of one app."""

    def __init__(
        self,
        *,
        index: AppIndex,
        host_json: Mapping[str, Any],
        accounts: StorageAccounts,
        bindings: Bindings,
        invocations: InvocationLog,
        extension_input: Callable[[FunctionInfo, Mapping[str, Any]], Any],
        blob_scan_interval: timedelta,
    ) -> None:
        self._index = index
        self._accounts = accounts
        self._options: QueuesOptions = queues_options(host_json)
        self._blobs_options = BlobsOptions.read(host_json)
        v2 = getattr(index, "model", "v2") == "v2"
        self._runner = FunctionRunner(
            bindings, invocations, index.script_root if v2 else None, extension_input
        )
        self._blob_scan_interval = blob_scan_interval
        self.host_id = hostid.host_id(index.script_root)
        self._timers: list[TimerListener] = []
        self._queues: dict[tuple[str, str], list[QueueListener]] = {}
        self._blob_triggers: BlobTriggers | None = None
        #: Functions whose trigger never fires here, with the reason.
        self.not_emulated: dict[str, str] = {}
        #: Functions whose trigger could not be set up, with the error.
        self.errors: dict[str, str] = {}
        bindings.queue_written.append(self._queue_written)
        bindings.blob_written.append(self._blob_written)

    async def start(self) -> None:
        blob_functions: list[BlobFunction] = []
        for function in self._index.functions:
            reason = not_emulated_reason(function.trigger)
            if reason is not None:
                self.not_emulated[function.name] = reason
                logger.warning(
                    "Function '%s' is not emulated (%s): it is loaded but never triggered. The rest of "
                    "the app runs; call its code from a test or another function to exercise it.",
                    function.name,
                    reason,
                )
                continue
            try:
                kind = function.trigger_type.lower()
                if kind == "timertrigger":
                    await self._add_timer(function)
                elif kind == "queuetrigger":
                    self._add_queue(function)
                elif kind == "blobtrigger":
                    blob_functions.append(self._blob_function(function))
            except (ConnectionSettingError, ScheduleError, BindingExpressionError, ValueError) as exc:
                self.errors[function.name] = str(exc)
                logger.error("The '%s' function is in error: %s", function.name, exc)
        if blob_functions:
            await self._start_blob_triggers(blob_functions)
        for listeners in self._queues.values():
            for listener in listeners:
                listener.start()

    async def stop(self) -> None:
        for timer in self._timers:
            await timer.stop()
        for listeners in self._queues.values():
            for listener in listeners:
                await listener.stop()
        if self._blob_triggers is not None:
            await self._blob_triggers.stop()

    # -- timers -----------------------------------------------------------------------------------

    async def _add_timer(self, function: FunctionInfo) -> None:
        schedule = create_schedule(str(function.trigger.get("schedule", "")))
        use_monitor = _flag(function.trigger.get("useMonitor"), True)
        if schedule.runs_more_than_once_a_minute:
            use_monitor = False  # the host does not persist sub-minute schedules
        monitor = None
        if use_monitor:
            monitor = StorageScheduleMonitor(self._accounts.blobs(None), self.host_id)
        listener = TimerListener(
            function,
            schedule,
            self._runner,
            monitor,
            run_on_startup=_flag(function.trigger.get("runOnStartup"), False),
        )
        await listener.start()
        self._timers.append(listener)

    # -- queues -----------------------------------------------------------------------------------

    def _add_queue(self, function: FunctionInfo) -> None:
        trigger = function.trigger
        name = resolve_app_settings(str(trigger.get("queueName", ""))).lower()
        if not _QUEUE_NAME_RE.fullmatch(name):
            raise ValueError(
                f"Invalid queue name: '{name}'. Queue names are 3-63 lowercase letters, digits and single "
                f"dashes, starting and ending with a letter or digit."
            )
        connection = trigger.get("connection")
        service = self._accounts.queues(connection)
        poison_name = poison_queue_name(name)
        poison = service.get_queue_client(poison_name) if poison_name else None
        data_type = str(trigger.get("dataType", "")).lower()
        runner = self._runner
        reason = f"New queue message detected on '{name}'."

        async def execute(message: ReceivedMessage) -> bool:
            return await runner.run(function, queue_trigger_value(message, data_type), reason)

        listener = QueueListener(
            function.name, service.get_queue_client(name), poison, self._options, execute
        )
        key = (self._accounts.connection_string(connection), name)
        self._queues.setdefault(key, []).append(listener)

    def _queue_written(self, connection_string: str, queue_name: str) -> None:
        for listener in self._queues.get((connection_string, queue_name), []):
            listener.notify()

    # -- blobs ------------------------------------------------------------------------------------

    def _blob_function(self, function: FunctionInfo) -> BlobFunction:
        pattern = BlobPathPattern.parse(str(function.trigger.get("path", "")))
        connection = function.trigger.get("connection")
        return BlobFunction(
            function=function,
            pattern=pattern,
            connection_string=self._accounts.connection_string(connection),
            service=self._accounts.blobs(connection),
        )

    async def _start_blob_triggers(self, functions: list[BlobFunction]) -> None:
        host_queues = self._accounts.queues(None)
        triggers = BlobTriggers(
            functions,
            host_id=self.host_id,
            host_blobs=self._accounts.blobs(None),
            host_queue=host_queues.get_queue_client(blob_trigger_queue_name(self.host_id)),
            poison_queues={"host": host_queues.get_queue_client(POISON_QUEUE)},
            options=self._blobs_options.queue_options(self._options),
            runner=self._runner,
            scan_interval=self._blob_scan_interval,
        )
        await triggers.start()
        self._blob_triggers = triggers

    def _blob_written(self, connection_string: str, container: str, name: str) -> None:
        if self._blob_triggers is not None:
            with contextlib.suppress(Exception):
                self._blob_triggers.blob_written(connection_string, container, name)
