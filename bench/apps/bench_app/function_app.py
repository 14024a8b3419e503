"""Benchmark app: fan-out/fan-in, chains and single calls of no-op activities.

An ordinary Durable Functions app (Python v2 programming model). Orchestrators return small
checksums rather than every result, so the figures measure the engine, not the size of outputs.
"""

import json
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


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
