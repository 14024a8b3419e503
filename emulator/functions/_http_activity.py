"""The host's built-in activity behind ``context.call_http`` (``BuiltIn::HttpActivity``).

Sends the DurableHttpRequest and returns a DurableHttpResponse. With the asynchronous pattern
(202 Accepted plus a Location header) it keeps polling the Location with GET, waiting
Retry-After seconds (or the default of 30 s) in between, until the answer is not 202. The real
host spaces those polls with durable timers in the orchestration's history; here they happen
inside the one activity, so the orchestrator sees the same single task and final response.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urljoin

import aiohttp

DEFAULT_POLL_SECONDS = 30.0


def _headers(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    # DurableHttpRequest headers may be single values or lists of values.
    return {str(k): ", ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in raw.items()}


async def run_http_activity(request: dict[str, Any], timeout: float = 240.0) -> str:
    """Perform the request; the DurableHttpResponse JSON text becomes the task's result."""
    method = str(request.get("method") or "GET").upper()
    uri = str(request["uri"])
    content = request.get("content")
    headers = _headers(request.get("headers"))
    poll_async = request.get("asynchronousPatternEnabled", True) is not False
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        while True:
            async with session.request(method, uri, data=content, headers=headers) as response:
                body = await response.text()
                status = response.status
                response_headers = {k: v for k, v in response.headers.items()}
            location = response_headers.get("Location")
            if not (poll_async and status == 202 and location):
                break
            retry_after = response_headers.get("Retry-After")
            delay = float(retry_after) if retry_after and retry_after.isdigit() else DEFAULT_POLL_SECONDS
            await asyncio.sleep(delay)
            method, uri, content = "GET", urljoin(uri, location), None
    return json.dumps({"statusCode": status, "headers": response_headers, "content": body})
