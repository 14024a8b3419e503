"""Benchmark app: fan-out/fan-in, chains and single calls of no-op activities.

An ordinary Durable Functions app (Python v2 programming model). Orchestrators return small
checksums rather than every result, so the figures measure the engine, not the size of outputs.
It also runs the repository's own orchestrators (``ProcessOrder``, ``ProcessCustomers``),
unchanged, with no-op stand-ins for the activities they call.
"""

import json
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

sys.path.append(str(Path(__file__).resolve().parents[3]))  # the repository root (the real app)
from orchestrators import bp as repository_orchestrators

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(repository_orchestrators)


@app.route(route="ping", methods=[func.HttpMethod.GET])
def ping(req: func.HttpRequest) -> func.HttpResponse:
    """Answers 200 as soon as the host serves HTTP (the cold-start probe)."""
    return func.HttpResponse("ok")


@app.route(route="orchestrators/{functionName}", methods=[func.HttpMethod.POST])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start the orchestrator named in the route with the JSON body as its input."""
    body = req.get_body()
    client_input = json.loads(body) if body.strip() else None
    instance_id = await client.start_new(req.route_params["functionName"], client_input=client_input)
    return client.create_check_status_response(req, instance_id)


@app.function_name(name="FanOut")
@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    """Input: N. Calls Noop(0..N-1) in parallel and returns the sum of the results."""
    count = int(context.get_input())
    if count == 0:
        return 0  # task_all of no tasks resolves to None
    results: list[int] = yield context.task_all([context.call_activity("Noop", i) for i in range(count)])
    return sum(results)


@app.function_name(name="Chain")
@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    """Input: N. Calls Noop(0..N-1) one after the other and returns the sum of the results."""
    count = int(context.get_input())
    total = 0
    for i in range(count):
        total += yield context.call_activity("Noop", i)
    return total


@app.function_name(name="Single")
@app.orchestration_trigger(context_name="context")
def single(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    """One activity call: the latency of a minimal orchestration."""
    result: int = yield context.call_activity("Noop", 1)
    return result


@app.function_name(name="Noop")
@app.activity_trigger(input_name="value")
def noop(value: int) -> int:
    """Returns its input unchanged."""
    return value


# No-op stand-ins for the activities of the repository's ProcessOrder: the same names and
# result shapes, no storage.
@app.function_name(name="GetOrderDetailsActivity")
@app.activity_trigger(input_name="order_id")
def get_order_details(order_id: str) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "customerId": "cust1",
        "items": [{"sku": "SKU-001", "quantity": 1}],
        "status": "Received",
    }


@app.function_name(name="NotifyCustomerActivity")
@app.activity_trigger(input_name="order")
def notify_customer(order: dict[str, Any]) -> str:
    return f"Notified {order['customerId']} about order {order['orderId']}"


@app.function_name(name="UpdateInventoryActivity")
@app.activity_trigger(input_name="order")
def update_inventory(order: dict[str, Any]) -> dict[str, int]:
    return {line["sku"]: 0 for line in order["items"]}


@app.function_name(name="ScheduleShippingActivity")
@app.activity_trigger(input_name="order")
def schedule_shipping(order: dict[str, Any]) -> dict[str, str]:
    return {"shippingDate": "2000-01-01", "trackingId": "TRK-" + order["orderId"][:12].upper()}


@app.function_name(name="CompleteOrderActivity")
@app.activity_trigger(input_name="order_id")
def complete_order(order_id: str) -> str:
    return "Completed"
