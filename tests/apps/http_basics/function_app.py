"""A single-file app exercising HTTP triggers: route parameters, constraints, sync and async
functions, return types, failures, ``func.Context`` and a durable client binding."""

import json
import threading
import time

import azure.durable_functions as df
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="greet/{name}", methods=["GET"])
def greet(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"Hello, {req.route_params['name']}!")


@app.route(route="items/{id?}")
def items(req: func.HttpRequest) -> func.HttpResponse:
    item_id = req.route_params.get("id")
    return func.HttpResponse(f"item {item_id}" if item_id else "all items")


@app.route(route="items/special")
def special_item(req: func.HttpRequest) -> str:
    return "the special item"


@app.route(route="square/{n:int}")
def square(req: func.HttpRequest) -> func.HttpResponse:
    n = int(req.route_params["n"])
    return func.HttpResponse(json.dumps({"square": n * n}), mimetype="application/json")


@app.route(route="slow")
def slow(req: func.HttpRequest) -> func.HttpResponse:
    started = time.monotonic()
    time.sleep(0.5)
    body = {"thread": threading.current_thread().name, "started": started, "ended": time.monotonic()}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="echo", methods=["POST", "PUT"])
async def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        req.get_body(),
        status_code=201,
        headers={"X-Echo-Method": req.method, "X-Echo-Query": json.dumps(dict(req.params))},
        mimetype="application/octet-stream",
    )


@app.route(route="request-info")
def request_info(req: func.HttpRequest) -> func.HttpResponse:
    body = {
        "method": req.method,
        "url": req.url,
        "params": dict(req.params),
        "route_params": dict(req.route_params),
        "headers": {k: req.headers[k] for k in req.headers},
        "type": type(req).__module__ + "." + type(req).__qualname__,
        "is_func_request": isinstance(req, func.HttpRequest),
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="text")
def plain_text(req: func.HttpRequest) -> str:
    return "just text"


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise ValueError("boom")


@app.route(route="nothing")
def returns_none(req: func.HttpRequest) -> None:
    return None


@app.route(route="out-param", binding_arg_name="res")
def out_param(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    res.set(func.HttpResponse("set through Out", status_code=202))


@app.route(route="context")
def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    body = {
        "invocation_id": context.invocation_id,
        "function_name": context.function_name,
        "function_directory": context.function_directory,
        "trace_parent": context.trace_context.trace_parent,
        "retry_count": context.retry_context.retry_count,
        "thread_invocation_id": getattr(context.thread_local_storage, "invocation_id", None),
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.function_name("StartOrchestration")
@app.route(route="orchestrators/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_orchestration(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    # DurableOrchestrationClient declares task_hub_name but never sets it (SDK 1.7.0), so read what
    # the binding JSON carried through the management payload instead.
    payload = client.create_http_management_payload("abc123")
    body = {
        "function_name": req.route_params["functionName"],
        "client_type": type(client).__name__,
        "status_query_get_uri": payload["statusQueryGetUri"],
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.orchestration_trigger(context_name="context", orchestration="HelloSequence")
def hello_orchestrator(context: df.DurableOrchestrationContext):
    result = yield context.call_activity("say_hello", "Tokyo")
    return result


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"
