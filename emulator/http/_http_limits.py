"""The request limits of the Functions host's HTTP front (Kestrel), in front of every route.

Kestrel answers a request line over 8 KB with 414, request headers over 32 KB in all with 431 and
a body over the Functions host's 100 MB with 413, each with an empty body, before any function or
the durable API sees the request. aiohttp's own limits are lower (8190 bytes a line) and answer
400 with a traceback in the log, so its parser is given room and the host's limits are checked
here. A request that aiohttp still cannot parse (a line beyond that room, bad framing) gets
aiohttp's 400, logged as one line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

MAX_REQUEST_BODY_BYTES = 100 * 1024 * 1024
MAX_REQUEST_LINE_BYTES = 8 * 1024
MAX_REQUEST_HEADERS_BYTES = 32 * 1024
#: What aiohttp's parser may read of one line, so that lines past the host's limits reach the
#: middleware and get the host's answer.
_PARSER_LINE_BYTES = 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parser_limits() -> dict[str, Any]:
    """Keyword arguments for the AppRunner (passed on to its request handlers): the parser's line limits."""
    return {"max_line_size": _PARSER_LINE_BYTES, "max_field_size": _PARSER_LINE_BYTES}


def _request_line_bytes(request: web.Request) -> int:
    # "<method> <target> HTTP/1.1", as Kestrel measures it.
    version = f"HTTP/{request.version.major}.{request.version.minor}"
    return (
        len(request.method) + 1 + len(request.raw_path.encode("utf-8", "surrogateescape")) + 1 + len(version)
    )


def _headers_bytes(request: web.Request) -> int:
    return sum(len(name) + len(value) + 4 for name, value in request.raw_headers)


@web.middleware
async def host_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _request_line_bytes(request) > MAX_REQUEST_LINE_BYTES:
        return web.Response(status=414)
    if _headers_bytes(request) > MAX_REQUEST_HEADERS_BYTES:
        return web.Response(status=431)
    if request.content_length is not None and request.content_length > MAX_REQUEST_BODY_BYTES:
        return web.Response(status=413)
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return web.Response(status=413)  # a chunked body that grew past the limit


class _ParseErrorsInOneLine(logging.Filter):
    """aiohttp logs a request it cannot parse with a traceback: keep the one line that says why."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage):
            record.msg = "Rejected a malformed HTTP request from %s: %s"
            record.args = (*(record.args if isinstance(record.args, tuple) else ())[:1], exc)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_quiet_filter = _ParseErrorsInOneLine()


def quiet_parse_errors() -> None:
    """Install the filter on aiohttp's server logger (once)."""
    server_logger = logging.getLogger("aiohttp.server")
    if _quiet_filter not in server_logger.filters:
        server_logger.addFilter(_quiet_filter)
