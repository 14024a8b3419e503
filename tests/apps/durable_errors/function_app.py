"""A test app whose orchestrations fail in the ways users' do."""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = await client.start_new(
        req.route_params["name"], client_input=req.get_json() if req.get_body() else None
    )
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def RaisesAfterActivity(context: df.DurableOrchestrationContext) -> Generator[Any, Any, None]:
    yield context.call_activity("Echo", "before")
    raise ValueError("the order total is negative")


@app.orchestration_trigger(context_name="context")
def HandlesActivityFailure(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    try:
        yield context.call_activity("Explode", "bad input")
    except Exception as exc:
        recovered = yield context.call_activity("Echo", "recovered")
        return {"caught": str(exc).split("\n")[0], "then": recovered}
    return {"caught": None}


@app.activity_trigger(input_name="value")
def Echo(value: str) -> str:
    return value


@app.activity_trigger(input_name="value")
def Explode(value: str) -> str:
    raise KeyError(f"cannot handle {value}")


@app.entity_trigger(context_name="context")
def Ledger(context: df.DurableEntityContext) -> None:
    raise OverflowError(f"the ledger cannot {context.operation_name}")


@app.orchestration_trigger(context_name="context")
def CallsFailingEntity(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    try:
        yield context.call_entity(df.EntityId("Ledger", context.instance_id), "post")
    except Exception as exc:
        return str(exc)
    return "no failure"
