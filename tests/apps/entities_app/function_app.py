"""A counter entity driven from orchestrations, from the client in a function, and over HTTP."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        value += context.get_input()
        context.set_result(value)
    elif operation == "reset":
        value = 0
        context.set_result(value)
    elif operation == "get":
        context.set_result(value)
    elif operation == "fail":
        raise ValueError(f"cannot {operation} at {value}")
    elif operation == "delete":
        context.destruct_on_exit()
        return
    context.set_state(value)


@app.orchestration_trigger(context_name="context")
def UseCounter(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    key = context.get_input()
    entity = df.EntityId("Counter", key)
    first = yield context.call_entity(entity, "add", 5)
    context.signal_entity(entity, "add", 10)
    after_signal = yield context.call_entity(entity, "get")
    try:
        yield context.call_entity(entity, "fail")
        failure = None
    except Exception as exc:
        failure = str(exc)
    reset = yield context.call_entity(entity, "reset")
    return {"first": first, "after_signal": after_signal, "failure": failure, "reset": reset}


@app.orchestration_trigger(context_name="context")
def SignalMany(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    request = context.get_input()
    entity = df.EntityId("Counter", request["key"])
    for _ in range(request["count"]):
        context.signal_entity(entity, "add", 1)
    yield context.call_activity("Noop", None)
    return request["count"]


@app.orchestration_trigger(context_name="context")
def ReadCounter(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.call_entity(df.EntityId("Counter", context.get_input()), "get"))


@app.activity_trigger(input_name="value")
def Noop(value: Any) -> None:
    return None


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_json() if req.get_body() else None
    instance_id = await client.start_new(req.route_params["name"], client_input=body)
    return client.create_check_status_response(req, instance_id)


@app.route(route="counter/{key}/{op}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def signal(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    value = req.get_json() if req.get_body() else None
    await client.signal_entity(df.EntityId("Counter", req.route_params["key"]), req.route_params["op"], value)
    return func.HttpResponse(status_code=202)


@app.route(route="counter/{key}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def read(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    state = await client.read_entity_state(df.EntityId("Counter", req.route_params["key"]))
    body = {"exists": state.entity_exists, "state": state.entity_state}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")
