"""Orchestrations that use every feature of azure-functions-durable, written as users write them."""

from __future__ import annotations

import json
import threading
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# Attempts per key, so a test can make an activity fail a chosen number of times.
_attempts: dict[str, int] = {}
_attempts_lock = threading.Lock()


@app.route(route="start/{name}/{instance_id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_json() if req.get_body() else None
    instance_id = await client.start_new(
        req.route_params["name"], instance_id=req.route_params.get("instance_id"), client_input=body
    )
    return client.create_check_status_response(req, instance_id)


@app.route(route="raise/{instance_id}/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def raise_event(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    data = req.get_json() if req.get_body() else None
    await client.raise_event(req.route_params["instance_id"], req.route_params["event"], data)
    return func.HttpResponse(status_code=202)


# -- activities ---------------------------------------------------------------------------


@app.activity_trigger(input_name="request")
def Flaky(request: dict) -> str:
    """Fails until it has been called ``failures`` times for ``key``."""
    with _attempts_lock:
        count = _attempts[request["key"]] = _attempts.get(request["key"], 0) + 1
    if count <= request["failures"]:
        raise RuntimeError(f"attempt {count} of {request['key']} failed")
    return f"{request['key']} succeeded on attempt {count}"


@app.activity_trigger(input_name="value")
def Echo(value: str) -> str:
    return value


@app.activity_trigger(input_name="size")
def BigResult(size: int) -> str:
    return "x" * size


class Point:
    """A custom class crossing the activity boundary through to_json/from_json."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    @staticmethod
    def to_json(obj: Point) -> str:
        return json.dumps({"x": obj.x, "y": obj.y})

    @staticmethod
    def from_json(text: str) -> Point:
        raw = json.loads(text)
        return Point(raw["x"], raw["y"])


@app.activity_trigger(input_name="point")
def MovePoint(point: Point) -> Point:
    return Point(point.x + 1, point.y * 2)


# -- orchestrators ------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def RetryActivity(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    options = df.RetryOptions(first_retry_interval_in_milliseconds=200, max_number_of_attempts=3)
    request = context.get_input()
    try:
        result = yield context.call_activity_with_retry("Flaky", options, request)
    except Exception as exc:
        return {"error": str(exc).split("\n")[0]}
    return {"result": result}


@app.orchestration_trigger(context_name="context")
def Child(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    request = context.get_input()
    if request.get("fail"):
        raise ValueError(f"child {request['n']} refuses")
    results = yield context.task_all([context.call_activity("Echo", f"{request['n']}-{i}") for i in range(3)])
    return {"n": request["n"], "parent": context.parent_instance_id, "results": results}


@app.orchestration_trigger(context_name="context")
def Parent(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    count = context.get_input()
    named = yield context.call_sub_orchestrator("Child", {"n": 0}, instance_id=f"{context.instance_id}-named")
    fanned = yield context.task_all(
        [context.call_sub_orchestrator("Child", {"n": i}) for i in range(1, count + 1)]
    )
    try:
        yield context.call_sub_orchestrator("Child", {"n": 99, "fail": True})
        caught = None
    except Exception as exc:
        caught = str(exc).split("\n")[0]
    return {"named": named, "fanned": fanned, "caught": caught}


@app.orchestration_trigger(context_name="context")
def RetrySubOrchestration(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    options = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=2)
    try:
        yield context.call_sub_orchestrator_with_retry("Child", options, {"n": 7, "fail": True})
    except Exception as exc:
        return str(exc).split("\n")[0]
    return "no error"


@app.orchestration_trigger(context_name="context")
def Approval(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """The human-interaction pattern: an event or a deadline, whichever comes first."""
    deadline = context.current_utc_datetime + timedelta(minutes=(context.get_input() or {}).get("minutes", 5))
    timer = context.create_timer(deadline)
    approval = context.wait_for_external_event("Approval")
    winner = yield context.task_any([approval, timer])
    if winner == approval:
        timer.cancel()
        return {"approved": approval.result}
    return {"approved": None, "timed_out": True}


@app.orchestration_trigger(context_name="context")
def WaitTwice(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    context.set_custom_status({"stage": "waiting"})
    first = yield context.wait_for_external_event("Step")
    context.set_custom_status({"stage": "halfway", "first": first})
    second = yield context.wait_for_external_event("Other")
    context.set_custom_status({"stage": "done"})
    return [first, second]


@app.orchestration_trigger(context_name="context")
def Sleeper(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Waits on `count` timers of `minutes` each; returns the orchestration times it saw."""
    request = context.get_input()
    seen = [context.current_utc_datetime.isoformat()]
    for _ in range(request["count"]):
        yield context.create_timer(context.current_utc_datetime + timedelta(minutes=request["minutes"]))
        seen.append(context.current_utc_datetime.isoformat())
    return seen


@app.orchestration_trigger(context_name="context")
def RaceActivityAndTimer(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    timer = context.create_timer(context.current_utc_datetime + timedelta(minutes=10))
    winner = yield context.task_any([context.call_activity("Echo", "fast"), timer])
    return "activity" if winner != timer else "timer"


@app.orchestration_trigger(context_name="context")
def Counter(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """An eternal orchestration: one generation per count."""
    state = context.get_input()
    if state["n"] >= state["until"]:
        return state["n"]
    if state.get("wait_event"):
        increment = yield context.wait_for_external_event("Add")
        state["n"] += increment
    else:
        state["n"] += 1
    context.continue_as_new(state)
    return None


@app.orchestration_trigger(context_name="context")
def BigStatus(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    context.set_custom_status("s" * context.get_input())
    yield context.call_activity("Echo", "x")
    return "done"


@app.orchestration_trigger(context_name="context")
def Determinism(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    first = str(context.new_uuid())
    replaying_at_start = context.is_replaying
    echoed = yield context.call_activity("Echo", first)
    second = str(context.new_uuid())
    return {
        "first": first,
        "echoed": echoed,
        "second": second,
        "time": context.current_utc_datetime.isoformat(),
        "replaying_at_start": replaying_at_start,
    }


@app.orchestration_trigger(context_name="context")
def AnyAndAll(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    failing = context.call_activity("Flaky", {"key": f"{context.instance_id}-any", "failures": 1})
    winner = yield context.task_any([failing])
    any_result = "exception" if isinstance(winner.result, Exception) else winner.result
    try:
        yield context.task_all(
            [
                context.call_activity("Echo", "ok"),
                context.call_activity("Flaky", {"key": f"{context.instance_id}-all", "failures": 1}),
            ]
        )
        all_result = "no error"
    except Exception as exc:
        all_result = str(exc).split("\n")[0]
    return {"any": any_result, "all": all_result}


@app.orchestration_trigger(context_name="context")
def CallsMissing(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    kind = context.get_input()
    if kind == "activity":
        yield context.call_activity("NoSuchActivity", 1)
    else:
        yield context.call_sub_orchestrator("NoSuchOrchestrator", 1)


@app.orchestration_trigger(context_name="context")
def HttpCall(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    response = yield context.call_http("POST", context.get_input(), content={"hello": "world"})
    return response


@app.orchestration_trigger(context_name="context")
def CustomTypes(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    moved = yield context.call_activity("MovePoint", Point(1, 2))
    return {"x": moved.x, "y": moved.y, "type": type(moved).__name__}


@app.orchestration_trigger(context_name="context")
def LargeResult(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    result = yield context.call_activity("BigResult", context.get_input())
    return len(result)
