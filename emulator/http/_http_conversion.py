"""Request and response conversion between aiohttp and the worker's ``func.HttpRequest`` and responses.

They mirror the host's RpcHttp conversion and the Python worker's ``azure.functions.http`` converters,
so user code sees the same objects as under ``func start`` and the client the same answers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import azure.functions as func
from aiohttp import web
from azure.functions.http import HttpRequest as WorkerHttpRequest
from multidict import CIMultiDict

from emulator.app import _sdk as sdk
from emulator.app._app_index import FunctionInfo
from emulator.functions._bindings import Out


def worker_request(request: web.Request, route_params: Mapping[str, str], body: bytes) -> func.HttpRequest:
    # The host lower-cases header names and joins repeated values with ",", like StringValues.ToString().
    headers: dict[str, str] = {}
    for name in request.headers:
        key = name.lower()
        if key not in headers:
            headers[key] = ",".join(request.headers.getall(name))
    # Query values: repeated keys joined with ",", and keys with an empty value left out (RpcHttp).
    params: dict[str, str] = {}
    query = request.rel_url.query
    for name in query:
        if name not in params:
            joined = ",".join(query.getall(name))
            if joined:
                params[name] = joined
    url = f"{request.scheme}://{request.host}{request.raw_path}"
    # The worker asks for raw body bytes (RawHttpBodyBytes), so the body reaches Python untouched.
    return WorkerHttpRequest(
        method=request.method,
        url=url,
        headers=headers,
        params=params,
        route_params=dict(route_params),
        body_type="bytes",
        body=body,
    )


def _unencodable(value: Any) -> TypeError:
    # The worker's HttpResponseConverter accepts only HttpResponse and str; anything else fails the
    # invocation with this error (the host then answers 500).
    return TypeError(
        'unable to encode outgoing TypedData: unsupported type "http" for Python type '
        f'"{type(value).__name__}"'
    )


def web_response(value: Any) -> web.Response:
    if isinstance(value, sdk.HttpResponseBase):
        headers: CIMultiDict[str] = CIMultiDict()
        for name, header_value in value.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding"):
                headers.add(name, str(header_value))
        if "content-type" not in headers:
            mimetype = str(value.mimetype)
            text = mimetype.startswith("text/")
            headers["Content-Type"] = f"{mimetype}; charset={value.charset}" if text else mimetype
        body = value.get_body() or b""
        status = int(value.status_code)
        if status in (204, 304):
            body = b""  # these statuses carry no body on the wire
        return web.Response(status=status, body=body, headers=headers)
    if isinstance(value, str):
        return web.Response(
            status=200, body=value.encode("utf-8"), content_type="text/plain", charset="utf-8"
        )
    raise _unencodable(value)


def _binding_is(binding: Mapping[str, Any], key: str, expected: str) -> bool:
    return str(binding.get(key, "")).lower() == expected


def http_binding_data(req: func.HttpRequest) -> dict[str, Any]:
    """What binding expressions of an HTTP function can use: JSON body properties, ``Query``,
    ``Headers`` and the route parameters (which win on a name clash), as the host's HTTP binding."""
    data: dict[str, Any] = {}
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        body = req.get_json()
        if isinstance(body, dict):
            data.update(body)
    data.update(req.params)
    data["Query"] = dict(req.params)
    data["Headers"] = dict(req.headers)
    data.update(req.route_params)
    return data


def http_response(function: FunctionInfo, result: Any, outs: Mapping[str, Out[Any]]) -> web.Response:
    """The response to a finished invocation: from its HTTP output binding (``$return`` or a named
    output), an empty 200 when it has none or nothing set it."""
    outputs = (b for b in function.bindings if _binding_is(b, "direction", "out"))
    http_out = next((b for b in outputs if _binding_is(b, "type", "http")), None)
    if http_out is None:
        return web.Response(status=200)
    name = str(http_out.get("name", ""))
    if name == "$return":
        return web_response(result)
    out = outs.get(name)
    value = out.get() if out is not None else None
    if value is None:
        # Nothing set the response: the host falls back to an empty 200 (OkResult).
        return web.Response(status=200)
    return web_response(value)
