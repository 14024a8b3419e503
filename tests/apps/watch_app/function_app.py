"""An app that tests/test_watch.py edits while ``start --watch`` runs it."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from greetings import TEXT

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="hello")
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(TEXT)


@app.route(route="start/{name}/{instance_id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = await client.start_new(
        req.route_params["name"], instance_id=req.route_params.get("instance_id")
    )
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def Approval(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    before = yield context.call_activity("Mark", "before")
    approval = yield context.wait_for_external_event("Approve")
    after = yield context.call_activity("Mark", "after")
    return [before, approval, after]


@app.activity_trigger(input_name="step")
def Mark(step: str) -> str:
    return f"{step} {TEXT}"
