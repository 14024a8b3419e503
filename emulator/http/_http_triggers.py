"""Serving HTTP-triggered functions: route matching like the Functions host, invocation like the worker.

Routing follows ASP.NET Core route templates as the host uses them: literal segments match
case-insensitively, ``{p}``/``{p?}``/``{p=default}``/``{*rest}`` parameters, inline constraints, and the
host orders routes by ASP.NET's inbound precedence (literal, then constrained, then plain parameters,
then catch-alls), first match wins. A route that matches with the wrong method is just "no match": 404.

The request and response conversions mirror the host's RpcHttp conversion and the Python worker's
``azure.functions.http`` converters, so user code sees the same objects as under ``func start``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import os
import re
import secrets
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import azure.functions as func
from aiohttp import web
from azure.functions.http import HttpRequest as WorkerHttpRequest
from multidict import CIMultiDict

from emulator.app import _sdk as sdk
from emulator.app._app_index import HTTP_TRIGGER, FunctionInfo
from emulator.app._settings import AppLoadError
from emulator.functions._bindings import Bindings, Out, PreparedCall, TriggerValue, needs_binding_data
from emulator.functions._invocations import InvocationLog

logger = logging.getLogger("emulator.functions")

# What the Functions host logs as the reason of every HTTP-triggered invocation.
HTTP_INVOCATION_REASON = "This function was programmatically called via the host APIs."

ALL_METHODS = ("GET", "POST", "DELETE", "HEAD", "PATCH", "PUT", "OPTIONS")

InputResolver = Callable[[FunctionInfo, Mapping[str, Any], web.Request], Any]
"""Host callback that returns the value of a non-trigger input binding (may return an awaitable)."""


class RouteTemplateError(ValueError):
    """A route template the host would refuse to register."""


# ---------------------------------------------------------------------------------------------
# Route constraints (ASP.NET Core inline constraints)

_INT_RE = re.compile(r"\s*[+-]?\d+\s*")
_DOUBLE_RE = re.compile(r"\s*[+-]?(\d[\d,]*\.?\d*|\.\d+)([eE][+-]?\d+)?\s*|\s*(NaN|[+-]?Infinity)\s*")
_DECIMAL_RE = re.compile(r"\s*[+-]?(\d[\d,]*\.?\d*|\.\d+)\s*")
_HEX = "[0-9a-fA-F]"
_GUID_D = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_GUID_RE = re.compile(rf"\s*({_GUID_D}|{_HEX}{{32}}|\{{{_GUID_D}\}}|\({_GUID_D}\))\s*")
_ALPHA_RE = re.compile(r"[A-Za-z]*")


def _integer(value: str, bits: int) -> int | None:
    if not _INT_RE.fullmatch(value):
        return None
    number = int(value)
    limit = 1 << (bits - 1)
    return number if -limit <= number < limit else None


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def _int_args(arg: str | None, count: int) -> list[int]:
    parts = [p.strip() for p in (arg or "").split(",")]
    if len(parts) != count or not all(_INT_RE.fullmatch(p) for p in parts):
        raise ValueError(arg)
    return [int(p) for p in parts]


def _make_check(name: str, arg: str | None) -> Callable[[str], bool] | None:
    """A predicate for a known constraint, or None for one the emulator does not implement."""
    try:
        if name == "int":
            return lambda v: _integer(v, 32) is not None
        if name == "long":
            return lambda v: _integer(v, 64) is not None
        if name == "bool":
            return lambda v: v.strip().lower() in ("true", "false")
        if name == "alpha":
            return lambda v: bool(_ALPHA_RE.fullmatch(v))
        if name == "guid":
            return lambda v: bool(_GUID_RE.fullmatch(v))
        if name in ("double", "float"):
            return lambda v: bool(_DOUBLE_RE.fullmatch(v))
        if name == "decimal":
            return lambda v: bool(_DECIMAL_RE.fullmatch(v))
        if name == "datetime":
            return _is_datetime
        if name == "required":
            return lambda v: v != ""
        if name in ("min", "max"):
            (bound,) = _int_args(arg, 1)
            if name == "min":
                return lambda v: (n := _integer(v, 64)) is not None and n >= bound
            return lambda v: (n := _integer(v, 64)) is not None and n <= bound
        if name == "range":
            low, high = _int_args(arg, 2)
            return lambda v: (n := _integer(v, 64)) is not None and low <= n <= high
        if name in ("minlength", "maxlength"):
            (size,) = _int_args(arg, 1)
            if name == "minlength":
                return lambda v: len(v) >= size
            return lambda v: len(v) <= size
        if name == "length":
            bounds = _int_args(arg, 2) if arg and "," in arg else _int_args(arg, 1) * 2
            return lambda v: bounds[0] <= len(v) <= bounds[1]
        if name == "regex" and arg is not None:
            # RegexRouteConstraint uses IsMatch (unanchored), ignoring case.
            pattern = re.compile(arg, re.IGNORECASE)
            return lambda v: pattern.search(v) is not None
    except (ValueError, re.error):
        return None
    return None


# ---------------------------------------------------------------------------------------------
# Route templates


@dataclass(frozen=True)
class _Param:
    name: str
    constraints: tuple[str, ...]  # as written, for precedence and messages
    checks: tuple[Callable[[str], bool], ...]
    unsupported: tuple[str, ...]
    optional: bool
    catch_all: bool
    default: str | None

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.checks)


_Part = str | _Param


@dataclass(frozen=True)
class _Segment:
    parts: tuple[_Part, ...]
    # Complex segments ("{name}.{ext}") match through regexes, tried in order.
    patterns: tuple[tuple[re.Pattern[str], tuple[_Param, ...]], ...] = ()

    @property
    def param(self) -> _Param | None:
        only = self.parts[0]
        return only if len(self.parts) == 1 and isinstance(only, _Param) else None

    @property
    def literal(self) -> str | None:
        only = self.parts[0]
        return only if len(self.parts) == 1 and isinstance(only, str) else None

    def precedence_digit(self) -> int:
        # RoutePrecedence.ComputeInboundPrecedenceDigit
        if len(self.parts) > 1:
            return 2
        param = self.param
        if param is None:
            return 1
        digit = 5 if param.catch_all else 3
        return digit - 1 if param.constraints else digit


_PARAM_NAME_INVALID = re.compile(r"[{}/?*]")


def _split_constraint_list(text: str, raw: str) -> tuple[list[tuple[str, str | None, str]], str]:
    """Parse ":c1:c2(arg)" at the start of text; returns [(name, arg, written)] and the remainder."""
    found: list[tuple[str, str | None, str]] = []
    rest = text
    while rest.startswith(":"):
        rest = rest[1:]
        name = re.match(r"[^:=?(]*", rest)
        assert name is not None
        cname = name.group(0)
        rest = rest[len(cname) :]
        arg: str | None = None
        if rest.startswith("("):
            # The argument ends at a ')' followed by the end or by another ':', '=' or '?'.
            start = 1
            while True:
                close = rest.find(")", start)
                if close < 0:
                    raise RouteTemplateError(f"The inline constraint in '{{{raw}}}' has an unclosed '('.")
                if close + 1 == len(rest) or rest[close + 1] in ":=?":
                    break
                start = close + 1
            arg = rest[1:close]
            rest = rest[close + 1 :]
        if not cname.strip():
            raise RouteTemplateError(f"The route parameter '{{{raw}}}' has an empty inline constraint.")
        found.append((cname.strip().lower(), arg, cname.strip() + (f"({arg})" if arg is not None else "")))
    return found, rest


def _parse_param(raw: str) -> _Param:
    text = raw
    catch_all = False
    if text.startswith("**"):
        catch_all, text = True, text[2:]
    elif text.startswith("*"):
        catch_all, text = True, text[1:]
    match = re.match(r"[^:=?]*", text)
    assert match is not None
    name = match.group(0).strip()
    constraints, rest = _split_constraint_list(text[len(match.group(0)) :], raw)
    optional = False
    default: str | None = None
    if rest.startswith("="):
        default = rest[1:]
        if default.endswith("?"):
            raise RouteTemplateError("An optional parameter cannot have default value.")
    elif rest == "?":
        optional = True
    elif rest:
        raise RouteTemplateError(f"The route parameter '{{{raw}}}' is malformed.")
    if not name or _PARAM_NAME_INVALID.search(name):
        raise RouteTemplateError(
            f"The route parameter name '{name}' is invalid. Route parameter names must be non-empty and "
            f"cannot contain these characters: '{{', '}}', '/'. The '?' character marks a parameter as "
            f"optional, and can occur only at the end of the parameter. The '*' character marks a parameter "
            f"as catch-all, and can occur only at the start of the parameter."
        )
    if catch_all and optional:
        raise RouteTemplateError("A catch-all parameter cannot be marked optional.")
    checks: list[Callable[[str], bool]] = []
    unsupported: list[str] = []
    for cname, arg, written in constraints:
        check = _make_check(cname, arg)
        if check is None:
            unsupported.append(written)
        else:
            checks.append(check)
    return _Param(
        name=name,
        constraints=tuple(written for _, _, written in constraints),
        checks=tuple(checks),
        unsupported=tuple(unsupported),
        optional=optional,
        catch_all=catch_all,
        default=default,
    )


def _parse_segment(text: str) -> list[_Part]:
    parts: list[_Part] = []
    literal: list[str] = []
    i = 0
    incomplete = (
        "There is an incomplete parameter in the route template. Check that each '{' character has a "
        "matching '}' character."
    )
    while i < len(text):
        c = text[i]
        if c == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif c == "{":
            inner: list[str] = []
            j = i + 1
            while True:
                if j >= len(text):
                    raise RouteTemplateError(incomplete)
                if text.startswith("}}", j) or text.startswith("{{", j):
                    inner.append(text[j])
                    j += 2
                elif text[j] == "}":
                    break
                elif text[j] == "{":
                    raise RouteTemplateError(incomplete)
                else:
                    inner.append(text[j])
                    j += 1
            if literal:
                parts.append("".join(literal))
                literal = []
            if parts and isinstance(parts[-1], _Param):
                raise RouteTemplateError(
                    "A path segment cannot contain two consecutive parameters. They must be separated by a "
                    "'/' or by a literal string."
                )
            parts.append(_parse_param("".join(inner)))
            i = j + 1
        elif c == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif c == "}":
            raise RouteTemplateError(incomplete)
        elif c == "?":
            raise RouteTemplateError(
                "The literal section '?' is invalid. Literal sections cannot contain the '?' character."
            )
        else:
            literal.append(c)
            i += 1
    if literal:
        parts.append("".join(literal))
    return parts


_Patterns = tuple[tuple[re.Pattern[str], tuple[_Param, ...]], ...]


def _complex_patterns(segment_text: str, parts: list[_Part]) -> _Patterns:
    params = tuple(p for p in parts if isinstance(p, _Param))
    for index, part in enumerate(parts):
        if isinstance(part, _Param) and part.catch_all:
            raise RouteTemplateError(
                "A path segment that contains more than one section, such as a literal section or a "
                "parameter, cannot contain a catch-all parameter."
            )
        if isinstance(part, _Param) and part.optional:
            if index != len(parts) - 1:
                raise RouteTemplateError(
                    f"An optional parameter must be at the end of the segment. In the segment "
                    f"'{segment_text}', optional parameter '{part.name}' is followed by '{parts[index + 1]}'."
                )
            if parts[index - 1] != ".":
                raise RouteTemplateError(
                    f"In the segment '{segment_text}', the optional parameter '{part.name}' is preceded by "
                    f"an invalid segment '{parts[index - 1]}'. Only a period (.) can precede an optional "
                    f"parameter."
                )

    def regex(include_optional: bool) -> str:
        pieces = []
        for part in parts:
            if isinstance(part, _Param):
                pieces.append("(.+)")
            else:
                pieces.append(re.escape(part))
        if not include_optional:
            pieces = pieces[:-2]  # drop the trailing "." and the optional parameter
        return "".join(pieces)

    last = parts[-1]
    if isinstance(last, _Param) and last.optional:
        # Try with the optional part first, or the greedy first parameter would swallow "name.ext".
        return (
            (re.compile(regex(True), re.IGNORECASE | re.DOTALL), params),
            (re.compile(regex(False), re.IGNORECASE | re.DOTALL), params[:-1]),
        )
    return ((re.compile(regex(True), re.IGNORECASE | re.DOTALL), params),)


class RouteTemplate:
    """A parsed ASP.NET Core route template, matched against the path after the route prefix."""

    def __init__(self, template: str) -> None:
        self.text = template
        body = template
        if body.startswith("~/"):
            body = body[2:]
        body = body.strip("/")
        segments: list[_Segment] = []
        names: set[str] = set()
        raw_segments = body.split("/") if body else []
        for index, raw in enumerate(raw_segments):
            if raw == "":
                raise RouteTemplateError(
                    "The route template separator character '/' cannot appear consecutively. It must be "
                    "separated by either a parameter or a literal value."
                )
            parts = _parse_segment(raw)
            for part in parts:
                if isinstance(part, _Param):
                    if part.name.lower() in names:
                        raise RouteTemplateError(
                            f"The route parameter name '{part.name}' appears more than one time in the route "
                            f"template."
                        )
                    names.add(part.name.lower())
                    if part.catch_all and index != len(raw_segments) - 1:
                        raise RouteTemplateError(
                            "A catch-all parameter can only appear as the last segment of the route template."
                        )
            if len(parts) > 1:
                segments.append(_Segment(tuple(parts), _complex_patterns(raw, parts)))
            else:
                segments.append(_Segment(tuple(parts)))
        self._segments = tuple(segments)
        # Comparing digit tuples is the same order as ASP.NET's decimal precedence (digits are 1..5).
        self.precedence: tuple[int, ...] = tuple(s.precedence_digit() for s in segments)

    @property
    def unsupported_constraints(self) -> list[str]:
        found: list[str] = []
        for segment in self._segments:
            for part in segment.parts:
                if isinstance(part, _Param):
                    found.extend(part.unsupported)
        return found

    def match(self, path: str) -> dict[str, str] | None:
        """Route values when ``path`` (after the prefix, percent-encoding allowed) matches, else None."""
        if path.startswith("/"):
            path = path[1:]
        if path.endswith("/"):
            path = path[:-1]
        raw_segments = path.split("/") if path else []
        values: dict[str, str] = {}
        for index, segment in enumerate(self._segments):
            param = segment.param
            if param is not None and param.catch_all:
                rest = unquote("/".join(raw_segments[index:]))
                if rest:
                    if not param.accepts(rest):
                        return None
                    values[param.name] = rest
                elif param.default is not None:
                    values[param.name] = param.default
                return values
            if index >= len(raw_segments):
                # Only trailing optional or defaulted parameters may be left out.
                if param is None or not (param.optional or param.default is not None):
                    return None
                if param.default is not None:
                    values[param.name] = param.default
                continue
            text = unquote(raw_segments[index])
            literal = segment.literal
            if literal is not None:
                if text.casefold() != literal.casefold():
                    return None
            elif param is not None:
                if text == "" or not param.accepts(text):
                    return None
                values[param.name] = text
            elif not self._match_complex(segment, text, values):
                return None
        if len(raw_segments) > len(self._segments):
            return None
        return values

    @staticmethod
    def _match_complex(segment: _Segment, text: str, values: dict[str, str]) -> bool:
        for pattern, params in segment.patterns:
            found = pattern.fullmatch(text)
            if found is None:
                continue
            captured = dict(zip((p.name for p in params), found.groups(), strict=True))
            if all(p.accepts(captured[p.name]) for p in params):
                values.update(captured)
                return True
            return False  # like ASP.NET, no backtracking into other splits once the literals matched
        return False


# ---------------------------------------------------------------------------------------------
# Invocation context objects (what the worker passes as ``context``)


class _RpcException(sdk.RpcExceptionBase):
    @property
    def source(self) -> str:
        return ""

    @property
    def stack_trace(self) -> str:
        return ""

    @property
    def message(self) -> str:
        return ""


class TraceContext(sdk.TraceContextBase):
    def __init__(self, trace_parent: str, trace_state: str = "", attributes: Mapping[str, str] | None = None):
        self._trace_parent = trace_parent
        self._trace_state = trace_state
        self._attributes = dict(attributes or {})

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return self._attributes


class RetryContext(sdk.RetryContextBase):
    def __init__(self, retry_count: int = 0, max_retry_count: int = 0) -> None:
        self._retry_count = retry_count
        self._max_retry_count = max_retry_count

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

    @property
    def exception(self) -> sdk.RpcExceptionBase:
        return _RpcException()


class InvocationContext(func.Context):
    """The ``func.Context`` a function receives when it declares a ``context`` parameter."""

    def __init__(
        self,
        *,
        invocation_id: str,
        function_name: str,
        function_directory: str,
        trace_context: TraceContext | None = None,
        retry_context: RetryContext | None = None,
    ) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = trace_context or TraceContext(new_traceparent())
        self._retry_context = retry_context or RetryContext()
        # The worker gives each invocation a threading.local and sets invocation_id in the thread
        # that runs the function, so logging from user threads can be tied to the invocation.
        self._thread_local_storage = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> RetryContext:
        return self._retry_context

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local_storage


_TRACEPARENT_RE = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})")


def new_traceparent(incoming: str | None = None) -> str:
    """A W3C traceparent for a new span: a child of ``incoming`` when that is valid, else a new trace."""
    match = _TRACEPARENT_RE.fullmatch(incoming.strip().lower()) if incoming else None
    trace_id = match.group(1) if match else uuid.uuid4().hex
    flags = match.group(2) if match else "00"
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


# ---------------------------------------------------------------------------------------------
# Request/response conversion


def _worker_request(request: web.Request, route_params: Mapping[str, str], body: bytes) -> func.HttpRequest:
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


def _web_response(value: Any) -> web.Response:
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


# Frames of the emulator and of the machinery between it and the user's code, skipped when printing a
# user function's traceback.
_HOST_CODE_DIRS = tuple(
    str(Path(p).resolve().parent) + os.sep
    # emulator/http/ -> every file of the emulator package.
    for p in (str(Path(__file__).resolve().parent), asyncio.__file__, concurrent.futures.__file__)
    if p is not None
)
_HOST_CODE_FILES = tuple(str(Path(m.__file__).resolve()) for m in (threading, contextlib) if m.__file__)


def _is_host_frame(filename: str) -> bool:
    with contextlib.suppress(OSError, ValueError):
        resolved = str(Path(filename).resolve())
        return resolved in _HOST_CODE_FILES or any(resolved.startswith(d) for d in _HOST_CODE_DIRS)
    return False


def _user_traceback(exc: BaseException) -> str:
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and _is_host_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is None:
        return ""
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


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


# ---------------------------------------------------------------------------------------------
# The router


@dataclass(frozen=True)
class _Route:
    function: FunctionInfo
    template: RouteTemplate
    methods: frozenset[str] | None  # None: every method


class HttpTriggerRouter:
    """Matches requests under the route prefix to HTTP-triggered functions and invokes them."""

    def __init__(
        self,
        functions: Sequence[FunctionInfo],
        route_prefix: str,
        invocations: InvocationLog,
        *,
        script_root: Path | None = None,
        bindings: Bindings | None = None,
    ) -> None:
        self.route_prefix = route_prefix.strip("/")
        #: Input and output bindings; without one (unit tests) storage bindings are unavailable.
        self._bindings = bindings or Bindings()
        self._prefix_segments = [s.casefold() for s in self.route_prefix.split("/") if s]
        self._invocations = invocations
        self._script_root = script_root
        routes: list[_Route] = []
        for fn in functions:
            if not fn.is_kind(HTTP_TRIGGER):
                continue
            route = fn.trigger.get("route")
            route_text = route if isinstance(route, str) else fn.name
            try:
                template = RouteTemplate(route_text)
            except RouteTemplateError as exc:
                raise AppLoadError(
                    f"Function '{fn.name}' has an invalid route template '{route_text}': {exc}"
                ) from None
            for constraint in template.unsupported_constraints:
                logger.warning(
                    "Route constraint '%s' of function '%s' (route '%s') is not supported by the emulator "
                    "and is ignored.",
                    constraint,
                    fn.name,
                    route_text,
                )
            declared = fn.trigger.get("methods")
            methods = frozenset(str(m).upper() for m in declared) if declared else None
            routes.append(_Route(fn, template, methods))
        # The host registers routes ordered by inbound precedence; sorted() is stable, so ties keep
        # registration order.
        self._routes = sorted(routes, key=lambda r: r.template.precedence)

    @property
    def routes(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(function name, route template, methods) in matching order, for diagnostics."""
        return [
            (r.function.name, r.template.text, tuple(sorted(r.methods)) if r.methods else ALL_METHODS)
            for r in self._routes
        ]

    def match(self, method: str, path: str) -> tuple[FunctionInfo, dict[str, str]] | None:
        """The function and route values for ``path`` (the URL path after "/<route_prefix>/")."""
        verb = method.upper()
        for route in self._routes:
            if route.methods is not None and verb not in route.methods:
                continue
            values = route.template.match(path)
            if values is not None:
                return route.function, values
        return None

    def path_after_prefix(self, raw_path: str) -> str | None:
        """The part of a request path after the route prefix, or None when it is outside the prefix."""
        path = raw_path.split("?", 1)[0].lstrip("/")
        segments = path.split("/") if path else []
        count = len(self._prefix_segments)
        if count == 0:
            return path
        if len(segments) < count:
            return None
        if [unquote(s).casefold() for s in segments[:count]] != self._prefix_segments:
            return None
        return "/".join(segments[count:])

    async def handle(self, request: web.Request, resolve_input: InputResolver) -> web.Response:
        rest = self.path_after_prefix(request.raw_path)
        found = None if rest is None else self.match(request.method, rest)
        if found is None:
            return web.Response(status=404)
        fn, route_params = found
        body = await request.read()
        http_request = _worker_request(request, route_params, body)
        try:
            with self._invocations.invoke(fn.name, reason=HTTP_INVOCATION_REASON) as record:
                context = InvocationContext(
                    invocation_id=record.invocation_id,
                    function_name=fn.name,
                    function_directory=self._function_directory(fn),
                    trace_context=TraceContext(
                        new_traceparent(request.headers.get("traceparent")),
                        request.headers.get("tracestate", ""),
                    ),
                )
                call = await self._bind(fn, http_request, request, context, resolve_input)
                result = await self._call(fn, call.kwargs, context)
                # The host writes output bindings before it answers the request.
                await self._bindings.finish(call, result)
                return self._response(fn, result, call.outs)
        except Exception as exc:
            details = _user_traceback(exc)
            logger.error(
                "Function '%s' failed: %s: %s%s",
                fn.name,
                type(exc).__name__,
                exc,
                f"\n{details}" if details else "",
            )
            # The host answers an unhandled function error with a bare 500.
            return web.Response(status=500)

    def _function_directory(self, fn: FunctionInfo) -> str:
        # v2 apps: the worker reports the script root for every function.
        if self._script_root is not None:
            return str(self._script_root)
        code = getattr(inspect.unwrap(fn.user_function), "__code__", None)
        return str(Path(code.co_filename).resolve().parent) if code is not None else ""

    async def _bind(
        self,
        fn: FunctionInfo,
        http_request: func.HttpRequest,
        request: web.Request,
        context: InvocationContext,
        resolve_input: InputResolver,
    ) -> PreparedCall:
        def extension_input(binding: Mapping[str, Any]) -> Any:
            return resolve_input(fn, binding, request)

        data = http_binding_data(http_request) if needs_binding_data(fn) else {}
        trigger = TriggerValue(value=http_request, binding_data=data)
        return await self._bindings.prepare(fn, trigger, context, extension_input=extension_input)

    @staticmethod
    async def _call(fn: FunctionInfo, kwargs: dict[str, Any], context: InvocationContext) -> Any:
        if fn.is_async:
            result = await fn.user_function(**kwargs)
        else:

            def run() -> Any:
                context.thread_local_storage.invocation_id = context.invocation_id
                return fn.user_function(**kwargs)

            # A worker thread, so a slow sync function does not hold up other requests.
            result = await asyncio.to_thread(run)
        if inspect.isawaitable(result):
            result = await result
        return result

    @staticmethod
    def _response(fn: FunctionInfo, result: Any, outs: Mapping[str, Out[Any]]) -> web.Response:
        http_out = next(
            (b for b in fn.bindings if _binding_is(b, "type", "http") and _binding_is(b, "direction", "out")),
            None,
        )
        if http_out is None:
            return web.Response(status=200)
        name = str(http_out.get("name", ""))
        if name == "$return":
            return _web_response(result)
        out = outs.get(name)
        value = out.get() if out is not None else None
        if value is None:
            # Nothing set the response: the host falls back to an empty 200 (OkResult).
            return web.Response(status=200)
        return _web_response(value)
