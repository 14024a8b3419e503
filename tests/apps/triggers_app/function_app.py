"""An order-processing app: timer, queue and blob triggers, storage bindings and durable functions.

Written for Core Tools (Python v2 programming model); it deploys to Azure unchanged.
"""

import asyncio
import json
import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
STORAGE = "AzureWebJobsStorage"


# -- timers ---------------------------------------------------------------------------------------


@app.timer_trigger(schedule="* * * * * *", arg_name="timer")
def Heartbeat(timer: func.TimerRequest) -> None:
    logging.info("Heartbeat (past due: %s)", timer.past_due)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
@app.durable_client_input(client_name="client")
async def NightlyReport(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    await client.start_new(
        "ReportOrchestrator", instance_id="nightly-report", client_input={"source": "timer"}
    )


@app.timer_trigger(schedule="0 30 2 * * *", arg_name="timer")
@app.table_output(
    arg_name="run",
    table_name="TimerRuns",
    partition_key="DailyCleanup",
    row_key="{rand-guid}",
    connection=STORAGE,
)
def DailyCleanup(timer: func.TimerRequest, run: func.Out[str]) -> None:
    # schedule_status is on the concrete TimerRequest the worker passes, not on the abstract type.
    status: dict[str, Any] = getattr(timer, "schedule_status", None) or {}
    run.set(json.dumps({"PastDue": timer.past_due, "ScheduledNext": status.get("Next")}))


# -- queues ---------------------------------------------------------------------------------------


@app.queue_trigger(arg_name="msg", queue_name="orders", connection=STORAGE)
@app.table_output(
    arg_name="row", table_name="Orders", partition_key="orders", row_key="{queueTrigger}", connection=STORAGE
)
async def ProcessOrder(msg: func.QueueMessage, row: func.Out[str]) -> None:
    await asyncio.sleep(0.02)
    row.set(json.dumps({"MessageId": msg.id, "DequeueCount": msg.dequeue_count}))


@app.queue_trigger(arg_name="msg", queue_name="fragile", connection=STORAGE)
def FragileConsumer(msg: func.QueueMessage) -> None:
    raise ValueError(f"cannot process {msg.get_body().decode()!r}")


@app.queue_trigger(arg_name="msg", queue_name="report-requests", connection=STORAGE)
@app.durable_client_input(client_name="client")
async def QueueReportStarter(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    request = msg.get_json()
    await client.start_new("ReportOrchestrator", instance_id=request["id"], client_input={"source": "queue"})


# -- blobs ----------------------------------------------------------------------------------------


@app.blob_trigger(arg_name="upload", path="uploads/{name}.json", connection=STORAGE)
@app.table_output(
    arg_name="row", table_name="Uploads", partition_key="uploads", row_key="{name}", connection=STORAGE
)
def IndexUpload(upload: func.InputStream, row: func.Out[str]) -> None:
    document = json.loads(upload.read())
    row.set(json.dumps({"Blob": upload.name, "Length": upload.length, "Total": sum(document["items"])}))


# -- durable functions ----------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def ReportOrchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    request = context.get_input() or {}
    path = yield context.call_activity(
        "WriteReport", {"id": context.instance_id, "source": request.get("source")}
    )
    return path


@app.activity_trigger(input_name="report")
@app.blob_output(arg_name="document", path="reports/{report.id}.json", connection=STORAGE)
def WriteReport(report: dict[str, Any], document: func.Out[str]) -> str:
    document.set(json.dumps(report))
    return f"reports/{report['id']}.json"


# -- HTTP with storage bindings -------------------------------------------------------------------


@app.route(route="orders", methods=["POST"])
@app.queue_output(arg_name="outbox", queue_name="orders", connection=STORAGE)
def SubmitOrders(req: func.HttpRequest, outbox: func.Out[list[str]]) -> func.HttpResponse:
    ids = req.get_json()["ids"]
    outbox.set(ids)
    return func.HttpResponse(json.dumps({"queued": len(ids)}), status_code=202, mimetype="application/json")


@app.route(route="orders/{id}", methods=["GET"])
@app.table_input(
    arg_name="order", table_name="Orders", partition_key="orders", row_key="{id}", connection=STORAGE
)
def GetOrder(req: func.HttpRequest, order: str) -> func.HttpResponse:
    if order is None:
        return func.HttpResponse(status_code=404)
    return func.HttpResponse(order, mimetype="application/json")


@app.route(route="reports/{id}", methods=["GET"])
@app.blob_input(arg_name="report", path="reports/{id}.json", connection=STORAGE)
def GetReport(req: func.HttpRequest, report: str) -> func.HttpResponse:
    if report is None:
        return func.HttpResponse(status_code=404)
    return func.HttpResponse(report, mimetype="application/json")


# -- services the emulator does not provide -------------------------------------------------------


@app.route(route="notify", methods=["POST"])
@app.generic_output_binding(
    arg_name="sms",
    type="twilioSms",
    from_number="+15550001111",
    account_sid_setting="TwilioAccountSid",
    auth_token_setting="TwilioAuthToken",
)
def NotifyCustomer(req: func.HttpRequest, sms: func.Out[str]) -> func.HttpResponse:
    body = req.get_json()
    sms.set(json.dumps({"body": f"Order {body['order']} has shipped.", "to": body["phone"]}))
    return func.HttpResponse("Notification sent", status_code=202)


@app.service_bus_queue_trigger(arg_name="msg", queue_name="invoices", connection="ServiceBusConnection")
def InvoiceConsumer(msg: func.ServiceBusMessage) -> None:
    logging.info("Invoice %s", msg.get_body().decode())
