"""A test app whose HTTP function calls every ``DurableOrchestrationClient`` method.

``POST /api/client/{operation}`` with a JSON object of arguments runs one client call and answers
with its result as JSON, or 409 with ``{"error": "<the SDK's exception text>"}`` when the SDK
raises, so tests see exactly what a user's function would.
"""

import json
from collections.abc import Awaitable, Callable, Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# -- orchestrations and activities -------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def Echo(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    value = yield context.call_activity("Identity", context.get_input())
    return value


@app.orchestration_trigger(context_name="context")
def WaitForApproval(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    approval = yield context.wait_for_external_event("Approval")
    return {"approval": approval}


@app.orchestration_trigger(context_name="context")
def Sleeper(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    yield context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    return "woke up"


@app.orchestration_trigger(context_name="context")
def FailsOnce(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    first = yield context.call_activity("Identity", "before")
    second = yield context.call_activity("FailsFirstTime", context.get_input()["key"])
    return [first, second]


@app.orchestration_trigger(context_name="context")
def AlwaysFails(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    yield context.call_activity("Identity", "before")
    raise ValueError("this orchestration always fails")


@app.activity_trigger(input_name="value")
def Identity(value: Any) -> Any:
    return value


_calls: dict[str, int] = {}


@app.activity_trigger(input_name="key")
def FailsFirstTime(key: str) -> str:
    _calls[key] = _calls.get(key, 0) + 1
    if _calls[key] == 1:
        raise RuntimeError(f"first attempt for {key} fails")
    return f"attempt {_calls[key]} for {key} worked"


# -- the client operations -------------------------------------------------------------------------

Operation = Callable[[df.DurableOrchestrationClient, func.HttpRequest, dict[str, Any]], Awaitable[Any]]


def status_json(status: DurableOrchestrationStatus) -> Any:
    if not status:
        return None
    body = status.to_json()
    body["historyEvents"] = getattr(status, "historyEvents", None)
    return body


def statuses(names: list[str] | None) -> list[df.OrchestrationRuntimeStatus] | None:
    return [df.OrchestrationRuntimeStatus[name] for name in names] if names else None


def moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


async def start_new(
    client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]
) -> Any:
    instance_id = await client.start_new(args["name"], args.get("instance_id"), args.get("input"))
    return {"id": instance_id}


async def get_status(
    client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]
) -> Any:
    status = await client.get_status(
        args["id"],
        show_history=args.get("show_history", False),
        show_history_output=args.get("show_history_output", False),
        show_input=args.get("show_input", False),
    )
    return status_json(status)


async def get_status_all(
    client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]
) -> Any:
    return [status_json(s) for s in await client.get_status_all()]


async def get_status_by(
    client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]
) -> Any:
    found = await client.get_status_by(
        created_time_from=moment(args.get("created_from")),
        created_time_to=moment(args.get("created_to")),
        runtime_status=statuses(args.get("runtime_status")),
        instance_id_prefix=args.get("prefix"),
    )
    return [status_json(s) for s in found]


async def raise_event(
    client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]
) -> Any:
    await client.raise_event(args["id"], args["event"], args.get("data"))
    return {"raised": True}


async def terminate(
    client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]
) -> Any:
    await client.terminate(args["id"], args.get("reason", ""))
    return {"terminated": True}


async def suspend(client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]) -> Any:
    await client.suspend(args["id"], args.get("reason", ""))
    return {"suspended": True}


async def resume(client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]) -> Any:
    await client.resume(args["id"], args.get("reason", ""))
    return {"resumed": True}


async def rewind(client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]) -> Any:
    await client.rewind(args["id"], args.get("reason", ""))
    return {"rewound": True}


async def restart(client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]) -> Any:
    result = await client.restart(args["id"], restart_with_new_instance_id=args.get("new_id", True))
    return {"result": result}


async def purge(client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]) -> Any:
    result = await client.purge_instance_history(args["id"])
    return {"deleted": result.instances_deleted}


async def purge_by(client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]) -> Any:
    result = await client.purge_instance_history_by(
        created_time_from=moment(args.get("created_from")),
        created_time_to=moment(args.get("created_to")),
        runtime_status=statuses(args.get("runtime_status")),
    )
    return {"deleted": result.instances_deleted}


async def start_and_wait(
    client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]
) -> Any:
    instance_id = await client.start_new(args["name"], None, args.get("input"))
    return await client.wait_for_completion_or_create_check_status_response(
        req,
        instance_id,
        timeout_in_milliseconds=args.get("timeout_ms", 10000),
        retry_interval_in_milliseconds=args.get("interval_ms", 100),
    )


async def management_payload(
    client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]
) -> Any:
    return client.create_http_management_payload(args["id"])


async def check_status(
    client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]
) -> Any:
    return client.create_check_status_response(req, args["id"])


async def signal_entity(
    client: df.DurableOrchestrationClient, req: func.HttpRequest, args: dict[str, Any]
) -> Any:
    entity = df.EntityId(args["name"], args["key"])
    await client.signal_entity(entity, args["op"], args.get("input"), task_hub_name=args.get("task_hub"))
    return {"signalled": True}


OPERATIONS: dict[str, Operation] = {
    "start_new": start_new,
    "get_status": get_status,
    "get_status_all": get_status_all,
    "get_status_by": get_status_by,
    "raise_event": raise_event,
    "terminate": terminate,
    "suspend": suspend,
    "resume": resume,
    "rewind": rewind,
    "restart": restart,
    "purge_instance_history": purge,
    "purge_instance_history_by": purge_by,
    "wait_for_completion_or_create_check_status_response": start_and_wait,
    "create_http_management_payload": management_payload,
    "create_check_status_response": check_status,
    "signal_entity": signal_entity,
}


@app.route(route="client/{operation}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def client_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    args = req.get_json() if req.get_body() else {}
    operation = OPERATIONS[req.route_params["operation"]]
    try:
        result = await operation(client, req, args)
    except Exception as exc:
        return func.HttpResponse(
            json.dumps({"error": str(exc)}), status_code=409, mimetype="application/json"
        )
    if isinstance(result, func.HttpResponse):
        return result
    return func.HttpResponse(json.dumps(result), mimetype="application/json")
