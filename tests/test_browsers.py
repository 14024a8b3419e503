"""Browsers: a front end on another loopback port calls the app under CORS, as under ``func start``,
and no web page drives the task hub behind the user's back (emulator/http/_origin_guard.py).

The front end is a page served by the test on a port of its own and loaded in headless Chromium;
each host is the ``cors_app`` test app with a local.settings.json written for it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from emulator.host._azurite import free_port
from emulator.testing import DurableHost, HostConfig
from tests.browser import Browser, Page, chromium_path
from tests.conftest import TEST_APPS
from tests.support import request

APP = TEST_APPS / "cors_app"
CHROMIUM = chromium_path()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium: apt-get install chromium (./dev setup does it as root)"
)
#: Where a DNS-rebinding page lives: the browser resolves it to loopback, as after the rebinding.
REBOUND = "rebound.example"


@pytest.fixture(scope="module")
def page_port() -> int:
    return free_port()


def _origin(page_port: int) -> str:
    return f"http://127.0.0.1:{page_port}"


@contextlib.contextmanager
def _host(
    root: Path, storage_connection: str, hub: str, host_section: dict[str, Any] | None
) -> Iterator[DurableHost]:
    shutil.copytree(APP, root)
    local = {"IsEncrypted": False, "Values": {}, **({"Host": host_section} if host_section else {})}
    (root / "local.settings.json").write_text(json.dumps(local))
    host = DurableHost(HostConfig(root, task_hub=hub), storage_connection).start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def listed_host(
    tmp_path_factory: pytest.TempPathFactory, storage_connection: str, page_port: int
) -> Iterator[DurableHost]:
    """CORS names the front end's origin (and one more), with credentials."""
    section = {"cors": f"{_origin(page_port)},http://localhost:1", "CORSCredentials": True}
    with _host(tmp_path_factory.mktemp("listed") / "app", storage_connection, "CorsListed", section) as host:
        yield host


@pytest.fixture(scope="module")
def wildcard_host(tmp_path_factory: pytest.TempPathFactory, storage_connection: str) -> Iterator[DurableHost]:
    with _host(
        tmp_path_factory.mktemp("wild") / "app", storage_connection, "CorsWildcard", {"CORS": "*"}
    ) as host:
        yield host


@pytest.fixture(scope="module")
def closed_host(tmp_path_factory: pytest.TempPathFactory, storage_connection: str) -> Iterator[DurableHost]:
    """No CORS at all."""
    with _host(tmp_path_factory.mktemp("closed") / "app", storage_connection, "CorsClosed", None) as host:
        yield host


