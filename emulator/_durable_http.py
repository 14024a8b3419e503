"""The Durable Functions HTTP management API over aiohttp.

The same handler serves the public webhook routes (``/runtime/webhooks/durabletask/...``, what
``statusQueryGetUri`` and friends point to) and the local RPC routes under ``rpcBaseUrl`` that
the Python SDK's client calls, as the real ``HttpApiHandler`` does. Route matching ignores
case and surrounding slashes like ASP.NET's template matcher.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from emulator._client import RPC_PATH, WEBHOOK_PATH, ClientError, DurableClientService
from emulator._client import RUNNING_STATES as _RUNNING_STATES
from emulator._history import OrchestrationStatus

logger = logging.getLogger("emulator.http")

_BAD_ARGUMENTS = "One or more of the arguments submitted is incorrect"
_SERVER_ERROR = "Something went wrong while processing your request"
_RUNNING_NAMES = frozenset(s.name for s in _RUNNING_STATES)


def _flag(request: web.Request, name: str, default: bool) -> bool:
    for key, value in request.query.items():
        if key.lower() == name.lower():
            return value.strip().lower() == "true"
    return default


def error_response(status: int, exception_message: str, exception_type: str) -> web.Response:
    """The HttpError body of ``CreateErrorResponse``; the SDK reads ``ExceptionMessage``."""
    body = {
        "Message": _BAD_ARGUMENTS if status == 400 else _SERVER_ERROR,
        "ExceptionMessage": exception_message,
        "ExceptionType": exception_type,
        "StackTrace": None,
    }
    return web.json_response(body, status=status)


def _json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class DurableHttpApi:
    def __init__(self, client: DurableClientService) -> None:
        self._client = client

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", WEBHOOK_PATH + "{tail:(/.*)?}", self._handle)
        app.router.add_route("*", RPC_PATH.rstrip("/") + "{tail:(/.*)?}", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        segments = [s for s in request.match_info.get("tail", "").split("/") if s]
        lowered = [s.lower() for s in segments]
        try:
            if request.method == "POST" and lowered[:1] == ["orchestrators"] and 2 <= len(segments) <= 3:
                return await self._start(request, segments[1], segments[2] if len(segments) == 3 else None)
            if request.method == "GET" and lowered[:1] == ["instances"] and len(segments) == 2:
                return await self._status(request, segments[1])
        except ClientError as exc:
            return error_response(exc.status, exc.message, exc.exception_type)
        except Exception as exc:
            logger.exception("Durable HTTP API request %s %s failed", request.method, request.path)
            return error_response(500, str(exc), type(exc).__name__)
        # No route, or a route with another method: the real handler answers 404 with no body.
        return web.Response(status=404)

    async def _start(self, request: web.Request, name: str, instance_id: str | None) -> web.Response:
        body = await request.read()
        input_text: str | None = None
        if body.strip():
            try:
                value = json.loads(body)
            except ValueError as exc:
                raise ClientError(400, f"Invalid JSON content: {exc}") from exc
            # Stored as the compact re-serialization of the parsed body, like JToken.ToString.
            input_text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        instance_id = await self._client.start_new(name, instance_id, input_text)
        payload = self._client.check_status_payload(instance_id, origin=f"{request.scheme}://{request.host}")
        return _json_response(payload, 202, {"Location": payload["statusQueryGetUri"], "Retry-After": "10"})

    async def _status(self, request: web.Request, instance_id: str) -> web.Response:
        status = await self._client.get_status(
            instance_id,
            show_input=_flag(request, "showInput", True),
            show_history=_flag(request, "showHistory", False),
            show_history_output=_flag(request, "showHistoryOutput", False),
        )
        if status is None:
            return web.Response(status=404)
        runtime_status = status["runtimeStatus"]
        if runtime_status in _RUNNING_NAMES:
            return _json_response(status, 202, {"Location": str(request.url), "Retry-After": "5"})
        if runtime_status == OrchestrationStatus.Failed.name and _flag(
            request, "returnInternalServerErrorOnFailure", False
        ):
            return _json_response(status, 500)
        return _json_response(status, 200)
