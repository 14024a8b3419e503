"""Stopping a host (SIGTERM, Ctrl+C) is prompt whatever its storage does; the next host redoes
what the stop cut off."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.host._azurite import AzuriteServer
from emulator.host._stopping import STOP_GRACE_ENV_VAR
from emulator.testing import SubprocessHost
from tests.conftest import TEST_APPS
from tests.support import request, wait_for_status

CRASH_APP = TEST_APPS / "crash_app"
GRACE_SECONDS = 2.0
#: A generous bound on what stopping may add to the grace period (closing clients, the interpreter).
STOP_MARGIN_SECONDS = 30.0
ITEMS = [f"s{i:02d}" for i in range(30)]


@pytest.fixture
def azurite(tmp_path: Path) -> Iterator[AzuriteServer]:
    """An Azurite of this test's own, so that it may be frozen."""
    server = AzuriteServer.start(tmp_path / "azurite")
    try:
        yield server
    finally:
        server.resume()
        server.stop()


def _host(azurite: AzuriteServer, tmp_path: Path, name: str) -> SubprocessHost:
    return SubprocessHost(
        CRASH_APP,
        connection_string=azurite.connection_string,
        lease_seconds=4.0,
        env={STOP_GRACE_ENV_VAR: str(GRACE_SECONDS)},
        log_path=tmp_path / f"{name}.log",
    )


def test_a_host_whose_storage_stalls_stops_within_its_grace_period(
    azurite: AzuriteServer, tmp_path: Path
) -> None:
    first, second = _host(azurite, tmp_path, "first"), _host(azurite, tmp_path, "second")
    try:
        first.start()
        reply = request("POST", f"{first.base_url}/api/start/PlainFanOut", {"items": ITEMS, "delay": 0.3})
        assert reply.status == 202, reply.body
        started = reply.json()
        time.sleep(0.5)  # activities are in flight
        azurite.pause()  # every storage request from now on hangs
        assert first.process is not None
        first.process.send_signal(signal.SIGTERM)
        assert first.wait_exit(timeout=GRACE_SECONDS + STOP_MARGIN_SECONDS) == 0
        log = (tmp_path / "first.log").read_text()
        assert "Stopping the host..." in log
        assert f"not done within the {GRACE_SECONDS:g} s grace period" in log
        assert "Traceback" not in log

        azurite.resume()
        second.start()
        status_url = f"{second.base_url}/runtime/{started['statusQueryGetUri'].split('/runtime/', 1)[1]}"
        status = wait_for_status(status_url, timeout=120)
        assert status["output"] == [f"done {item}" for item in ITEMS]
    finally:
        first.kill()
        second.kill()
