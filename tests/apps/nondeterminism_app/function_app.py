"""Orchestrators whose decisions depend on something other than their history, as users write them
by mistake, and a deterministic one beside them. Extended sessions are on (the default)."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Generator
from datetime import datetime, timedelta, timezone
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

#: Episode 1 runs well within this of its orchestration time; a replay after ``Sleep`` cannot.
LATE = timedelta(seconds=0.5)


@app.route(route="start/{name}/{instance_id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_json() if req.get_body() else None
    instance_id = await client.start_new(
        req.route_params["name"], instance_id=req.route_params.get("instance_id"), client_input=body
    )
    return client.create_check_status_response(req, instance_id)


@app.activity_trigger(input_name="value")
def A(value: Any) -> Any:
    return value


@app.activity_trigger(input_name="value")
def B(value: Any) -> Any:
    return value


@app.activity_trigger(input_name="seconds")
def Sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.activity_trigger(input_name="name")
def SetFlag(name: str) -> str:
    os.environ[name] = "1"
    return name


@app.orchestration_trigger(context_name="context")
def RandomBranch(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    names = [random.choice(["A", "B"]) for _ in range(20)]
    results = yield context.task_all([context.call_activity(name, i) for i, name in enumerate(names)])
    return len(results)


@app.orchestration_trigger(context_name="context")
def UuidBranch(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    # Twenty coin tosses: a replay tosses them all again (and a second run does, for the diff).
    first = yield context.call_activity("A", 0)
    tasks = [context.call_activity("A" if uuid.uuid4().int % 2 else "B", i) for i in range(20)]
    rest = yield context.task_all(tasks)
    return [first, *rest]


@app.orchestration_trigger(context_name="context")
def ClockBranch(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    late = datetime.now(timezone.utc) - context.current_utc_datetime > LATE
    yield context.call_activity("B" if late else "Sleep", 2 * LATE.total_seconds())
    return "done"


@app.orchestration_trigger(context_name="context")
def EnvironmentBranch(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    flag = str(context.get_input())
    yield context.call_activity("A" if os.environ.get(flag) else "SetFlag", flag)
    yield context.call_activity("B", flag)
    return "done"


@app.orchestration_trigger(context_name="context")
def Deterministic(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    ids = [str(context.new_uuid())]
    first = yield context.call_activity("A", context.current_utc_datetime.isoformat())
    fan = yield context.task_all([context.call_activity("B", i) for i in range(5)])
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=10))
    ids.append(str(context.new_uuid()))
    return {"first": first, "fan": fan, "ids": ids}


@app.orchestration_trigger(context_name="context")
def Chain(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    total = 0
    for i in range(int(context.get_input())):
        total += yield context.call_activity("A", i)
    return total


@app.orchestration_trigger(context_name="context")
def NotesOnce(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Appends a line to the file named by its input, the way code logs only when not replaying."""
    first = yield context.call_activity("A", 1)
    if not context.is_replaying:
        with open(str(context.get_input()), "a", encoding="utf-8") as notes:
            notes.write(f"after {first}\n")
    return first
