"""Client operations ride out a storage outage; what still fails gets a plain 503, the host
status and one log line say what is wrong, and the host recovers by itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.host._azurite import AzuriteServer
from emulator.testing import SubprocessHost
from tests.conftest import TEST_APPS
from tests.support import request, wait_for_status, wait_until

CRASH_APP = TEST_APPS / "crash_app"
API = "/runtime/webhooks/durabletask"
ITEMS = [f"o{i:02d}" for i in range(10)]


@pytest.fixture
def azurite(tmp_path: Path) -> Iterator[list[AzuriteServer]]:
    """This test's own Azurite (the list holds the one running now), so it may stop or freeze it."""
    servers = [AzuriteServer.start(tmp_path / "azurite")]
    try:
        yield servers
    finally:
        for server in servers:
            server.resume()
            server.stop()


@pytest.fixture
def host(azurite: list[AzuriteServer], tmp_path: Path) -> Iterator[SubprocessHost]:
    started = SubprocessHost(
        CRASH_APP, connection_string=azurite[0].connection_string, log_path=tmp_path / "host.log"
    )
    try:
        yield started.start()
    finally:
        started.kill()


def _not_answering(server: AzuriteServer) -> str:
    return f"storage at http://127.0.0.1:{server.endpoints.table_port} is not answering; retrying"


def _host_status(host: SubprocessHost) -> dict[str, object]:
    reply = request("GET", f"{host.base_url}/admin/host/status")
    assert reply.status == 200, reply.body
    status: dict[str, object] = reply.json()
    return status


def test_a_start_while_azurite_restarts_is_retried_and_runs(
    azurite: list[AzuriteServer], host: SubprocessHost, tmp_path: Path
) -> None:
    first = azurite[0]
    first.stop()  # Azurite keeps its data on disk; it comes back on the same ports

    def restart() -> None:
        azurite.append(AzuriteServer.start(tmp_path / "azurite", first.endpoints))

    comeback = threading.Timer(3.0, restart)
    comeback.start()
    try:
        reply = request(
            "POST", f"{host.base_url}{API}/orchestrators/PlainFanOut", {"items": ITEMS, "delay": 0}
        )
    finally:
        comeback.join()
    assert reply.status == 202, reply.body
    status = wait_for_status(reply.json()["statusQueryGetUri"], timeout=120)
    assert status["output"] == [f"done {item}" for item in ITEMS]
    log = (tmp_path / "host.log").read_text()
    assert _not_answering(first) in log
    assert "is answering again" in log
    assert "Traceback" not in log


def test_a_call_storage_never_answers_gets_503_and_the_host_recovers(
    azurite: list[AzuriteServer], host: SubprocessHost, tmp_path: Path
) -> None:
    server = azurite[0]
    reply = request("POST", f"{host.base_url}{API}/orchestrators/WaitForEvent")
    assert reply.status == 202, reply.body
    started = reply.json()
    wait_until(lambda: request("GET", started["statusQueryGetUri"]).json()["runtimeStatus"] == "Running")

    server.pause()  # every storage request now waits for an answer that does not come
    try:
        stalled = request("GET", started["statusQueryGetUri"])
        assert stalled.status == 503, stalled.body
        assert (
            f"The storage account at http://127.0.0.1:{server.endpoints.table_port} is not answering"
            in (stalled.json()["Message"])
        )
        assert _host_status(host)["errors"] == [_not_answering(server)]
        assert _host_status(host)["state"] == "Error"
    finally:
        server.resume()

    wait_until(lambda: _host_status(host)["state"] == "Running", timeout=60)
    assert "errors" not in _host_status(host)
    raised = request("POST", started["sendEventPostUri"].replace("{eventName}", "Go"), "now")
    assert raised.status == 202, raised.body
    assert wait_for_status(started["statusQueryGetUri"], timeout=60)["output"] == "done now"
    log = (tmp_path / "host.log").read_text()
    assert log.count(_not_answering(server)) == 1
    assert "is answering again" in log
    assert "Traceback" not in log
