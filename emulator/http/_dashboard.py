"""The dashboard at ``/dashboard``: static pages that watch and manage instances.

The pages are plain HTML, CSS and JavaScript shipped in ``emulator/dashboard`` and call only the
public Durable HTTP management API of the same host, so they show exactly what any client of the
task hub sees. Nothing is fetched from elsewhere: the Content-Security-Policy keeps it that way.
"""

from __future__ import annotations

import sys
from importlib import resources

from aiohttp import web

from emulator.http._origin_guard import guard_route

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:
    from importlib.abc import Traversable

DASHBOARD_PATH = "/dashboard"

_CONTENT_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}
# Same origin only: anything loaded from a CDN would break offline, so the policy makes it fail here too.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _asset_folder() -> Traversable:
    return resources.files("emulator.http").joinpath("dashboard")


def dashboard_assets() -> dict[str, Traversable]:
    """The files the dashboard serves, by name; nothing outside this folder is reachable."""
    return {
        item.name: item
        for item in _asset_folder().iterdir()
        if item.is_file() and any(item.name.endswith(suffix) for suffix in _CONTENT_TYPES)
    }


def add_dashboard_routes(app: web.Application) -> None:
    """Serve the dashboard; register before any catch-all route (an empty HTTP route prefix)."""
    assets = dashboard_assets()

    def respond(name: str) -> web.Response:
        asset = assets.get(name)
        if asset is None:
            raise web.HTTPNotFound()
        suffix = name[name.rfind(".") :]
        # Read per request: the files are small, and edits show up without a restart.
        return web.Response(
            body=asset.read_bytes(),
            content_type=_CONTENT_TYPES[suffix],
            charset="utf-8",
            headers=_SECURITY_HEADERS,
        )

    async def root(request: web.Request) -> web.StreamResponse:
        # Relative asset URLs need the trailing slash.
        raise web.HTTPFound(f"{DASHBOARD_PATH}/")

    async def index(request: web.Request) -> web.Response:
        return respond("index.html")

    async def asset(request: web.Request) -> web.Response:
        return respond(request.match_info["name"])

    # Behind the origin guard: a DNS-rebinding page must not read the pages either.
    for path, handler in (
        (DASHBOARD_PATH, root),
        (f"{DASHBOARD_PATH}/", index),
        (DASHBOARD_PATH + "/{name}", asset),
    ):
        guard_route(app, app.router.add_get(path, handler))
