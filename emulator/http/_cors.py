"""CORS as ``func start`` applies it, in front of every route (docs/host-behaviour.md section 5).

Core Tools hands its origins (``Host.CORS`` in local.settings.json, or ``--cors``) to ASP.NET
Core's CORS middleware with any method and any header allowed, and credentials when
``CORSCredentials`` (``--cors-credentials``) says so. This module makes the same decisions:

* no ``Origin`` header, or no CORS configured: the request passes untouched, with no CORS headers;
* a preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is answered
  204 here and never reaches a function; an allowed origin gets ``Access-Control-Allow-Origin``,
  the requested method and headers echoed back, and ``-Credentials: true`` when set;
* any other request runs, and its response gets the same origin headers if the origin is allowed;
* ``Vary: Origin`` when the answer depends on which of several listed origins asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

ANY_ORIGIN = "*"
ALLOW_ORIGIN = "Access-Control-Allow-Origin"
ALLOW_CREDENTIALS = "Access-Control-Allow-Credentials"
ALLOW_METHODS = "Access-Control-Allow-Methods"
ALLOW_HEADERS = "Access-Control-Allow-Headers"
REQUEST_METHOD = "Access-Control-Request-Method"
REQUEST_HEADERS = "Access-Control-Request-Headers"
#: ASP.NET Core's own words, which Core Tools fails to start with.
WILDCARD_WITH_CREDENTIALS = (
    "The CORS protocol does not allow specifying a wildcard (any) origin and credentials at the same "
    "time. Configure the CORS policy by listing individual origins if credentials needs to be supported."
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CorsConfigError(ValueError):
    """The CORS settings cannot work; the message says why."""


@dataclass(frozen=True)
class CorsPolicy:
    #: The configured origins, lower-cased as ASP.NET's WithOrigins stores them.
    origins: tuple[str, ...]
    credentials: bool = False

    @classmethod
    def parse(cls, setting: str | None, credentials: bool = False) -> CorsPolicy | None:
        """The policy of a comma-separated list of origins; None (no CORS at all) when empty."""
        if not setting:
            return None
        # Split like Core Tools: empty entries dropped, nothing trimmed ("a, b" never matches " b").
        policy = cls(tuple(origin.lower() for origin in setting.split(",") if origin), credentials)
        if policy.any_origin and credentials:
            raise CorsConfigError(WILDCARD_WITH_CREDENTIALS)
        return policy

    @property
    def any_origin(self) -> bool:
        # "*" means any origin only on its own; in a list it is one more origin that never matches.
        return self.origins == (ANY_ORIGIN,)

    def allows(self, origin: str | None) -> bool:
        """Whether a request from ``origin`` may read the answer; an exact, case-sensitive match."""
        return bool(origin) and (self.any_origin or origin in self.origins)

    def unmatchable(self) -> list[str]:
        """Configured origins no browser sends: blanks, a path or trailing slash, "*" in a list."""
        return [
            origin
            for origin in self.origins
            if origin != origin.strip()
            or origin.count("/") > 2
            or (origin == ANY_ORIGIN and not self.any_origin)
        ]

    def origin_headers(self, origin: str) -> dict[str, str]:
        """What every answer to an allowed origin carries (empty when it is not allowed)."""
        if not self.allows(origin):
            return {}
        headers = {ALLOW_ORIGIN: ANY_ORIGIN if self.any_origin else origin}
        if self.credentials:
            headers[ALLOW_CREDENTIALS] = "true"
        return headers

    @property
    def varies_by_origin(self) -> bool:
        # ASP.NET: one listed origin (or "*") gives every allowed origin the same answer.
        return not self.any_origin and len(self.origins) > 1

    def preflight_headers(self, origin: str, method: str, request_headers: str | None) -> dict[str, str]:
        """The headers of the 204 answer to a preflight; any method and any header are allowed."""
        headers = self.origin_headers(origin)
        if not headers:
            return {}
        requested = [name.strip() for name in (request_headers or "").split(",") if name.strip()]
        if requested:
            headers[ALLOW_HEADERS] = ",".join(requested)
        headers[ALLOW_METHODS] = method
        return headers


def is_preflight(request: web.BaseRequest) -> bool:
    headers = request.headers
    return request.method == "OPTIONS" and "Origin" in headers and REQUEST_METHOD in headers


def _add_vary(policy: CorsPolicy, response: web.StreamResponse) -> None:
    if policy.varies_by_origin:
        response.headers.add("Vary", "Origin")


def install_cors(app: web.Application, policy: CorsPolicy) -> None:
    """Answer preflights in front of every route and add the origin headers to every answer.

    The headers go on when the response is prepared (ASP.NET does it as the response starts), so
    that aiohttp's own 404s, streamed responses and the origin guard's refusals get them too.
    """

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_preflight(request):
            return await handler(request)
        headers = policy.preflight_headers(
            request.headers["Origin"], request.headers[REQUEST_METHOD], request.headers.get(REQUEST_HEADERS)
        )
        response = web.Response(status=204, headers=headers)
        if headers:
            _add_vary(policy, response)
        return response

    async def add_origin_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is None or is_preflight(request):
            return
        headers = policy.origin_headers(origin)
        if headers:
            response.headers.update(headers)  # over any the function set, as ASP.NET does
            _add_vary(policy, response)

    app.middlewares.append(preflight)
    app.on_response_prepare.append(add_origin_headers)
