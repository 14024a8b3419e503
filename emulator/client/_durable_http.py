"""The Durable Functions HTTP management API over aiohttp.

The same handler serves the public webhook routes (``/runtime/webhooks/durabletask/...``, what
``statusQueryGetUri`` and friends point to) and the local RPC routes under ``rpcBaseUrl`` that
the Python SDK's client calls, as the real ``HttpApiHandler`` does: the path after the base is
URL-decoded as a whole (``+`` included) and matched against the extension's route templates,
whose literals ignore case. Codes, headers and messages follow HttpApiHandler.cs of extension
2.13 (docs/host-behaviour.md section 3).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from emulator.client._client import (
    DEFAULT_PAGE_SIZE,
    RUNNING_STATES,
    ClientError,
    DurableClientService,
    InstanceGoneError,
    InstanceNotFoundError,
    compact_json,
    format_status_time,
)
from emulator.client._entity_client import EntitySignalError, signal_input
from emulator.client._task_hubs import TaskHubClients
from emulator.durable._history import OrchestrationStatus
from emulator.taskhub._interface import InstanceQuery
from emulator.taskhub._storage_outage import StorageUnavailableError

logger = logging.getLogger("emulator.http")

_BAD_ARGUMENTS = "One or more of the arguments submitted is incorrect"
_SERVER_ERROR = "Something went wrong while processing your request"
_RUNNING_NAMES = frozenset(s.name for s in RUNNING_STATES)
_FINISHED_NAMES = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
_INSTANCE_OPERATIONS = ("terminate", "rewind", "restart", "suspend", "resume")
_CONTINUATION_HEADER = "x-ms-continuation-token"
# Both bases, matched without regard to case like the host's routing.
_BASE_RE = re.compile(r"/(?:runtime/webhooks/durabletask|durabletask)(?=/|$)", re.IGNORECASE)


def error_response(
    status: int, exception_message: str, exception_type: str, summary: str | None = None
) -> web.Response:
    """The HttpError body of ``CreateErrorResponse``; the SDK reads ``ExceptionMessage``."""
    body = {
        "Message": summary or (_BAD_ARGUMENTS if status == 400 else _SERVER_ERROR),
        "ExceptionMessage": exception_message,
        "ExceptionType": exception_type,
        "StackTrace": None,
    }
    return _json_response(body, status)


def _message_response(status: int, message: str) -> web.Response:
    """``CreateErrorResponse(status, message)`` without an exception: just a Message."""
    return _json_response({"Message": message}, status)


def _json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


# -- query string parsing the .NET way -------------------------------------------------------------


def _query_value(request: web.Request, name: str) -> str | None:
    """``NameValueCollection[name]``: keys ignore case, repeated values join with commas."""
    values = [v for k, v in request.query.items() if k.lower() == name.lower()]
    return ",".join(values) if values else None


def _flag(request: web.Request, name: str, default: bool) -> bool:
    """``bool.TryParse``: "true"/"false" in any case around blanks, anything else is the default."""
    value = (_query_value(request, name) or "").strip().lower()
    if value in ("true", "false"):
        return value == "true"
    return default


def _int_query(request: web.Request, name: str) -> int | None:
    value = (_query_value(request, name) or "").strip()
    if re.fullmatch(r"[+-]?\d+", value) and -(2**31) <= int(value) < 2**31:
        return int(value)
    return None


def _seconds_query(request: web.Request, name: str) -> float | None:
    """``double.TryParse`` of a number of seconds."""
    try:
        value = float((_query_value(request, name) or "").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_datetime(text: str | None) -> datetime | None:
    """``DateTime.TryParse`` for the ISO 8601 forms clients send; naive times are taken as UTC."""
    if text is None:
        return None
    value = text.strip()
    # Up to seven fractional digits (.NET) and a "Z" suffix; Python wants at most six.
    value = re.sub(r"(\.\d{6})\d+", r"\1", value)
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
        return (
            moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
        )
    except (ValueError, OverflowError):  # not a date, or one that falls outside years 1 to 9999 in UTC
        return None


def parse_statuses(values: Iterable[str]) -> list[OrchestrationStatus | None]:
    """``Enum.TryParse`` over comma-separated names: case-sensitive, blanks trimmed, numbers
    accepted. A name that does not parse is dropped; a number that names no status stays as
    None, which matches no instance."""
    statuses: list[OrchestrationStatus | None] = []
    for value in values:
        for part in value.split(","):
            text = part.strip()
            if text in OrchestrationStatus.__members__:
                statuses.append(OrchestrationStatus[text])
            elif text == "Unknown":  # the extension's -1: parses, and matches nothing
                statuses.append(None)
            elif re.fullmatch(r"[+-]?\d+", text):
                number = int(text)
                known = number in OrchestrationStatus._value2member_map_
                statuses.append(OrchestrationStatus(number) if known else None)
    return statuses


def _status_names(statuses: list[OrchestrationStatus | None]) -> tuple[str, ...]:
    # A status that does not exist still filters: it matches nothing, as on the real host.
    return tuple(s.name if s is not None else "<none>" for s in statuses)


def _repeated(request: web.Request, name: str) -> list[str]:
    return [v for k, v in request.query.items() if k.lower() == name.lower()]


def _dotnet_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _parse_json_body(text: str, *, allow_trailing: bool) -> Any:
    """Parse a request body as Newtonsoft would; ClientError 400 "Invalid JSON content" if not JSON."""
    try:
        if allow_trailing:
            # JToken.Load reads one value and ignores whatever follows it.
            value, _ = json.JSONDecoder().raw_decode(text.lstrip())
            return value
        return json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", 1)
        column = getattr(exc, "colno", 0)
        message = getattr(exc, "msg", str(exc))
        raise ClientError(
            400,
            f"{message}. Path '', line {line}, position {column}.",
            "Newtonsoft.Json.JsonReaderException",
            summary="Invalid JSON content",
        ) from None


class DurableHttpApi:
    """The routes over one client; ``hubs`` serves the requests that name another task hub."""

    def __init__(self, client: DurableClientService, hubs: TaskHubClients | None = None) -> None:
        self._client = client
        self._hubs = hubs

    @staticmethod
    def add_routes(
        app: web.Application, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.AbstractRoute:
        """Route the API's paths to ``handler`` (which hands them to :meth:`handle`); the route."""
        # The tail matches any character: a decoded %0A in an instance id or entity key must
        # reach the handler (and its control-character rule) rather than miss the route.
        base = r"/{base:(?i:runtime/webhooks/durabletask|durabletask)}{tail:(/[\s\S]*)?}"
        return app.router.add_route("*", base, handler)

    @staticmethod
    def _segments(request: web.Request) -> list[str]:
        raw = request.raw_path.split("?", 1)[0]
        match = _BASE_RE.match(raw)
        tail = raw[match.end() :] if match else request.match_info.get("tail", "")
        # WebUtility.UrlDecode of the whole path: %2F becomes a separator and "+" a space.
        return [s for s in unquote_plus(tail).strip("/").split("/") if s]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        segments = self._segments(request)
        try:
            response = await self._route_for_hub(request, segments)
        except (InstanceNotFoundError, InstanceGoneError) as exc:
            return web.Response(status=exc.status)
        except ClientError as exc:
            return error_response(exc.status, exc.message, exc.exception_type, exc.summary)
        except web.HTTPException:
            raise  # e.g. a body over the host's limit: answered in front of every route
        except StorageUnavailableError as exc:
            # Where the real host has no answer (it waits on storage): a plain 503, logged once.
            return _json_response({"Message": str(exc)}, 503, {"Retry-After": "5"})
        except Exception as exc:
            logger.exception("Durable HTTP API request %s %s failed", request.method, request.path)
            return error_response(500, str(exc), type(exc).__name__)
        # No route, or a route with another method: the real handler answers 404 with no body.
        return response or web.Response(status=404)

    async def _route_for_hub(self, request: web.Request, segments: list[str]) -> web.Response | None:
        """Route the request on the client of the task hub it names (GetClient)."""
        if self._hubs is None:
            return await self._route(request, segments)
        starts = bool(segments) and segments[0].lower() == "orchestrators" and request.method == "POST"
        async with self._hubs.client_for(request.query, creates_hub=starts) as client:
            api = self if client is self._client else DurableHttpApi(client)
            return await api._route(request, segments)

    async def _route(self, request: web.Request, segments: list[str]) -> web.Response | None:
        lowered = [s.lower() for s in segments]
        count, method = len(segments), request.method
        head = lowered[0] if segments else ""
        if head == "orchestrators" and count in (2, 3):
            if method == "POST":
                return await self._start(request, segments[1], segments[2] if count == 3 else None)
            return None
        if head == "entities" and count <= 3:
            return await self._entities(request, segments[1:])
        if head == "instances" and count <= 3:
            instance_id = segments[1] if count > 1 else None
            if count == 3:
                operation = lowered[2]
                if method == "POST" and operation in _INSTANCE_OPERATIONS:
                    assert instance_id is not None
                    return await self._operation(request, instance_id, operation)
                return None
            if method == "GET":
                if instance_id is None:
                    return await self._list(request)
                return await self._status(request, instance_id)
            if method == "DELETE":
                if instance_id is None:
                    return await self._purge_many(request)
                return await self._purge_one(instance_id)
            return None
        if head == "instances" and count == 4 and lowered[2] == "raiseevent":
            if method == "POST":
                return await self._raise_event(request, segments[1], segments[3])
            return None
        if head == "makeprimary" and count == 1:
            return web.Response(status=200)  # one app per task hub here: it is always primary
        return None

    # -- starting ---------------------------------------------------------------------------

    async def _start(self, request: web.Request, name: str, instance_id: str | None) -> web.Response:
        body = await request.read()
        input_text: str | None = None
        if body.strip():
            # Stored as the compact re-serialization of the parsed body, like JToken.ToString.
            value = _parse_json_body(body.decode("utf-8-sig", errors="replace"), allow_trailing=False)
            input_text = None if value is None else compact_json(value)
        instance_id = await self._client.start_new(name, instance_id, input_text)
        return await self._started(request, instance_id)

    async def _started(self, request: web.Request, instance_id: str) -> web.Response:
        """The answer to a start or restart: the check-status 202, or the outcome when asked to wait."""
        timeout = _seconds_query(request, "timeout")
        interval = _seconds_query(request, "pollingInterval")
        if timeout is None or interval is None:
            return self._check_status_response(request, instance_id)
        if interval > timeout:
            raise ClientError(
                400,
                f"Total timeout {_dotnet_number(timeout)} should be bigger than retry timeout "
                f"{_dotnet_number(interval)}",
            )
        return await self._wait_for_completion(request, instance_id, timeout, interval)

    def _check_status_response(self, request: web.Request, instance_id: str) -> web.Response:
        payload = self._client.check_status_payload(instance_id, origin=f"{request.scheme}://{request.host}")
        return _json_response(payload, 202, {"Location": payload["statusQueryGetUri"], "Retry-After": "10"})

    async def _wait_for_completion(
        self, request: web.Request, instance_id: str, timeout: float, interval: float
    ) -> web.Response:
        """``WaitForCompletionOrCreateCheckStatusResponseAsync``: poll the status until it is final."""
        deadline = time.monotonic() + timeout
        while True:
            status = await self._client.get_status(instance_id)
            if status is not None and status["runtimeStatus"] in _FINISHED_NAMES:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(max(min(interval, remaining), 0.01))
        if status is not None and status["runtimeStatus"] == OrchestrationStatus.Completed.name:
            return _json_response(status["output"], 200)
        if status is not None and status["runtimeStatus"] in _FINISHED_NAMES:
            return await self._status(request, instance_id, fail_with_500=False)
        return self._check_status_response(request, instance_id)

    # -- reading ----------------------------------------------------------------------------

    async def _status(
        self, request: web.Request, instance_id: str, fail_with_500: bool | None = None
    ) -> web.Response:
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
        if fail_with_500 is None:
            fail_with_500 = _flag(request, "returnInternalServerErrorOnFailure", False)
        if runtime_status == OrchestrationStatus.Failed.name and fail_with_500:
            return _json_response(status, 500)
        return _json_response(status, 200)

    async def _list(self, request: web.Request) -> web.Response:
        statuses = parse_statuses(_repeated(request, "runtimeStatus"))
        condition = InstanceQuery(
            created_from=parse_datetime(_query_value(request, "createdTimeFrom")),
            created_to=parse_datetime(_query_value(request, "createdTimeTo")),
            statuses=_status_names(statuses) or None,
            instance_id_prefix=_query_value(request, "instanceIdPrefix"),
        )
        top = _int_query(request, "top")
        if top is not None and top < 1:
            raise ClientError(400, "Take count must be positive and greater than 0.")
        page = await self._client.list_instances(
            condition,
            show_input=_flag(request, "showInput", True),
            # The table service returns at most 1000 rows a page whatever is asked for.
            top=min(top or DEFAULT_PAGE_SIZE, 1000),
            continuation_token=request.headers.get(_CONTINUATION_HEADER),
        )
        return _json_response(page.statuses, 200, {_CONTINUATION_HEADER: page.continuation_token})

    # -- changing instances -----------------------------------------------------------------

    async def _operation(self, request: web.Request, instance_id: str, operation: str) -> web.Response:
        reason = _query_value(request, "reason")
        if operation == "restart":
            new_id = await self._client.restart(
                instance_id, with_new_instance_id=_flag(request, "restartWithNewInstanceId", True)
            )
            return await self._started(request, new_id)
        if operation == "terminate":
            await self._client.terminate(instance_id, reason)
        elif operation == "suspend":
            await self._client.suspend(instance_id, reason)
        elif operation == "resume":
            await self._client.resume(instance_id, reason)
        else:
            await self._client.rewind(instance_id, reason)
        return web.Response(status=202)

    async def _entities(self, request: web.Request, parts: list[str]) -> web.Response | None:
        """``entities/{name?}/{key?}``: signal (POST, or DELETE for "delete"), read, list."""
        entities = self._client.entities
        # The key "$" stands for the empty key (EntityId keys may be empty strings).
        key = None if len(parts) < 2 else ("" if parts[1] == "$" else parts[1])
        if key is not None and request.method in ("POST", "DELETE"):
            operation = "delete" if request.method == "DELETE" else _query_value(request, "op")
            if not operation:
                raise ClientError(400, "The 'op' query parameter is required to signal an entity.")
            try:
                input_text = signal_input(await request.read(), request.headers.get("Content-Type", ""))
            except ValueError as exc:
                raise ClientError(400, f"Invalid JSON content: {exc}") from exc
            try:
                await entities.signal(parts[0], key, operation, input_text)
            except EntitySignalError as exc:
                # The entity route answers an ArgumentException with its message alone.
                return _message_response(400, str(exc))
            return web.Response(status=202)
        if request.method != "GET":
            return None
        if key is not None:
            state = await entities.read(parts[0], key)
            if state is None:
                return web.Response(status=404)
            return web.Response(text=state.state or "null", content_type="application/json")
        listed = await entities.list(parts[0] if parts else None)
        fetch_state = _flag(request, "fetchState", False)
        body = [
            {
                "entityId": {"name": e.name, "key": e.key},
                "lastOperationTime": format_status_time(e.last_operation_time),
                **({"state": json.loads(e.state) if e.state else None} if fetch_state else {}),
            }
            for e in listed
        ]
        return _json_response(body, 200)

    async def _raise_event(self, request: web.Request, instance_id: str, event_name: str) -> web.Response:
        record = await self._client.require_instance(instance_id)
        if record.runtime_status.name in _FINISHED_NAMES:
            return web.Response(status=410)
        media_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip()
        if media_type.lower() != "application/json":
            return _message_response(400, "Only application/json request content is supported")
        text = (await request.read()).decode("utf-8-sig", errors="replace")
        value = _parse_json_body(text, allow_trailing=True)
        await self._client.raise_event(instance_id, event_name, compact_json(value))
        return web.Response(status=202)

    # -- purging ----------------------------------------------------------------------------

    async def _purge_one(self, instance_id: str) -> web.Response:
        result = await self._client.purge_instance(instance_id)
        return _json_response({"instancesDeleted": result.instances_deleted}, 200)

    async def _purge_many(self, request: web.Request) -> web.Response:
        created_from = parse_datetime(_query_value(request, "createdTimeFrom"))
        if created_from is None:
            return _json_response("Please provide value for 'createdTimeFrom' parameter.", 400)
        created_to = parse_datetime(_query_value(request, "createdTimeTo")) or datetime.now(timezone.utc)
        statuses = [s for s in parse_statuses(_repeated(request, "runtimeStatus")) if s is not None]
        result = await self._client.purge_instances(created_from, created_to, statuses)
        if result.instances_deleted == 0:
            return web.Response(status=404)
        return _json_response({"instancesDeleted": result.instances_deleted}, 200)
