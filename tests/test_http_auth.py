"""HTTP trigger fidelity: binary bodies, authLevel not enforced by default, function keys on request."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from emulator import HostOptions
from emulator.host._azurite import free_port
from emulator.testing import BackgroundHost
from tests.conftest import TEST_APPS, start_host
from tests.support import request

APP = TEST_APPS / "http_auth"


@pytest.fixture(scope="module")
def open_host(storage_connection: str) -> Iterator[BackgroundHost]:
    host = start_host(APP, storage_connection)
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def keyed_host(storage_connection: str) -> Iterator[BackgroundHost]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMULATOR_HOST_KEY", "test-host-key")
        patch.delenv("EMULATOR_MASTER_KEY", raising=False)
        options = HostOptions(
            script_root=APP, port=free_port(), connection_string=storage_connection, enforce_auth=True
        )
        host = BackgroundHost(options).start()
    try:
        yield host
    finally:
        host.stop()


def test_binary_bodies_reach_the_function_and_come_back_byte_for_byte(open_host: BackgroundHost) -> None:
    body = bytes(range(256)) * 64 + b"\xff\xfe\x00 not utf-8 \xc3\x28"
    reply = request(
        "POST",
        f"{open_host.base_url}/api/bytes",
        raw=body,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert reply.status == 200
    assert reply.headers["X-Body-Type"] == "bytes"
    assert reply.headers["X-Body-Sha256"] == hashlib.sha256(body).hexdigest()
    assert reply.body == body
    assert reply.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize("route", ["open", "guarded", "admin"])
def test_auth_levels_are_declared_but_not_enforced_by_default(open_host: BackgroundHost, route: str) -> None:
    reply = request("GET", f"{open_host.base_url}/api/{route}")
    assert (reply.status, reply.body) == (200, route.encode())


@pytest.mark.parametrize(
    ("route", "headers", "query", "expected"),
    [
        ("open", {}, "", 200),
        ("guarded", {}, "", 401),
        ("guarded", {"x-functions-key": "wrong"}, "", 401),
        ("guarded", {"x-functions-key": "test-host-key"}, "", 200),
        ("guarded", {}, "?code=test-host-key", 200),
        ("guarded", {}, "?code=guarded-own-key", 200),
        ("guarded", {"x-functions-key": "wrong"}, "?code=test-host-key", 401),
        ("guarded", {}, "?code=emulator-master-key", 200),
        ("other", {}, "?code=guarded-own-key", 401),
        ("admin", {}, "?code=test-host-key", 401),
        ("admin", {"x-functions-key": "emulator-master-key"}, "", 200),
    ],
)
def test_enforced_keys(
    keyed_host: BackgroundHost, route: str, headers: dict[str, str], query: str, expected: int
) -> None:
    reply = request("GET", f"{keyed_host.base_url}/api/{route}{query}", headers=headers)
    assert reply.status == expected
    if expected == 401:
        assert reply.body == b""


def test_with_keys_enforced_unknown_routes_stay_404_and_the_durable_api_stays_open(
    keyed_host: BackgroundHost,
) -> None:
    assert request("GET", f"{keyed_host.base_url}/api/nowhere").status == 404
    assert request("GET", f"{keyed_host.base_url}/runtime/webhooks/durabletask/instances").status == 200
