"""The origin guard: no web page drives the task hub through the user's browser unasked.

The Durable HTTP management API and the dashboard act on any request that reaches the port, and
binding to loopback does not keep web pages out: any site the user visits may send a "simple"
cross-origin request (a POST with a ``text/plain`` body goes without a preflight and runs even
though the page cannot read the answer), and a DNS-rebinding page reaches the port under a name of
its own and reads everything. So, on the routes registered with :func:`guard_route` only:

* a ``Host`` that is not a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``, any port) is
  refused with 421, unless it is named with ``--allowed-hosts`` or ``EMULATOR_ALLOWED_HOSTS``;
* a request whose ``Origin`` is neither the emulator's own nor allowed by the CORS settings is
  refused with 403 before anything acts on it.

Requests without an ``Origin`` (curl, the SDK's client, the CLI) are not affected: browsers send
one with every request a page could act or read through. The app's own HTTP functions are not
guarded, as under ``func start`` (docs/host-behaviour.md section 5).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from emulator.app._settings import AppLoadError, AppSettings
from emulator.http._cors import ANY_ORIGIN, CorsConfigError, CorsPolicy, Handler, install_cors

logger = logging.getLogger("emulator.http")

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ALLOWED_HOSTS_SETTING = "EMULATOR_ALLOWED_HOSTS"
# host[:port], the host a name or a bracketed IPv6 address; anything else is no host of ours.
_AUTHORITY_RE = re.compile(r"(?:\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::\d{1,5})?", re.IGNORECASE)
_ORIGIN_RE = re.compile(r"https?://" + _AUTHORITY_RE.pattern, re.IGNORECASE)


@dataclass
class GuardedRoutes:
    resources: set[web.AbstractResource] = field(default_factory=set)


_GUARDED = web.AppKey("emulator.guarded_routes", GuardedRoutes)


def guard_route(app: web.Application, route: web.AbstractRoute) -> None:
    """Put the route's resource (all its methods) behind the guard."""
    if _GUARDED not in app:
        app[_GUARDED] = GuardedRoutes()
    if route.resource is not None:
        app[_GUARDED].resources.add(route.resource)


def _authority(text: str) -> tuple[str, int | None] | None:
    """``localhost:7071`` -> ``("localhost", 7071)``, ``[::1]`` -> ``("::1", None)``; None if malformed."""
    if not _AUTHORITY_RE.fullmatch(text):
        return None
    parts = urlsplit(f"//{text}")
    try:
        return (parts.hostname or "").rstrip("."), parts.port
    except ValueError:  # a port past 65535
        return None


def parse_allowed_hosts(text: str | None) -> tuple[str, ...]:
    """Host names separated by commas or semicolons (ASP.NET's AllowedHosts uses ';'); ports dropped."""
    names = []
    for entry in re.split(r"[,;]", text or ""):
        entry = entry.strip().lower()
        found = _authority(entry) if entry not in ("", ANY_ORIGIN) and not entry.startswith("*.") else None
        names.append(found[0] if found else entry)
    return tuple(name for name in names if name)


@dataclass(frozen=True)
class OriginGuard:
    cors: CorsPolicy | None = None
    #: Host names served besides the loopback names: exact, ``*.example.com`` or ``*`` for any.
    allowed_hosts: tuple[str, ...] = ()

    def host_allowed(self, name: str) -> bool:
        return (
            name in LOOPBACK_NAMES
            or ANY_ORIGIN in self.allowed_hosts
            or name in self.allowed_hosts
            or any(a.startswith("*.") and name.endswith(a[1:]) for a in self.allowed_hosts)
        )

    def refusal(self, host: str | None, origin: str | None) -> tuple[int, str] | None:
        """The status and reason a request with these headers is refused with; None to let it pass."""
        authority = None if host is None else _authority(host.strip())
        if host is not None and (authority is None or not self.host_allowed(authority[0])):
            return 421, (
                f"Refused: the Host '{host}' is not a loopback name (localhost, 127.0.0.1, [::1]). "
                f"Name it with --allowed-hosts or the {ALLOWED_HOSTS_SETTING} setting to serve the "
                "management API and the dashboard under it."
            )
        if origin is None or _is_own_origin(origin, authority):
            return None
        if self.cors is not None and self.cors.allows(origin):
            return None
        return 403, (
            f"Refused: a page from '{origin}' may not use the durable management API or the dashboard. "
            "List its origin in Host.CORS of local.settings.json (or --cors) to allow it."
        )


def _is_own_origin(origin: str, host: tuple[str, int | None] | None) -> bool:
    """Whether the page is one of ours: its origin names the Host it sends to (any loopback name)."""
    scheme, _, authority = origin.partition("://")
    page = _authority(authority) if host is not None and _ORIGIN_RE.fullmatch(origin) else None
    if host is None or page is None:
        return False
    default_port = 443 if scheme.lower() == "https" else 80
    if (page[1] or default_port) != (host[1] or default_port):
        return False
    return page[0] == host[0] or (page[0] in LOOPBACK_NAMES and host[0] in LOOPBACK_NAMES)


def _install_guard(app: web.Application, guard: OriginGuard) -> None:
    if _GUARDED not in app:
        app[_GUARDED] = GuardedRoutes()
    guarded = app[_GUARDED].resources

    @web.middleware
    async def origin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.route.resource in guarded:
            refused = guard.refusal(request.headers.get("Host"), request.headers.get("Origin"))
            if refused is not None:
                status, reason = refused
                logger.warning("%s %s: %s", request.method, request.path, reason)
                return web.Response(status=status, text=reason)
        return await handler(request)

    app.middlewares.append(origin_guard)


def install_browser_rules(
    app: web.Application,
    settings: AppSettings,
    *,
    cors: str | None = None,
    credentials: bool | None = None,
    allowed_hosts: Iterable[str] = (),
) -> CorsPolicy | None:
    """CORS (when configured) in front of every route, then the origin guard; the CORS policy.

    ``cors`` and ``credentials`` (``--cors``, ``--cors-credentials``) replace the settings when
    given, as in ``func start``; ``allowed_hosts`` (``--allowed-hosts``) add to the setting's.
    """
    cors = settings.cors if cors is None else cors
    credentials = settings.cors_credentials if credentials is None else credentials
    try:
        policy = CorsPolicy.parse(cors, credentials)
    except CorsConfigError as exc:
        raise AppLoadError(f"CORS '{cors}' with CORSCredentials (--cors-credentials): {exc}") from None
    if policy is not None:
        install_cors(app, policy)
        for origin in policy.unmatchable():
            logger.warning(
                "CORS origin '%s' never matches the Origin a browser sends (scheme://host:port)", origin
            )
        if policy.any_origin:
            logger.warning(
                "CORS is '*': every web page you visit may call the app, the management API and the "
                "dashboard (list origins instead)."
            )
    hosts = [name for text in (settings.allowed_hosts, *allowed_hosts) for name in parse_allowed_hosts(text)]
    _install_guard(app, OriginGuard(policy, tuple(hosts)))
    return policy
