"""The app crash-recovery tests kill and restart: every activity run is recorded in a table."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.core.exceptions import ResourceExistsError, ServiceRequestError, ServiceResponseError
from azure.data.tables import TableServiceClient

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
RUNS_TABLE = "crashruns"
_service: TableServiceClient | None = None


def _runs() -> Any:
    global _service
    if _service is None:
        service = TableServiceClient.from_connection_string(os.environ["AzureWebJobsStorage"])
        service.create_table_if_not_exists(RUNS_TABLE)
        _service = service  # published only once the table exists (activities run in threads)
    return _service.get_table_client(RUNS_TABLE)


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_json() if req.get_body() else None
    instance_id = await client.start_new(req.route_params["name"], client_input=body)
    return client.create_check_status_response(req, instance_id)


@app.activity_trigger(input_name="work")
def Counted(work: dict) -> str:
    """Records that it ran (durably, before returning), then answers."""
    time.sleep(work.get("delay", 0))
    run = {
        "PartitionKey": work["instance"],
        "RowKey": f"{work['item']}|{uuid.uuid4().hex}",
        "Item": work["item"],
    }
    # The record is the test's evidence, so a dropped connection to storage is retried with the same key
    # (a retry of an insert that did land finds it there) rather than failing the orchestration.
    for attempt in range(5):
        try:
            _runs().create_entity(run)
            break
        except ResourceExistsError:
            break
        except (ServiceRequestError, ServiceResponseError):
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    return f"done {work['item']}"


@app.orchestration_trigger(context_name="context")
def FanOut(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    request = context.get_input()
    tasks = [
        context.call_activity(
            "Counted", {"instance": context.instance_id, "item": item, "delay": request["delay"]}
        )
        for item in request["items"]
    ]
    return (yield context.task_all(tasks))


@app.orchestration_trigger(context_name="context")
def TimerThenWork(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=context.get_input()))
    return (yield context.call_activity("Counted", {"instance": context.instance_id, "item": "after-timer"}))


@app.orchestration_trigger(context_name="context")
def WaitForEvent(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    value = yield context.wait_for_external_event("Go")
    return (yield context.call_activity("Counted", {"instance": context.instance_id, "item": str(value)}))


@app.orchestration_trigger(context_name="context")
def ParentOfFanOuts(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    request = context.get_input()
    children = [
        context.call_sub_orchestrator(
            "FanOut", {"items": [f"{c}-{i}" for i in range(request["width"])], "delay": request["delay"]}
        )
        for c in range(request["children"])
    ]
    return (yield context.task_all(children))


@app.orchestration_trigger(context_name="context")
def Eternal(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    state = context.get_input()
    if state["n"] >= state["until"]:
        return state["n"]
    yield context.call_activity(
        "Counted", {"instance": context.instance_id, "item": f"gen-{state['n']}", "delay": state["delay"]}
    )
    context.continue_as_new({**state, "n": state["n"] + 1})
    return None


@app.activity_trigger(input_name="work")
def Plain(work: dict) -> str:
    """Touches no storage: only the host's own storage use is under test."""
    time.sleep(work.get("delay", 0))
    return f"done {work['item']}"


@app.orchestration_trigger(context_name="context")
def PlainFanOut(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    request = context.get_input()
    tasks = [
        context.call_activity("Plain", {"item": item, "delay": request["delay"]}) for item in request["items"]
    ]
    return (yield context.task_all(tasks))
