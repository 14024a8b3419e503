"""Plain HTTP helpers for tests: what a user's script or curl does, nothing more."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    all_headers = {"Content-Type": "application/json"} if data is not None else {}
    all_headers.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return Reply(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, dict(err.headers), err.read())


def wait_for_status(status_url: str, timeout: float = 60.0) -> dict[str, Any]:
    """Follow ``statusQueryGetUri`` like a client would: 202 while running, 200 when done."""
    deadline = time.monotonic() + timeout
    while True:
        reply = request("GET", status_url)
        if reply.status == 200:
            result: dict[str, Any] = reply.json()
            return result
        if reply.status != 202:
            raise AssertionError(f"status query answered {reply.status}: {reply.body!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"instance still {reply.json()['runtimeStatus']} after {timeout} s")
        time.sleep(0.05)
