"""An app that opens its data files relative to its own folder, as apps do on the Functions host."""

import os
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# Read at import time too: the worker imports the app in its folder.
with open("greeting.txt", encoding="utf-8") as file:
    GREETING_AT_IMPORT = file.read().strip()


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["name"])
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def ReadDataFile(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.call_activity("ReadGreeting", None))


@app.activity_trigger(input_name="unused")
def ReadGreeting(unused: Any) -> dict[str, str]:
    with open("greeting.txt", encoding="utf-8") as file:
        greeting = file.read().strip()
    return {"cwd": os.getcwd(), "greeting": greeting, "at_import": GREETING_AT_IMPORT}
