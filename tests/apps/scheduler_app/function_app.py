"""An app written for the Durable Task Scheduler (see host.json): the code is the same as for any provider."""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["name"], client_input=req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def Greet(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    return (yield context.call_activity("Hello", context.get_input()))


@app.activity_trigger(input_name="name")
def Hello(name: str) -> str:
    return f"Hello {name}!"
