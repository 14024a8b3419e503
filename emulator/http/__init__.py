"""The HTTP front: HTTP-triggered functions, request limits, function keys and the dashboard.

``_http_triggers`` routes requests to HTTP-triggered functions (``_route_templates``) and converts
requests and responses as the host and the worker do (``_http_conversion``); ``_http_limits`` is the
host's request limits, ``_auth`` its function keys, ``_dashboard`` the dashboard's pages, ``_cors``
CORS as ``func start`` applies it and ``_origin_guard`` what other web origins and hosts may not do.
Nothing is re-exported: importing the package loads no aiohttp.
"""
