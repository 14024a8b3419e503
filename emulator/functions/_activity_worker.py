"""The language worker's side of an activity: invoke it the way the Python worker does.

Activities get their input through the real ``ActivityTriggerConverter`` and their result is
encoded by it, so every value crosses the same (de)serialization as on Azure; a failure becomes
the reason and details the orchestration sees in its TaskFailed event.
"""

from __future__ import annotations

import functools
import json
import os
import traceback
from dataclasses import dataclass
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from emulator.app._app_index import FunctionInfo
from emulator.functions._bindings import Bindings, TriggerValue
from emulator.functions._threads import WorkerThreads


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


def _activity_trigger(value: Any, name: str, input_text: str | None, instance_id: str | None) -> TriggerValue:
    """The activity's value with the binding data the durable extension gives its other bindings."""
    try:
        data = None if input_text is None else json.loads(input_text)
    except ValueError:
        data = input_text
    binding_data: dict[str, Any] = {name: data, "data": data}
    if instance_id is not None:
        binding_data["instanceId"] = instance_id
    return TriggerValue(value=value, binding_data=binding_data)


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


def worker_thread_count() -> int:
    """Threads for synchronous functions, as the Python worker sizes its pool on Python 3.9+."""
    raw = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return min(32, (os.cpu_count() or 1) + 4)


async def run_activity(
    function: FunctionInfo,
    input_text: str | None,
    threads: WorkerThreads,
    *,
    bindings: Bindings | None = None,
    instance_id: str | None = None,
) -> ActivityOutcome:
    """Run an activity: sync functions on ``threads``, async ones on the event loop.

    An activity with input or output bindings besides its trigger gets them from ``bindings`` (its
    host's binding layer); its outputs are written before the result is reported, so a failed
    write fails the activity.
    """
    try:
        kwargs = _activity_kwargs(function, input_text)
        if len(function.bindings) <= 1:
            bindings = None
        call = None
        if bindings is not None:
            name, value = next(iter(kwargs.items()))
            trigger = _activity_trigger(value, name, input_text, instance_id)
            call = await bindings.prepare(function, trigger, None)
            kwargs = call.kwargs
        if function.is_async:
            result = await function.user_function(**kwargs)
        else:
            result = await threads.run(functools.partial(function.user_function, **kwargs))
        if bindings is not None and call is not None:
            await bindings.finish(call, result, return_is_trigger_output=True)
        return ActivityOutcome(result=_encode_result(result))
    except Exception as exc:
        return _failure(function, exc)
