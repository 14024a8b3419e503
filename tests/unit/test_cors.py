"""The CORS decisions (ASP.NET Core's, as func start configures them) and the origin guard's."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from emulator.app._settings import AppLoadError, AppSettings, load_settings
from emulator.http._cors import WILDCARD_WITH_CREDENTIALS, CorsConfigError, CorsPolicy
from emulator.http._origin_guard import OriginGuard, guard_route, install_browser_rules, parse_allowed_hosts
from emulator.tools._cli import build_parser

PAGE = "http://localhost:3000"
OTHER = "https://app.example"


# -- the policy -----------------------------------------------------------------------------------


def test_no_setting_means_no_cors_and_a_wildcard_with_credentials_is_refused() -> None:
    assert CorsPolicy.parse(None) is None and CorsPolicy.parse("") is None
    with pytest.raises(CorsConfigError) as refused:
        CorsPolicy.parse("*", credentials=True)
    assert str(refused.value) == WILDCARD_WITH_CREDENTIALS
    # "*" is a wildcard only on its own, so with another origin credentials are accepted.
    assert CorsPolicy.parse(f"*,{PAGE}", credentials=True) is not None


def test_origins_are_split_like_core_tools_and_matched_exactly() -> None:
    policy = CorsPolicy.parse(f"HTTP://LocalHost:3000,,{OTHER}, http://spaced")
    assert policy is not None
    assert policy.origins == (PAGE, OTHER, " http://spaced")
    assert policy.allows(PAGE) and policy.allows(OTHER)
    # The request's Origin is compared as sent: browsers send it lower-case.
    assert not policy.allows("http://LOCALHOST:3000")
    assert not policy.allows("http://spaced") and not policy.allows("") and not policy.allows(None)
    assert not policy.allows("http://localhost:3001")


def test_unmatchable_origins_are_named() -> None:
    policy = CorsPolicy.parse(f"{PAGE},{PAGE}/,http://x.example/app, http://y.example,*")
    assert policy is not None
    assert policy.unmatchable() == [f"{PAGE}/", "http://x.example/app", " http://y.example", "*"]
    assert not policy.allows("http://anything.example")  # "*" in a list is no wildcard
    wildcard = CorsPolicy.parse("*")
    assert wildcard is not None and wildcard.unmatchable() == [] and wildcard.allows("null")


def test_answers_carry_the_origin_or_the_wildcard_and_credentials_when_set() -> None:
    listed = CorsPolicy.parse(PAGE, credentials=True)
    wildcard = CorsPolicy.parse("*")
    assert listed is not None and wildcard is not None
    assert listed.origin_headers(PAGE) == {
        "Access-Control-Allow-Origin": PAGE,
        "Access-Control-Allow-Credentials": "true",
    }
    assert listed.origin_headers(OTHER) == {}
    assert wildcard.origin_headers(OTHER) == {"Access-Control-Allow-Origin": "*"}


def test_preflights_echo_the_requested_method_and_headers() -> None:
    policy = CorsPolicy.parse(PAGE)
    assert policy is not None
    assert policy.preflight_headers(PAGE, "PUT", "content-type, x-trace ,,") == {
        "Access-Control-Allow-Origin": PAGE,
        "Access-Control-Allow-Headers": "content-type,x-trace",
        "Access-Control-Allow-Methods": "PUT",
    }
    assert "Access-Control-Allow-Headers" not in policy.preflight_headers(PAGE, "POST", None)
    assert policy.preflight_headers(OTHER, "PUT", "content-type") == {}


@pytest.mark.parametrize(("setting", "varies"), [(PAGE, False), (f"{PAGE},{OTHER}", True), ("*", False)])
def test_vary_origin_when_several_origins_are_listed(setting: str, varies: bool) -> None:
    policy = CorsPolicy.parse(setting)
    assert policy is not None and policy.varies_by_origin is varies


# -- the origin guard ---------------------------------------------------------------------------

EVIL = "http://evil.example"


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("localhost:7071", None, None),  # curl, the SDK client, the CLI
        (None, None, None),
        ("127.0.0.1:7071", "http://127.0.0.1:7071", None),  # the dashboard
        ("LOCALHOST:7071", "http://localhost:7071", None),
        ("[::1]:7071", "http://[::1]:7071", None),
        ("localhost:7071", "http://127.0.0.1:7071", None),  # another loopback name of the same port
        ("localhost:7071", "http://localhost:3000", 403),  # another local server's pages
        ("localhost:7071", EVIL, 403),
        ("localhost:7071", "null", 403),  # sandboxed frames, file:// pages
        ("localhost:7071", "http://localhost:7071/", 403),
        ("evil.example:7071", None, 421),  # DNS rebinding
        ("evil.example:7071", "http://evil.example:7071", 421),
        ("localhost.evil.example:7071", None, 421),
        ("localhost:7071@evil.example", None, 421),
        ("", None, 421),
        ("localhost:99999", None, 421),
        ("localhost:7071", "http://localhost:99999", 403),
        ("localhost", "http://localhost", None),  # default ports
        ("localhost", "http://localhost:80", None),
        ("localhost", "https://localhost", None),  # behind a TLS proxy on 443
        ("localhost:80", "https://localhost", 403),
    ],
)
def test_the_guard_refuses_foreign_hosts_and_origins(
    host: str | None, origin: str | None, status: int | None
) -> None:
    refused = OriginGuard().refusal(host, origin)
    assert (refused[0] if refused else None) == status
    if refused:
        assert "\n" not in refused[1] and refused[1].startswith("Refused: ")


def test_the_guard_lets_origins_cors_allows_and_hosts_the_user_names_through() -> None:
    guard = OriginGuard(
        CorsPolicy.parse(PAGE), parse_allowed_hosts("box.internal; *.ngrok.example,Tunnel:443")
    )
    assert guard.refusal("localhost:7071", PAGE) is None
    assert guard.refusal("localhost:7071", OTHER) is not None
    assert guard.refusal("box.internal:7071", "http://box.internal:7071") is None
    assert guard.refusal("abc.ngrok.example", "https://abc.ngrok.example") is None
    assert guard.refusal("tunnel", None) is None
    assert guard.refusal("ngrok.example", None) is not None
    assert OriginGuard(CorsPolicy.parse("*")).refusal("localhost:7071", EVIL) is None
    assert OriginGuard(allowed_hosts=("*",)).refusal("anything.example", None) is None


# -- the middlewares on a small app ---------------------------------------------------------------


def _settings(tmp_path: Path, **browser: object) -> AppSettings:
    return AppSettings(script_root=tmp_path, values={}, host_json={}, **browser)  # type: ignore[arg-type]


async def _client(settings: AppSettings, **options: object) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    install_browser_rules(app, settings, **options)  # type: ignore[arg-type]

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"acted": request.method}, headers={"Access-Control-Allow-Origin": "mine"})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"streamed")
        return response

    app.router.add_route("*", "/api/answer", answer)
    app.router.add_get("/api/stream", stream)
    guard_route(app, app.router.add_route("*", "/runtime/webhooks/durabletask/{tail:.*}", answer))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def listed(tmp_path: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client = await _client(_settings(tmp_path, cors=f"{PAGE},{OTHER}", cors_credentials=True))
    yield client
    await client.close()


async def test_a_preflight_is_answered_without_reaching_the_route(
    listed: TestClient[web.Request, web.Application],
) -> None:
    headers = {
        "Origin": PAGE,
        "Access-Control-Request-Method": "DELETE",
        "Access-Control-Request-Headers": "x-a",
    }
    reply = await listed.options("/api/answer", headers=headers)
    assert reply.status == 204 and await reply.read() == b""
    assert reply.headers["Access-Control-Allow-Origin"] == PAGE
    assert reply.headers["Access-Control-Allow-Methods"] == "DELETE"
    assert reply.headers["Access-Control-Allow-Headers"] == "x-a"
    assert reply.headers["Access-Control-Allow-Credentials"] == "true"
    assert reply.headers.getall("Vary") == ["Origin"]
    # Not allowed: still 204 (the policy answers every preflight), with no CORS headers at all.
    refused = await listed.options("/api/answer", headers={**headers, "Origin": EVIL})
    assert refused.status == 204 and not any(h.startswith("Access-Control") for h in refused.headers)
    assert "Vary" not in refused.headers


async def test_answers_get_the_origin_headers_over_the_functions_own(
    listed: TestClient[web.Request, web.Application],
) -> None:
    reply = await listed.post("/api/answer", headers={"Origin": OTHER})
    assert reply.status == 200 and reply.headers["Access-Control-Allow-Origin"] == OTHER
    assert reply.headers.getall("Vary") == ["Origin"]
    streamed = await listed.get("/api/stream", headers={"Origin": PAGE})
    assert await streamed.read() == b"streamed" and streamed.headers["Access-Control-Allow-Origin"] == PAGE
    missing = await listed.get("/api/nothing-here", headers={"Origin": PAGE})
    assert missing.status == 404 and missing.headers["Access-Control-Allow-Origin"] == PAGE
    # Another origin runs the function (as under func start) but gets nothing that lets it read.
    foreign = await listed.post("/api/answer", headers={"Origin": EVIL})
    assert foreign.status == 200 and foreign.headers["Access-Control-Allow-Origin"] == "mine"
    plain = await listed.get("/api/answer")
    assert plain.headers["Access-Control-Allow-Origin"] == "mine" and "Vary" not in plain.headers


async def test_guarded_routes_refuse_foreign_origins_and_hosts(
    listed: TestClient[web.Request, web.Application],
) -> None:
    url = "/runtime/webhooks/durabletask/instances/x/terminate?reason=evil"
    hostile = await listed.post(url, data="x", headers={"Origin": EVIL, "Content-Type": "text/plain"})
    assert hostile.status == 403 and "evil.example" in await hostile.text()
    rebinding = await listed.get(
        "/runtime/webhooks/durabletask/instances", headers={"Host": "evil.example:7071"}
    )
    assert rebinding.status == 421 and "--allowed-hosts" in await rebinding.text()
    # Preflights of foreign origins never reach the route either; listed origins and plain clients do.
    assert (await listed.post(url, headers={"Origin": PAGE})).status == 200
    assert (await listed.post(url)).status == 200
    assert json.loads(await (await listed.post(url)).text()) == {"acted": "POST"}


async def test_without_cors_nothing_is_added_and_preflights_reach_the_routes(tmp_path: Path) -> None:
    client = await _client(_settings(tmp_path))
    try:
        headers = {"Origin": PAGE, "Access-Control-Request-Method": "POST"}
        reply = await client.options("/api/answer", headers=headers)
        assert reply.status == 200 and reply.headers["Access-Control-Allow-Origin"] == "mine"
        guarded = await client.options("/runtime/webhooks/durabletask/instances", headers=headers)
        assert guarded.status == 403
    finally:
        await client.close()


async def test_the_options_replace_the_settings(tmp_path: Path) -> None:
    client = await _client(_settings(tmp_path, cors="*"), cors=PAGE, allowed_hosts=["box.internal"])
    try:
        assert (
            "Access-Control-Allow-Origin"
            not in (await client.get("/api/stream", headers={"Origin": OTHER})).headers
        )
        guarded = await client.get("/runtime/webhooks/durabletask/i", headers={"Host": "box.internal:1"})
        assert guarded.status == 200
    finally:
        await client.close()
    with pytest.raises(AppLoadError, match="does not allow specifying a wildcard"):
        install_browser_rules(web.Application(), _settings(tmp_path, cors="*"), credentials=True)


# -- settings and options -------------------------------------------------------------------------


def _app(tmp_path: Path, local_settings: object) -> Path:
    (tmp_path / "host.json").write_text('{"version": "2.0"}')
    (tmp_path / "local.settings.json").write_text(json.dumps(local_settings))
    return tmp_path


def test_the_host_section_is_read_in_any_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMULATOR_ALLOWED_HOSTS", raising=False)
    settings = load_settings(
        _app(
            tmp_path,
            {"host": {"cors": PAGE, "corsCREDENTIALS": "True"}, "Values": {"EMULATOR_ALLOWED_HOSTS": "box"}},
        )
    )
    assert (settings.cors, settings.cors_credentials, settings.allowed_hosts) == (PAGE, True, "box")
    assert load_settings(_app(tmp_path, {"Values": {}})).cors is None


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ([], '"Host" in local.settings.json must be a JSON object.'),
        ({"CORS": ["a"]}, "must be a string"),
        ({"CORSCredentials": "yes"}, 'not "yes"'),
    ],
)
def test_bad_host_settings_are_refused(tmp_path: Path, host: object, message: str) -> None:
    with pytest.raises(AppLoadError, match=message):
        load_settings(_app(tmp_path, {"Host": host}))


def test_start_takes_the_browser_options() -> None:
    args = build_parser().parse_args(
        ["start", "--cors", PAGE, "--cors-credentials", "--allowed-hosts", "a,b", "--allowed-hosts", "c"]
    )
    assert (args.cors, args.cors_credentials, args.allowed_hosts) == (PAGE, True, ["a,b", "c"])
    defaults = build_parser().parse_args(["start"])
    assert (defaults.cors, defaults.cors_credentials, defaults.allowed_hosts) == (None, None, [])
    assert build_parser().parse_args(["start", "--no-cors-credentials"]).cors_credentials is False


def test_origins_that_cannot_match_and_the_wildcard_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="emulator.http"):
        install_browser_rules(web.Application(), _settings(tmp_path, cors=f"{PAGE}/"))
        install_browser_rules(web.Application(), _settings(tmp_path, cors="*"))
    assert [r.getMessage() for r in caplog.records] == [
        f"CORS origin '{PAGE}/' never matches the Origin a browser sends (scheme://host:port)",
        "CORS is '*': every web page you visit may call the app, the management API and the dashboard "
        "(list origins instead).",
    ]