@contextlib.asynccontextmanager
async def _front_end(port: int) -> AsyncIterator[str]:
    """A page of another origin, on its own loopback port; its URL."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>front end</title><p>front end</p>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _browser_on(url: str, tmp_path: Path, *flags: str) -> AsyncIterator[Page]:
    assert CHROMIUM is not None
    # A profile per browser: a finished one leaves its DevToolsActivePort behind.
    profile = tmp_path / f"chromium-{len(list(tmp_path.glob('chromium-*')))}"
    async with Browser.launch(profile, CHROMIUM, flags) as browser:
        page = await browser.new_page()
        await page.navigate(url)
        yield page


async def _fetch(page: Page, url: str, **init: Any) -> dict[str, Any]:
    """``fetch`` from the page: the status and body, or the error when the browser blocks it."""
    result: dict[str, Any] = await page.evaluate(
        f"""(async () => {{
            try {{
                const r = await fetch({json.dumps(url)}, {json.dumps(init)});
                return {{ok: true, status: r.status, body: await r.text()}};
            }} catch (e) {{
                return {{ok: false, error: String(e)}};
            }}
        }})()"""
    )
    return result


def _runtime_status(host: DurableHost, instance_id: str) -> str:
    status: str = request(
        "GET", f"{host.base_url}/runtime/webhooks/durabletask/instances/{instance_id}"
    ).json()["runtimeStatus"]
    return status


def _still_running_after(host: DurableHost, instance_id: str, seconds: float = 1.5) -> bool:
    # A terminate that got through is applied well within this.
    time.sleep(seconds)
    return _runtime_status(host, instance_id) == "Running"


# -- CORS for the app ---------------------------------------------------------------------------


@needs_chromium
async def test_a_front_end_calls_the_app_and_follows_its_instances_when_cors_names_its_origin(
    listed_host: DurableHost, page_port: int, tmp_path: Path
) -> None:
    api = f"{listed_host.base_url}/api/hello"
    instance = listed_host.start_orchestration("Waiter", instance_id="front-end-follows")
    async with _front_end(page_port) as url, _browser_on(url, tmp_path) as page:
        simple = await _fetch(page, api)
        assert simple == {"ok": True, "status": 200, "body": '{"method": "GET", "trace": null}'}
        # A request with a header of its own and JSON goes after a preflight.
        preflighted = await _fetch(
            page, api, method="PUT", headers={"Content-Type": "application/json", "X-Trace": "t-1"}, body="{}"
        )
        assert preflighted["ok"] and json.loads(preflighted["body"]) == {"method": "PUT", "trace": "t-1"}
        credentialed = await _fetch(page, api, method="POST", credentials="include")
        assert credentialed["ok"] and credentialed["status"] == 200
        # The management API follows the same settings: the front end polls its instance.
        status = await _fetch(
            page, f"{listed_host.base_url}/runtime/webhooks/durabletask/instances/{instance}"
        )
        assert status["ok"] and json.loads(status["body"])["runtimeStatus"] == "Running"
        raised = await _fetch(
            page,
            f"{listed_host.base_url}/runtime/webhooks/durabletask/instances/{instance}/raiseEvent/Go",
            method="POST",
            headers={"Content-Type": "application/json"},
            body='"from the front end"',
        )
        assert raised == {"ok": True, "status": 202, "body": ""}
    assert listed_host.wait_for(instance).output == "from the front end"


@needs_chromium
async def test_with_a_wildcard_any_page_reads_the_app_but_not_with_credentials(
    wildcard_host: DurableHost, page_port: int, tmp_path: Path
) -> None:
    api = f"{wildcard_host.base_url}/api/hello"
    async with _front_end(page_port) as url, _browser_on(url, tmp_path) as page:
        assert (await _fetch(page, api, method="DELETE"))["status"] == 200
        # "*" answers every origin, which browsers never accept for a request with credentials.
        blocked = await _fetch(page, api, credentials="include")
        assert blocked == {"ok": False, "error": "TypeError: Failed to fetch"}


# -- without CORS, and pages that try to act behind the user's back --------------------------------


@needs_chromium
async def test_without_cors_the_browser_blocks_the_front_end_and_a_hostile_page_acts_on_nothing(
    closed_host: DurableHost, page_port: int, tmp_path: Path
) -> None:
    base = closed_host.base_url
    instance = closed_host.start_orchestration("Waiter", instance_id="hostile-page-target")
    terminate = f"{base}/runtime/webhooks/durabletask/instances/{instance}/terminate?reason=evil"
    async with _front_end(page_port) as url, _browser_on(url, tmp_path) as page:
        assert await _fetch(page, f"{base}/api/hello") == {"ok": False, "error": "TypeError: Failed to fetch"}
        # A "simple" request needs no preflight: the browser sends it, and the guard stops it.
        sent = await _fetch(
            page, terminate, method="POST", mode="no-cors", headers={"Content-Type": "text/plain"}, body="x"
        )
        assert sent == {"ok": True, "status": 0, "body": ""}  # opaque: the page learns nothing
    assert _still_running_after(closed_host, instance)

    # A DNS-rebinding page: same-origin to itself, served by the emulator's port under its name.
    port = base.rsplit(":", 1)[1]
    rebound = f"http://{REBOUND}:{port}"
    async with _browser_on(
        f"{rebound}/dashboard/", tmp_path, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"
    ) as page:
        listing = await _fetch(page, f"{rebound}/runtime/webhooks/durabletask/instances")
        assert listing["ok"] and listing["status"] == 421 and instance not in listing["body"]
        assert (await _fetch(page, terminate.replace(base, rebound), method="POST"))["status"] == 421
        assert instance not in await page.evaluate("document.body.innerText")
    assert _still_running_after(closed_host, instance, 0.5)
    # The control: the same terminate from a client without Origin (curl, the SDK) goes through.
    assert request("POST", terminate).status == 202
    closed_host.wait_for(instance)
    assert _runtime_status(closed_host, instance) == "Terminated"


def test_hostile_requests_get_a_reason_and_leave_the_instance_running(
    closed_host: DurableHost, listed_host: DurableHost
) -> None:
    for host in (closed_host, listed_host):
        instance = host.start_orchestration("Waiter")
        webhooks = f"{host.base_url}/runtime/webhooks/durabletask"
        terminate = f"{webhooks}/instances/{instance}/terminate?reason=evil"
        hostile = request(
            "POST",
            terminate,
            raw=b"x",
            headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
        )
        assert hostile.status == 403, hostile.body
        assert hostile.body.decode().startswith("Refused: a page from 'http://evil.example' may not use")
        port = host.base_url.rsplit(":", 1)[1]
        listing = request("GET", f"{webhooks}/instances", headers={"Host": f"evil.example:{port}"})
        assert listing.status == 421 and instance.encode() not in listing.body
        purge = request(
            "DELETE", f"{webhooks}/instances/{instance}", headers={"Host": f"evil.example:{port}"}
        )
        assert purge.status == 421
        dashboard = request("GET", f"{host.base_url}/dashboard/", headers={"Host": f"evil.example:{port}"})
        assert dashboard.status == 421
        assert _still_running_after(host, instance)
        # Its own origin (the dashboard's) is let through.
        own = request("POST", terminate, headers={"Origin": host.base_url.replace("localhost", "127.0.0.1")})
        assert own.status == 202
