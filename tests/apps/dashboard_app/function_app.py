"""The orchestration the dashboard test watches: every kind of timeline bar, with a gate the test opens.

``Pipeline`` prepares, fans out ``Work`` activities that block until the test creates the gate
file, retries a flaky activity (two attempts and a retry timer), runs a sub-orchestration and
then waits for an ``Approval`` event. ``Waiter`` and ``FailOnce`` are there for the actions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

_attempts: dict[str, int] = {}
_attempts_lock = threading.Lock()


@app.activity_trigger(input_name="request")
def Prepare(request: dict[str, Any]) -> list[int]:
    time.sleep(0.2)
    return list(range(request["items"]))


@app.activity_trigger(input_name="request")
def Work(request: dict[str, Any]) -> int:
    """Waits for the gate file (at most a minute), then takes a little longer per item."""
    gate = Path(request["gate"])
    deadline = time.monotonic() + 60
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.15 * request["n"])
    return int(request["n"]) * 10


@app.activity_trigger(input_name="key")
def Flaky(key: str) -> str:
    """Fails on its first call for each key."""
    with _attempts_lock:
        count = _attempts[key] = _attempts.get(key, 0) + 1
    if count == 1:
        raise RuntimeError(f"{key}: first attempt fails")
    return f"attempt {count}"


@app.activity_trigger(input_name="value")
def Echo(value: str) -> str:
    time.sleep(0.1)
    return value


@app.orchestration_trigger(context_name="context")
def Child(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    first = yield context.call_activity("Echo", "child-1")
    second = yield context.call_activity("Echo", "child-2")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def Pipeline(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    request = context.get_input()
    items: list[int] = yield context.call_activity("Prepare", {"items": request["items"]})
    context.set_custom_status({"stage": "fan-out"})
    results = yield context.task_all(
        [context.call_activity("Work", {"n": n, "gate": request["gate"]}) for n in items]
    )
    context.set_custom_status({"stage": "retry"})
    retry = df.RetryOptions(first_retry_interval_in_milliseconds=300, max_number_of_attempts=3)
    flaky = yield context.call_activity_with_retry("Flaky", retry, context.instance_id)
    child = yield context.call_sub_orchestrator("Child")
    context.set_custom_status({"stage": "waiting for approval"})
    approval = yield context.wait_for_external_event("Approval")
    context.set_custom_status({"stage": "done"})
    return {"sum": sum(results), "flaky": flaky, "child": child, "approval": approval}


@app.orchestration_trigger(context_name="context")
def Waiter(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.wait_for_external_event("Approval"))


@app.orchestration_trigger(context_name="context")
def FailOnce(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Fails the first time (no retry); a rewind runs the activity again, which then succeeds."""
    return (yield context.call_activity("Flaky", context.instance_id))
