"""HTTP triggers: ASP.NET-style route matching, and real requests over loopback to the http_basics app."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from emulator.app._app_index import AppIndex, FunctionInfo, load_app
from emulator.app._settings import AppLoadError
from emulator.functions._invocations import InvocationLog
from emulator.http._http_triggers import HTTP_INVOCATION_REASON, HttpTriggerRouter, InputResolver
from emulator.http._route_templates import RouteTemplate, RouteTemplateError

HTTP_BASICS = Path(__file__).resolve().parents[2] / "tests" / "apps" / "http_basics"
GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"

# -- route templates -----------------------------------------------------------------------------

MATCHES: list[tuple[str, str, dict[str, str] | None]] = [
    ("greet/{name}", "greet/bob", {"name": "bob"}),
    ("greet/{name}", "GREET/bob", {"name": "bob"}),
    ("greet/{name}", "greet/bob/", {"name": "bob"}),
    ("greet/{name}", "greet/hello%20world", {"name": "hello world"}),
    ("greet/{name}", "greet", None),
    ("greet/{name}", "greet/bob/extra", None),
    ("greet/{name}", "greeting/bob", None),
    ("items/{id?}", "items", {}),
    ("items/{id?}", "items/", {}),
    ("items/{id?}", "items/42", {"id": "42"}),
    ("items/{id=7}", "items", {"id": "7"}),
    ("items/{id=7}", "items/8", {"id": "8"}),
    ("n/{n:int}", "n/42", {"n": "42"}),
    ("n/{n:int}", "n/-3", {"n": "-3"}),
    ("n/{n:int}", "n/x", None),
    ("n/{n:int}", "n/4.5", None),
    ("n/{n:int}", "n/99999999999", None),
    ("n/{n:long}", "n/99999999999", {"n": "99999999999"}),
    ("n/{n:int?}", "n", {}),
    ("n/{n:int?}", "n/x", None),
    ("a/{s:alpha}", "a/abcXYZ", {"s": "abcXYZ"}),
    ("a/{s:alpha}", "a/ab1", None),
    ("g/{id:guid}", f"g/{GUID}", {"id": GUID}),
    ("g/{id:guid}", f"g/{GUID.replace('-', '')}", {"id": GUID.replace("-", "")}),
    ("g/{id:guid}", "g/not-a-guid", None),
    ("b/{flag:bool}", "b/True", {"flag": "True"}),
    ("b/{flag:bool}", "b/yes", None),
    ("m/{n:min(10)}", "m/10", {"n": "10"}),
    ("m/{n:min(10)}", "m/9", None),
    ("r/{n:range(1,3)}", "r/3", {"n": "3"}),
    ("r/{n:range(1,3)}", "r/4", None),
    ("l/{s:length(2)}", "l/ab", {"s": "ab"}),
    ("l/{s:length(2)}", "l/abc", None),
    ("x/{s:regex(^a+$)}", "x/AAA", {"s": "AAA"}),
    ("x/{s:regex(^a+$)}", "x/ab", None),
    ("u/{s:someday}", "u/anything", {"s": "anything"}),
    ("files/{*path}", "files/a/b/c.txt", {"path": "a/b/c.txt"}),
    ("files/{*path}", "files", {}),
    ("files/{**path}", "files/a%2Fb", {"path": "a/b"}),
    ("f/{name}.{ext}", "f/archive.tar.gz", {"name": "archive.tar", "ext": "gz"}),
    ("f/{name}.{ext}", "f/noext", None),
    ("f/{name}.{ext?}", "f/readme", {"name": "readme"}),
    ("f/{name}.{ext?}", "f/readme.md", {"name": "readme", "ext": "md"}),
    ("v{version:int}/list", "V2/list", {"version": "2"}),
    ("", "", {}),
    ("", "x", None),
    ("/leading/slash", "leading/slash", {}),
]


@pytest.mark.parametrize(("template", "path", "expected"), MATCHES)
def test_route_template_matching(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate(template).match(path) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("a//b", "cannot appear consecutively"),
        ("{a}{b}", "two consecutive parameters"),
        ("{*rest}/x", "last segment"),
        ("x{*rest}", "cannot contain a catch-all"),
        ("{id", "incomplete parameter"),
        ("id}", "incomplete parameter"),
        ("{id}/{ID}", "appears more than one time"),
        ("{*rest?}", "cannot be marked optional"),
        ("{a?}b", "must be at the end of the segment"),
        ("{a}-{b?}", "Only a period"),
        ("{}", "is invalid"),
        ("a?b", "literal section '?'"),
    ],
)
def test_invalid_route_templates_are_rejected(template: str, message: str) -> None:
    with pytest.raises(RouteTemplateError, match=message.replace("?", r"\?")):
        RouteTemplate(template)


def test_precedence_orders_literals_before_constraints_before_parameters_before_catch_alls() -> None:
    ordered = ["a/b", "a/{x:int}", "a/{x}", "a/{*x:int}", "a/{*x}"]
    assert sorted(ordered[::-1], key=lambda t: RouteTemplate(t).precedence) == ordered


# -- the router on hand-made function metadata -----------------------------------------------------


def fake_function(name: str, route: str | None = None, methods: list[str] | None = None) -> FunctionInfo:
    trigger: dict[str, Any] = {
        "direction": "IN",
        "type": "httpTrigger",
        "name": "req",
        "authLevel": "ANONYMOUS",
    }
    if route is not None:
        trigger["route"] = route
    if methods is not None:
        trigger["methods"] = methods
    trigger_view = MappingProxyType(trigger)
    output = MappingProxyType({"direction": "OUT", "type": "http", "name": "$return"})

    def user_function(req: Any) -> str:
        return name

    return FunctionInfo(
        name=name,
        trigger_type="httpTrigger",
        trigger=trigger_view,
        bindings=(trigger_view, output),
        user_function=user_function,
        is_async=False,
        durable_name=name,
        python_name="user_function",
    )


def routed(router: HttpTriggerRouter, method: str, path: str) -> tuple[str, dict[str, str]] | None:
    found = router.match(method, path)
    return None if found is None else (found[0].name, found[1])


def test_router_prefers_the_most_specific_route_whatever_the_registration_order() -> None:
    router = HttpTriggerRouter(
        [
            fake_function("catch_all", "{*rest}"),
            fake_function("by_id", "items/{id}"),
            fake_function("by_number", "items/{id:int}"),
            fake_function("special", "items/special"),
        ],
        "api",
        InvocationLog(),
    )
    assert routed(router, "GET", "items/special") == ("special", {})
    assert routed(router, "GET", "items/5") == ("by_number", {"id": "5"})
    assert routed(router, "GET", "items/five") == ("by_id", {"id": "five"})
    assert routed(router, "GET", "other/path") == ("catch_all", {"rest": "other/path"})


def test_router_filters_on_methods_and_falls_through_to_other_routes() -> None:
    router = HttpTriggerRouter(
        [
            fake_function("reader", "things/{id}", ["get"]),
            fake_function("writer", "things/{id}", ["POST", "PUT"]),
        ],
        "api",
        InvocationLog(),
    )
    assert routed(router, "get", "things/1") == ("reader", {"id": "1"})
    assert routed(router, "PUT", "things/1") == ("writer", {"id": "1"})
    assert routed(router, "DELETE", "things/1") is None


def test_router_defaults_the_route_to_the_function_name_and_skips_other_triggers() -> None:
    orchestrator = FunctionInfo(
        name="orch",
        trigger_type="orchestrationTrigger",
        trigger=MappingProxyType({"type": "orchestrationTrigger", "name": "context"}),
        bindings=(),
        user_function=print,
        is_async=False,
        durable_name="orch",
        python_name="orch",
    )
    router = HttpTriggerRouter([fake_function("NoRoute"), orchestrator], "api", InvocationLog())
    assert routed(router, "GET", "noroute") == ("NoRoute", {})
    assert routed(router, "GET", "orch") is None
    assert [r[0] for r in router.routes] == ["NoRoute"]


def test_router_reports_an_invalid_route_as_an_app_load_error() -> None:
    with pytest.raises(AppLoadError, match=r"Function 'bad' has an invalid route template 'a//b'"):
        HttpTriggerRouter([fake_function("bad", "a//b")], "api", InvocationLog())


def test_unsupported_constraints_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="emulator.functions"):
        router = HttpTriggerRouter([fake_function("odd", "odd/{x:someday}")], "api", InvocationLog())
    assert "Route constraint 'someday' of function 'odd'" in caplog.text
    assert routed(router, "GET", "odd/value") == ("odd", {"x": "value"})


@pytest.mark.parametrize(
    ("prefix", "raw_path", "expected"),
    [
        ("api", "/api/greet/bob", "greet/bob"),
        ("api", "/API/greet", "greet"),
        ("api", "/api", ""),
        ("api", "/apix/greet", None),
        ("api", "/other/greet", None),
        ("", "/greet/bob", "greet/bob"),
        ("/v1/api/", "/v1/api/x?y=1", "x"),
    ],
)
def test_path_after_prefix(prefix: str, raw_path: str, expected: str | None) -> None:
    assert HttpTriggerRouter([], prefix, InvocationLog()).path_after_prefix(raw_path) == expected


# -- end to end over loopback --------------------------------------------------------------------


@pytest.fixture(scope="module")
def index() -> Iterator[AppIndex]:
    saved_path = list(sys.path)
    yield load_app(HTTP_BASICS)
    sys.path[:] = saved_path


def client_binding(request: web.Request) -> str:
    """The durableClient binding JSON the host passes (docs/sdk-protocol.md 11.1 shape)."""
    origin = f"http://{request.host}"
    base = f"{origin}/runtime/webhooks/durabletask"
    query = "taskHub=TestHubName&connection=Storage&code=KEY"
    management = {
        "id": "INSTANCEID",
        "statusQueryGetUri": f"{base}/instances/INSTANCEID?{query}",
        "sendEventPostUri": f"{base}/instances/INSTANCEID/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{base}/instances/INSTANCEID/terminate?reason={{text}}&{query}",
        "rewindPostUri": f"{base}/instances/INSTANCEID/rewind?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{base}/instances/INSTANCEID?{query}",
        "restartPostUri": f"{base}/instances/INSTANCEID/restart?{query}",
        "suspendPostUri": f"{base}/instances/INSTANCEID/suspend?reason={{text}}&{query}",
        "resumePostUri": f"{base}/instances/INSTANCEID/resume?reason={{text}}&{query}",
    }
    return json.dumps(
        {
            "taskHubName": "TestHubName",
            "connectionName": None,
            "creationUrls": {
                "createNewInstancePostUri": (
                    f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]?code=KEY"
                ),
                "createAndWaitOnNewInstancePostUri": (
                    f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
                    "?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&code=KEY"
                ),
            },
            "managementUrls": management,
            "baseUrl": base,
            "requiredQueryStringParameters": "code=KEY",
            "rpcBaseUrl": "http://127.0.0.1:17071/durabletask/",
            "httpBaseUrl": None,
        }
    )


class RecordingResolver:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, fn: FunctionInfo, binding: Mapping[str, Any], request: web.Request) -> Any:
        self.calls.append((fn.name, dict(binding)))
        if binding.get("type") == "durableClient":
            return client_binding(request)
        return None


@asynccontextmanager
async def serve(
    index: AppIndex,
    resolver: InputResolver | None = None,
    invocations: InvocationLog | None = None,
    route_prefix: str = "api",
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    router = HttpTriggerRouter(
        index.http_functions, route_prefix, invocations or InvocationLog(), script_root=index.script_root
    )
    resolve = resolver or RecordingResolver()

    async def dispatch(request: web.Request) -> web.StreamResponse:
        return await router.handle(request, resolve)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def test_get_with_route_parameter(index: AppIndex) -> None:
    async with serve(index) as client:
        response = await client.get("/api/greet/bob")
        assert response.status == 200
        assert await response.text() == "Hello, bob!"
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_wrong_method_on_a_known_route_is_404_with_empty_body(index: AppIndex) -> None:
    async with serve(index) as client:
        response = await client.post("/api/greet/bob")
        assert response.status == 404
        assert await response.read() == b""


async def test_unknown_paths_are_404_with_empty_body(index: AppIndex) -> None:
    async with serve(index) as client:
        for path in ("/api/no/such/route", "/elsewhere/greet/bob", "/api/square/abc"):
            response = await client.get(path)
            assert response.status == 404, path
            assert await response.read() == b"", path


async def test_optional_parameter_and_literal_precedence(index: AppIndex) -> None:
    async with serve(index) as client:
        assert await (await client.get("/api/items")).text() == "all items"
        assert await (await client.get("/api/items/12")).text() == "item 12"
        assert await (await client.get("/api/items/special")).text() == "the special item"


async def test_int_constraint(index: AppIndex) -> None:
    async with serve(index) as client:
        response = await client.get("/api/square/12")
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert await response.json() == {"square": 144}


async def test_empty_route_prefix(index: AppIndex) -> None:
    async with serve(index, route_prefix="") as client:
        assert await (await client.get("/greet/ann")).text() == "Hello, ann!"
        assert (await client.get("/api/greet/ann")).status == 404


async def test_slow_sync_functions_run_concurrently(index: AppIndex) -> None:
    async with serve(index) as client:
        began = time.monotonic()
        first, second = await asyncio.gather(client.get("/api/slow"), client.get("/api/slow"))
        elapsed = time.monotonic() - began
        one, two = await first.json(), await second.json()
    assert first.status == second.status == 200
    assert elapsed < 0.95, f"two 0.5 s requests took {elapsed:.2f} s: they did not overlap"
    assert one["started"] < two["ended"] and two["started"] < one["ended"]
    assert one["thread"] != two["thread"]


async def test_a_slow_sync_function_does_not_block_other_requests(index: AppIndex) -> None:
    async with serve(index) as client:
        slow = asyncio.ensure_future(client.get("/api/slow"))
        await asyncio.sleep(0.1)
        began = time.monotonic()
        quick = await client.get("/api/greet/fast")
        quick_time = time.monotonic() - began
        assert await quick.text() == "Hello, fast!"
        assert not slow.done()
        assert (await slow).status == 200
    assert quick_time < 0.3


async def test_async_function_gets_body_method_and_query(index: AppIndex) -> None:
    payload = bytes(range(256))
    async with serve(index) as client:
        response = await client.put("/api/echo?q=1&q=2&empty=", data=payload)
        assert response.status == 201
        assert await response.read() == payload
        assert response.headers["X-Echo-Method"] == "PUT"
        # Like the host: repeated keys joined with ",", empty values left out.
        assert json.loads(response.headers["X-Echo-Query"]) == {"q": "1,2"}
        assert response.headers["Content-Type"] == "application/octet-stream"


async def test_request_object_is_a_real_func_http_request(index: AppIndex) -> None:
    async with serve(index) as client:
        url = client.make_url("/api/request-info?x=1")
        response = await client.get("/api/request-info?x=1", headers={"X-Custom": "Value"})
        info = await response.json()
    assert info["is_func_request"] is True
    assert info["type"] == "azure.functions.http.HttpRequest"
    assert info["method"] == "GET"
    assert info["url"] == str(url)
    assert info["params"] == {"x": "1"}
    assert info["route_params"] == {}
    assert info["headers"]["x-custom"] == "Value"
    assert all(name == name.lower() for name in info["headers"])


async def test_str_return_is_plain_text(index: AppIndex) -> None:
    async with serve(index) as client:
        response = await client.get("/api/text")
        assert response.status == 200
        assert await response.text() == "just text"
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_unhandled_exception_is_500_empty_logged_and_serving_continues(
    index: AppIndex, caplog: pytest.LogCaptureFixture
) -> None:
    invocations = InvocationLog()
    with caplog.at_level(logging.ERROR, logger="emulator.functions"):
        async with serve(index, invocations=invocations) as client:
            response = await client.get("/api/boom")
            assert response.status == 500
            assert await response.read() == b""
            assert (await client.get("/api/greet/after")).status == 200
    failures = [r for r in caplog.records if r.getMessage().startswith("Function 'boom' failed")]
    assert len(failures) == 1
    message = failures[0].getMessage()
    assert message.splitlines()[0] == "Function 'boom' failed: ValueError: boom"
    assert "function_app.py" in message and 'raise ValueError("boom")' in message
    assert "_http_triggers.py" not in message and "_user_code.py" not in message
    (record,) = invocations.records("boom")
    assert record.succeeded is False and record.error == "ValueError: boom"


async def test_returning_none_fails_like_the_worker(
    index: AppIndex, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="emulator.functions"):
        async with serve(index) as client:
            response = await client.get("/api/nothing")
            assert response.status == 500
            assert await response.read() == b""
    assert 'unsupported type "http" for Python type "NoneType"' in caplog.text


async def test_out_parameter_for_the_http_output(index: AppIndex) -> None:
    async with serve(index) as client:
        response = await client.get("/api/out-param")
        assert response.status == 202
        assert await response.text() == "set through Out"


async def test_context_parameter(index: AppIndex) -> None:
    invocations = InvocationLog()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    incoming = f"00-{trace_id}-00f067aa0ba902b7-01"
    async with serve(index, invocations=invocations) as client:
        response = await client.get("/api/context", headers={"traceparent": incoming})
        body = await response.json()
    (record,) = invocations.records("with_context")
    assert body["invocation_id"] == record.invocation_id
    assert body["function_name"] == "with_context"
    assert body["function_directory"] == str(HTTP_BASICS.resolve())
    assert body["retry_count"] == 0
    assert body["thread_invocation_id"] == record.invocation_id
    version, got_trace, span, flags = body["trace_parent"].split("-")
    assert (version, got_trace, flags) == ("00", trace_id, "01")
    assert span != "00f067aa0ba902b7" and len(span) == 16


async def test_durable_client_binding_reaches_the_sdk_wrapper(index: AppIndex) -> None:
    resolver = RecordingResolver()
    async with serve(index, resolver) as client:
        response = await client.post("/api/orchestrators/HelloSequence", json={"a": 1})
        assert response.status == 200
        body = await response.json()
        origin = f"http://{client.host}:{client.port}"
    assert body["function_name"] == "HelloSequence"
    assert body["client_type"] == "DurableOrchestrationClient"
    assert body["status_query_get_uri"] == (
        f"{origin}/runtime/webhooks/durabletask/instances/abc123?taskHub=TestHubName&connection=Storage&code=KEY"
    )
    assert resolver.calls == [
        ("StartOrchestration", {"direction": "IN", "type": "durableClient", "name": "client"})
    ]


async def test_an_async_resolver_is_awaited(index: AppIndex) -> None:
    async def resolve(fn: FunctionInfo, binding: Mapping[str, Any], request: web.Request) -> str:
        await asyncio.sleep(0)
        return client_binding(request)

    async with serve(index, resolve) as client:
        response = await client.post("/api/orchestrators/X")
        assert response.status == 200
        assert (await response.json())["client_type"] == "DurableOrchestrationClient"


async def test_every_http_invocation_is_recorded_with_the_host_reason(index: AppIndex) -> None:
    invocations = InvocationLog()
    async with serve(index, invocations=invocations) as client:
        await client.get("/api/greet/a")
        await client.get("/api/greet/b")
        await client.get("/api/not-found")
    records = invocations.records()
    assert [r.function_name for r in records] == ["greet", "greet"]
    assert all(r.reason == HTTP_INVOCATION_REASON and r.succeeded for r in records)
    assert HTTP_INVOCATION_REASON == "This function was programmatically called via the host APIs."
