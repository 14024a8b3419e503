"""The app the pytest plugin's own tests drive: fan-out, timers, a sub-orchestration, an event."""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

app = df.DFApp()


@app.activity_trigger(input_name="name")
def Hello(name: str) -> str:
    # Tests that kill the host while activities run make them take a while.
    time.sleep(float(os.environ.get("HELLO_DELAY_SECONDS") or 0))
    return f"Hello {name}"


@app.orchestration_trigger(context_name="context")
def Greet(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    names = context.get_input() or []
    return (yield context.task_all([context.call_activity("Hello", n) for n in names]))


@app.orchestration_trigger(context_name="context")
def Reminders(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Waits on `count` timers of `minutes` each; returns the orchestration times it saw."""
    request = context.get_input()
    seen = [context.current_utc_datetime.isoformat()]
    for _ in range(request["count"]):
        yield context.create_timer(context.current_utc_datetime + timedelta(minutes=request["minutes"]))
        seen.append(context.current_utc_datetime.isoformat())
    greeting = yield context.call_activity("Hello", "after the timers")
    return {"seen": seen, "greeting": greeting}


@app.orchestration_trigger(context_name="context")
def RemindersInChild(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    result = yield context.call_sub_orchestrator("Reminders", context.get_input())
    return result["greeting"]


@app.orchestration_trigger(context_name="context")
def WaitForApproval(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    answer = yield context.wait_for_external_event("Approval")
    return f"answer: {answer}"
