"""The dashboard in a real browser: headless Chromium watches a fan-out and acts on instances.

The test app's ``Pipeline`` fans out ``Work`` activities that wait for a gate file, so the test
decides when the fan-out ends. Screenshots are kept in tests/artifacts: dashboard.png (the finished
instance), dashboard-list.png and dashboard-fan-out.png (the fan-out running).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.http._dashboard import dashboard_assets
from emulator.testing import DurableHost, DurableHostFactory
from tests.browser import Browser, Page, chromium_path
from tests.conftest import TEST_APPS

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DASHBOARD_APP = TEST_APPS / "dashboard_app"
CHROMIUM = chromium_path()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium: apt-get install chromium (./dev setup does it as root)"
)


@pytest.fixture
def dashboard_host(durable_host_factory: DurableHostFactory) -> DurableHost:
    # A task hub of its own: the instance list holds exactly this test's instances.
    return durable_host_factory(DASHBOARD_APP)


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """The file the fan-out's activities wait for; opened at the end whatever happens, so no
    activity thread outlives the test."""
    path = tmp_path / "gate"
    try:
        yield path
    finally:
        path.touch()


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def _status(host: DurableHost, instance_id: str) -> dict[str, Any]:
    url = f"{host.base_url}/runtime/webhooks/durabletask/instances/{instance_id}?showHistory=true"
    status: dict[str, Any] = json.loads(_get(url)[2])
    return status


#: Kind and state of every timeline bar, e.g. "activity:completed", in the order drawn.
BARS = (
    "Array.from(document.querySelectorAll('svg.timeline .bar'))"
    ".map(b => `${b.dataset.kind}:${b.dataset.state}`)"
)


ROWS = "Array.from(document.querySelectorAll('#instances-body tr[data-instance-id]'))"
ROW_IDS = f"{ROWS}.map(r => r.dataset.instanceId).sort().join(',')"


async def _act(page: Page, action: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    """Run an action through the instance page's form; the HTTP status and body it reports."""
    await page.click(f"button[data-action={action}]")
    for name, value in (fields or {}).items():
        await page.type_into(f"#action-form [name={name}]", value)
    await page.evaluate("delete document.getElementById('action-result').dataset.status")
    await page.click("#action-send")
    status = await page.wait_for("document.getElementById('action-result').dataset.status", what=action)
    text = await page.evaluate("document.getElementById('action-result').textContent")
    return {"status": int(status), "text": text}


async def _summary_status(page: Page, status: str) -> None:
    await page.wait_for(f"document.getElementById('summary').dataset.status === '{status}'", timeout=30)


def test_the_host_serves_the_dashboard_assets(dashboard_host: DurableHost) -> None:
    base = dashboard_host.base_url.replace("localhost", "127.0.0.1")
    status, headers, body = _get(f"{base}/dashboard")  # redirected to /dashboard/
    assert status == 200 and b'<script type="module" src="app.js">' in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    names = set(dashboard_assets())
    assert {"index.html", "app.js", "api.js", "timeline.js", "dashboard.css", "favicon.svg"} <= names
    for name in names:
        _, headers, body = _get(f"{base}/dashboard/{name}")
        assert body, name
        # No CDN, no web fonts: nothing a page loads may point off the host.
        assert not re.search(rb"https?://(?!www\.w3\.org/2000/svg)", body), name
    with pytest.raises(urllib.error.HTTPError) as missing:
        _get(f"{base}/dashboard/..%2Fpyproject.toml")
    assert missing.value.code == 404


