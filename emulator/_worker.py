"""The language worker's side: invoke the app's durable functions the way the real host does.

Orchestrators get the trigger payload of sdk-protocol.md section 3.1 and return the
OrchestratorState JSON (or raise with it embedded after ``$OutOfProcData$``); activities get
their input through the real ``ActivityTriggerConverter`` and their result is encoded by it, so
every value crosses the same (de)serialization as on Azure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter, OrchestrationTriggerConverter

from emulator import _history as h
from emulator._app_index import FunctionInfo
from emulator._history import HistoryEvent
from emulator._replay import OrchestratorState

_OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"


def orchestration_payload(
    *,
    instance_id: str,
    history: Sequence[HistoryEvent],
    parent_instance_id: str | None,
) -> str:
    """The JSON string the real host binds to ``orchestrationTrigger`` parameters."""
    started = next((e for e in history if h.event_type(e) == h.EventType.ExecutionStarted), None)
    raw_input = None if started is None else started.get("Input")
    return json.dumps(
        {
            "history": list(history),
            # The host hands over ExecutionStarted.Input parsed as a JSON token.
            "input": None if raw_input is None else json.loads(raw_input),
            "instanceId": instance_id,
            "isReplaying": bool(started and started.get("IsPlayed")),
            "parentInstanceId": parent_instance_id,
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
            "longRunningTimerIntervalDuration": "3.00:00:00",
            "maximumShortTimerDuration": "6.00:00:00",
            "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
        }
    )


def run_orchestrator(handle: Callable[[Any], Any], payload: str) -> OrchestratorState:
    """Run one replay through the orchestrator's ``handle``; user exceptions become ``state.error``."""
    context = OrchestrationTriggerConverter.decode(meta.Datum(payload, "string"), trigger_metadata=None)
    try:
        result = handle(context)
    except Exception as exc:
        message = str(exc)
        error_text, marker, state_json = message.partition(_OUT_OF_PROC_MARKER)
        if marker:
            return OrchestratorState.from_json(state_json, error=_error_of(state_json, error_text))
        # Errors raised by the SDK itself (bad history) carry no state: the episode fails.
        return OrchestratorState(is_done=False, actions=[], error=message or type(exc).__name__)
    if isinstance(result, meta.Datum):
        result = result.value
    return OrchestratorState.from_json(result)


def _error_of(state_json: str, fallback: str) -> str:
    try:
        error = json.loads(state_json).get("error")
    except ValueError:
        error = None
    return str(error) if error else fallback


@dataclass(frozen=True)
class ActivityOutcome:
    """What an activity produced: the result JSON text, or the failure reason and details."""

    result: str | None = None
    failure_reason: str | None = None
    failure_details: str | None = None

    @property
    def failed(self) -> bool:
        return self.failure_reason is not None


def _activity_kwargs(function: FunctionInfo, input_text: str | None) -> dict[str, Any]:
    value = ActivityTriggerConverter.decode(meta.Datum(input_text, "json"), trigger_metadata=None)
    return {str(function.trigger["name"]): value}


def _encode_result(result: Any) -> str:
    datum = ActivityTriggerConverter.encode(result, expected_type=None)
    return str(datum.value)


def _failure(function: FunctionInfo, exc: BaseException) -> ActivityOutcome:
    friendly = f"{type(exc).__name__}: {exc}"
    reason = f"Activity function '{function.durable_name}' failed: {friendly}"
    details = json.dumps(
        {
            "Message": reason,
            "ExceptionType": type(exc).__name__,
            "StackTrace": "".join(traceback.format_exception(exc)),
        }
    )
    return ActivityOutcome(failure_reason=reason, failure_details=details)


async def run_activity(
    function: FunctionInfo, input_text: str | None, executor: concurrent.futures.Executor | None = None
) -> ActivityOutcome:
    """Run an activity: sync functions on ``executor`` threads, async ones on the event loop."""
    try:
        kwargs = _activity_kwargs(function, input_text)
        if function.is_async:
            result = await function.user_function(**kwargs)
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(executor, functools.partial(function.user_function, **kwargs))
        return ActivityOutcome(result=_encode_result(result))
    except Exception as exc:
        return _failure(function, exc)


async def close_client_sessions() -> None:
    """Close the durable client's process-wide HTTP session (the SDK never does it itself)."""
    try:
        from azure.durable_functions.models.utils import http_utils
    except ImportError:
        return
    with contextlib.suppress(Exception):
        await http_utils._close_session()
