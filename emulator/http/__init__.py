"""The HTTP front: HTTP-triggered functions, request limits, function keys and the dashboard."""
