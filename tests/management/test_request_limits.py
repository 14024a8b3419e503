"""Requests at the limits of the host's HTTP front and of the management API's parameters.

Each malformed request gets the real host's answer, leaves no traceback in the log, and the host
goes on serving.
"""

from __future__ import annotations

import http.client
import logging
from urllib.parse import urlsplit

import pytest

from emulator.testing import BackgroundHost
from tests.management.api_support import api, start, status, unique, wait_for
from tests.support import request

MIB = 1024 * 1024


def _raw_reply(host: BackgroundHost, method: str, path: str, headers: dict[str, str]) -> int:
    """Send only a request's head, as a client that announces a body it has not sent yet."""
    parts = urlsplit(host.base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.exc_text]


def _still_serving(host: BackgroundHost) -> None:
    instance_id = unique("alive")
    start(host, "Echo", {"ping": 1}, instance_id)
    assert wait_for(host, instance_id, "Completed")["output"] == {"ping": 1}


def test_a_body_up_to_100_mb_is_read_and_a_larger_one_gets_413(
    client_host: BackgroundHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # 70 MiB is read whole (it is past aiohttp's default limit): the answer is about its content.
    reply = request("POST", api(client_host, "/orchestrators/Echo"), raw=b"x" * (70 * MIB))
    assert reply.status == 400, reply.body[:300]
    assert reply.json()["Message"] == "Invalid JSON content"
    over = {"Content-Type": "application/json", "Content-Length": str(100 * MIB + 1)}
    assert _raw_reply(client_host, "POST", "/runtime/webhooks/durabletask/orchestrators/Echo", over) == 413
    assert _raw_reply(client_host, "POST", "/api/client/start_new", over) == 413
    assert _tracebacks(caplog) == []
    _still_serving(client_host)


def test_a_request_line_over_8_kb_gets_414_and_headers_over_32_kb_get_431(
    client_host: BackgroundHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    long_id = "x" * (9 * 1024)
    assert status(client_host, long_id).status == 414
    assert request("GET", f"{client_host.base_url}/api/{long_id}").status == 414
    # Under the limit, the request reaches its route: no such instance.
    assert status(client_host, "x" * (7 * 1024)).status == 404
    big_headers = {f"x-filler-{n}": "y" * 4000 for n in range(10)}
    assert request("GET", api(client_host, "/instances/none"), headers=big_headers).status == 431
    # One header of 10 KB is within the total the host allows.
    assert request("GET", api(client_host, "/instances/none"), headers={"x-one": "y" * 10_000}).status == 404
    # Past what the parser reads at all: aiohttp's own 400, logged in one line.
    assert status(client_host, "x" * (2 * MIB)).status == 400
    assert _tracebacks(caplog) == []
    assert any("Rejected a malformed HTTP request" in r.getMessage() for r in caplog.records)
    _still_serving(client_host)


def test_a_line_feed_in_an_instance_id_is_a_control_character(client_host: BackgroundHost) -> None:
    for escaped in ("%0A", "%0D", "%01", "%09"):
        reply = request("POST", api(client_host, f"/orchestrators/Echo/a{escaped}b"))
        assert reply.status == 400, (escaped, reply.body)
        assert "must not contain /, \\, #, ?, or control characters" in reply.json()["ExceptionMessage"]


@pytest.mark.parametrize("minimum", ["0001-01-01", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.0000000Z"])
def test_created_time_from_datetime_min_value_is_no_filter(client_host: BackgroundHost, minimum: str) -> None:
    prefix = unique("minvalue")
    start(client_host, "Echo", {"v": 1}, f"{prefix}-a")
    wait_for(client_host, f"{prefix}-a", "Completed")
    listed = request(
        "GET", api(client_host, f"/instances?createdTimeFrom={minimum}&instanceIdPrefix={prefix}")
    )
    assert [s["instanceId"] for s in listed.json()] == [f"{prefix}-a"]
    everything = "createdTimeTo=9999-12-31T23:59:59.9999999Z"
    listed = request("GET", api(client_host, f"/instances?{everything}&instanceIdPrefix={prefix}"))
    assert [s["instanceId"] for s in listed.json()] == [f"{prefix}-a"]


def test_a_created_time_outside_the_years_of_a_date_is_ignored(client_host: BackgroundHost) -> None:
    # 0001-01-01 at +01:00 is before the first moment UTC can name: not a date, so no filter.
    prefix = unique("outside")
    start(client_host, "Echo", {"v": 1}, f"{prefix}-a")
    query = f"/instances?createdTimeFrom=0001-01-01T00:00:00%2B01:00&instanceIdPrefix={prefix}"
    listed = request("GET", api(client_host, query))
    assert listed.status == 200, listed.body
    assert [s["instanceId"] for s in listed.json()] == [f"{prefix}-a"]


def test_an_instance_id_prefix_ending_in_the_last_code_point(
    client_host: BackgroundHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    prefix = unique("last")
    last = "%F4%8F%BF%BF"  # U+10FFFF
    assert request("POST", api(client_host, f"/orchestrators/Echo/{prefix}{last}-a"), {"v": 1}).status == 202
    start(client_host, "Echo", {"v": 1}, f"{prefix}z")  # sorts after the prefix, does not start with it
    listed = request("GET", api(client_host, f"/instances?instanceIdPrefix={prefix}{last}"))
    assert listed.status == 200, listed.body
    assert [s["instanceId"] for s in listed.json()] == [f"{prefix}\U0010ffff-a"]
    assert _tracebacks(caplog) == []


def test_a_garbage_continuation_token_gets_the_providers_500_without_a_traceback(
    client_host: BackgroundHost, caplog: pytest.LogCaptureFixture
) -> None:
    # The provider reads the token as base64 of JSON; what it cannot read fails the query, and
    # the handler answers any such failure with its generic 500 and the exception's message.
    caplog.set_level(logging.INFO)
    for token in ("garbage!", "Z2FyYmFnZQ==", "WzFd"):
        reply = request("GET", api(client_host, "/instances"), headers={"x-ms-continuation-token": token})
        assert reply.status == 500, (token, reply.body)
        assert reply.json()["Message"] == "Something went wrong while processing your request"
    assert _tracebacks(caplog) == []
    _still_serving(client_host)