@needs_chromium
async def test_dashboard_watches_a_fan_out_and_acts_on_instances(
    dashboard_host: DurableHost, gate: Path, tmp_path: Path
) -> None:
    host = dashboard_host
    base = host.base_url.replace("localhost", "127.0.0.1")
    watched = host.start_orchestration("Pipeline", {"items": 4, "gate": str(gate)}, instance_id="pipe-watch")
    stopped = host.start_orchestration("Pipeline", {"items": 2, "gate": str(gate)}, instance_id="pipe-stop")
    host.start_orchestration("Child", instance_id="solo-child")
    assert CHROMIUM is not None

    async with Browser.launch(tmp_path / "chromium-profile", CHROMIUM) as browser:
        page = await browser.new_page()

        # -- the list: every instance, then only the ones the id prefix selects -------------------
        await page.navigate(f"{base}/dashboard/")
        await page.wait_for(f"{ROW_IDS} === 'pipe-stop,pipe-watch,solo-child'", what="all three instances")
        await page.type_into("input[name=prefix]", "pipe-")
        await page.wait_for(f"{ROW_IDS} === 'pipe-stop,pipe-watch'", what="the prefix filter")
        assert "prefix=pipe-" in await page.evaluate("location.hash")
        running = f"{ROWS}.filter(r => r.dataset.status === 'Running').length"
        await page.wait_for(f"{running} === 2", what="both pipelines Running in the list")
        await page.screenshot(ARTIFACTS / "dashboard-list.png")

        # -- one instance while its fan-out runs: four parallel open bars ---------------------------
        await page.click("#instances-body tr[data-instance-id=pipe-watch] a")
        await page.wait_for(f"{BARS}.join() === 'activity:completed,{','.join(['activity:open'] * 4)}'")
        starts = await page.evaluate(
            "Array.from(document.querySelectorAll('.bar[data-name=Work] .fill')).map(r => r.x.baseVal.value)"
        )
        assert len(starts) == 4 and len(set(starts)) == 1, starts  # scheduled together: one start
        assert "fan-out" in await page.evaluate("document.getElementById('custom-status').textContent")
        assert host.get_status(watched).runtime_status.value == "Running"  # the page did not lie
        await page.screenshot(ARTIFACTS / "dashboard-fan-out.png")

        # -- the fan-out ends; a retry, its timer and a sub-orchestration follow -------------------
        gate.touch()
        await page.wait_for(
            "document.getElementById('custom-status').textContent.includes('waiting for approval')",
            timeout=30,
        )
        kinds: list[str] = await page.wait_for(f"{BARS}.length === 9 && {BARS}")
        assert sorted(kinds) == sorted(
            ["activity:completed"] * 6 + ["activity:failed", "timer:completed", "suborchestration:completed"]
        )
        flaky = await page.evaluate(
            "Array.from(document.querySelectorAll('.bar[data-name=Flaky]')).map(b => b.dataset.state)"
        )
        assert flaky == ["failed", "completed"]  # a retry shows as repeated bars
        child_id = await page.wait_for(
            "document.querySelector('#children a') && document.querySelector('#children a').textContent",
            what="the sub-orchestration link",
        )
        assert re.fullmatch(r"[0-9a-f]{32}:\d+", child_id), child_id
        # The sub-orchestration's bar leads to the child as well.
        href = await page.wait_for("document.querySelector('svg.timeline a.bar-link')?.getAttribute('href')")
        assert href == f"#/instances/{child_id.replace(':', '%3A')}?parent=pipe-watch"

        # -- an action through the UI: raise the event the instance waits for ----------------------
        await page.click("button[data-action=raiseEvent]")
        await page.type_into("#action-form input[name=eventName]", "Approval")
        await page.type_into("#action-form textarea[name=data]", '{"by": "dashboard"}')
        await page.click("#action-send")
        await page.wait_for("document.getElementById('action-result').dataset.status === '202'")
        await page.wait_for("document.getElementById('summary').dataset.status === 'Completed'", timeout=30)
        output = host.get_status(watched).output
        assert output["approval"] == {"by": "dashboard"} and output["sum"] == 60
        await page.wait_for(f"{BARS}.length === 9", what="the finished timeline")
        await page.screenshot(ARTIFACTS / "dashboard.png")

        # -- the child links back to its parent, also when opened directly -------------------------
        await page.click("#children a")
        await page.wait_for("document.getElementById('parent-link')?.textContent === 'pipe-watch'")
        await page.navigate(f"{base}/dashboard/#/instances/{child_id}")
        await page.wait_for(
            "document.getElementById('parent-link')?.textContent === 'pipe-watch'", what="the parent search"
        )
        assert await page.evaluate(f"{BARS}.join()") == "activity:completed,activity:completed"

        # -- terminate the other pipeline ----------------------------------------------------------
        await page.navigate(f"{base}/dashboard/#/instances/{stopped}")
        await page.wait_for("document.getElementById('summary').dataset.status === 'Running'")
        await page.click("button[data-action=terminate]")
        await page.type_into("#action-form input[name=reason]", "stopped from the dashboard")
        await page.click("#action-send")
        await page.wait_for("document.getElementById('action-result').dataset.status === '202'")
        await page.wait_for("document.getElementById('summary').dataset.status === 'Terminated'", timeout=30)
        assert _status(host, stopped)["output"] == "stopped from the dashboard"

        # Everything came from the host itself, and the pages ran without errors.
        # (data: URLs are Chromium's own icons, e.g. the date picker's.)
        elsewhere = [url for url in page.requests if not url.startswith((f"{base}/", "data:"))]
        assert page.requests and elsewhere == []
        assert page.errors == [] and page.http_errors == []


