"""Serving HTTP-triggered functions: route matching like the Functions host, invocation like the worker.

Routes are ASP.NET Core route templates (``_route_templates``), under the route prefix, ordered by
the host's inbound precedence; the first match wins. A route that matches with the wrong method is
just "no match": 404. Requests and responses are converted as the host and the worker convert them
(``_http_conversion``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import azure.functions as func
from aiohttp import web

from emulator.app._app_index import HTTP_TRIGGER, FunctionInfo
from emulator.app._settings import AppLoadError
from emulator.functions._bindings import Bindings, PreparedCall, TriggerValue, needs_binding_data
from emulator.functions._invocation_context import InvocationContext, TraceContext, new_traceparent
from emulator.functions._invocations import InvocationLog
from emulator.functions._user_code import call_function, function_directory, log_function_failure
from emulator.http._http_conversion import http_binding_data, http_response, worker_request
from emulator.http._route_templates import RouteTemplate, RouteTemplateError

logger = logging.getLogger("emulator.functions")

# What the Functions host logs as the reason of every HTTP-triggered invocation.
HTTP_INVOCATION_REASON = "This function was programmatically called via the host APIs."

ALL_METHODS = ("GET", "POST", "DELETE", "HEAD", "PATCH", "PUT", "OPTIONS")

InputResolver = Callable[[FunctionInfo, Mapping[str, Any], web.Request], Any]
"""Host callback that returns the value of a non-trigger input binding (may return an awaitable)."""


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
        http_request = worker_request(request, route_params, body)
        try:
            with self._invocations.invoke(fn.name, reason=HTTP_INVOCATION_REASON) as record:
                context = InvocationContext(
                    invocation_id=record.invocation_id,
                    function_name=fn.name,
                    function_directory=function_directory(fn, self._script_root),
                    trace_context=TraceContext(
                        new_traceparent(request.headers.get("traceparent")),
                        request.headers.get("tracestate", ""),
                    ),
                )
                call = await self._bind(fn, http_request, request, context, resolve_input)
                result = await call_function(fn, call.kwargs, context)
                # The host writes output bindings before it answers the request.
                await self._bindings.finish(call, result)
                return http_response(fn, result, call.outs)
        except Exception as exc:
            log_function_failure(fn, exc)
            # The host answers an unhandled function error with a bare 500.
            return web.Response(status=500)

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
