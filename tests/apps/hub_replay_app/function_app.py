"""A test app whose instances wait in flight, for the task hub replay check (tests/test_hub_replay.py).

The test copies this folder and edits the marked lines to make the "new code" of a deploy.
"""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def Approval(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Prepares a request, then waits for its approval."""
    request = yield context.call_activity("Prepare", context.get_input())  # CHANGED-STEP
    answer = yield context.wait_for_external_event("Approval")
    return (yield context.call_activity("Finish", [request, answer]))


@app.orchestration_trigger(context_name="context")
def Waiter(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Waits for an event; the changed code leaves it alone."""
    answer = yield context.wait_for_external_event("Go")
    return answer


@app.orchestration_trigger(context_name="context")
def Parent(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Runs an Approval as a sub-orchestration and waits for it."""
    child = f"{context.instance_id}-child"
    return (yield context.call_sub_orchestrator("Approval", context.get_input(), instance_id=child))


@app.orchestration_trigger(context_name="context")
def Quick(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Completes at once."""
    return (yield context.call_activity("Prepare", context.get_input()))


# RETIRED-START
@app.orchestration_trigger(context_name="context")
def Retired(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Waits for an event; the changed code no longer has it."""
    return (yield context.wait_for_external_event("Go"))


# RETIRED-END


@app.activity_trigger(input_name="value")
def Prepare(value: Any) -> Any:
    return {"prepared": value}


@app.activity_trigger(input_name="value")
def Validate(value: Any) -> Any:
    return value


@app.activity_trigger(input_name="value")
def Finish(value: Any) -> Any:
    return value


@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
    context.set_state(value)