@needs_chromium
async def test_dashboard_pages_filters_and_runs_every_action(
    dashboard_host: DurableHost, tmp_path: Path
) -> None:
    host = dashboard_host
    base = host.base_url.replace("localhost", "127.0.0.1")
    children = [f"child-{n:02d}" for n in range(12)]
    for instance_id in children:
        host.start_orchestration("Child", instance_id=instance_id)
    host.start_orchestration("Waiter", instance_id="waiter")
    host.start_orchestration("FailOnce", instance_id="fail-once")
    for instance_id in children:
        host.wait_for(instance_id)
    assert host.wait_for("fail-once").runtime_status.value == "Failed"
    everything = sorted([*children, "fail-once", "waiter"])
    assert CHROMIUM is not None

    async with Browser.launch(tmp_path / "chromium-profile", CHROMIUM) as browser:
        page = await browser.new_page()
        await page.navigate(f"{base}/dashboard/")
        await page.wait_for(f"{ROW_IDS} === {json.dumps(','.join(everything))}", what="all instances")

        # -- pages of ten through the continuation token, forward and back -------------------------
        await page.choose("select[name=top]", "10")
        first = await page.wait_for(f"{ROWS}.length === 10 && {ROW_IDS}", what="a page of ten")
        await page.click("#page-next")
        second = await page.wait_for(f"{ROW_IDS} !== {json.dumps(first)} && {ROW_IDS}", what="the next page")
        assert sorted(first.split(",") + second.split(",")) == everything
        assert await page.evaluate("document.getElementById('page-next').disabled")
        await page.click("#page-prev")
        await page.wait_for(f"{ROW_IDS} === {json.dumps(first)}", what="the first page again")

        # -- the name filter reads on through pages; the status filter goes to the API ------------
        await page.type_into("input[name=name]", "Waiter")
        await page.wait_for(f"{ROW_IDS} === 'waiter'", what="the name filter")
        await page.click("#filters button.secondary")  # Clear
        await page.choose("input[name=status][value=Failed]", "on")
        await page.wait_for(f"{ROW_IDS} === 'fail-once'", what="the status filter")
        assert "status=Failed" in await page.evaluate("location.hash")

        # -- suspend, resume, restart and purge a waiting instance ---------------------------------
        await page.navigate(f"{base}/dashboard/#/instances/waiter")
        await _summary_status(page, "Running")
        assert (await _act(page, "suspend", {"reason": "a pause"}))["status"] == 202
        await _summary_status(page, "Suspended")
        assert (await _act(page, "resume"))["status"] == 202
        await _summary_status(page, "Running")
        await page.wait_for("document.querySelectorAll('.marker.suspended, .marker.resumed').length === 2")
        restarted = await _act(page, "restart")
        assert restarted["status"] == 202 and "New instance" in restarted["text"]
        new_id = await page.evaluate("document.querySelector('#action-result a').textContent")
        assert new_id != "waiter" and host.get_status(new_id).runtime_status.value in ("Pending", "Running")
        purged = await _act(page, "purge")
        assert purged["status"] == 200 and '"instancesDeleted": 1' in purged["text"]
        await page.wait_for("document.getElementById('not-found') !== null", what="the purge")
        assert host.get_status("waiter").runtime_status is None

        # -- rewind a failed instance: its activity runs again and succeeds ------------------------
        await page.navigate(f"{base}/dashboard/#/instances/fail-once")
        await _summary_status(page, "Failed")
        assert await page.evaluate("document.querySelector('.bar.failed') !== null")
        assert (await _act(page, "rewind", {"reason": "try again"}))["status"] == 202
        await _summary_status(page, "Completed")
        assert host.get_status("fail-once").output == "attempt 2"

        assert page.errors == []
        # The only failed request: the purged instance's status, 404 as the API answers.
        assert {re.sub(r"\?.*", "", e) for e in page.http_errors} == {
            f"network: Failed to load resource: the server responded with a status of 404 (Not Found) "
            f"({base}/runtime/webhooks/durabletask/instances/waiter"
        }
