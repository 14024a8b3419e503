"""``start --debug[=PORT]``: the host listens for a debugger (VS Code) through debugpy.

debugpy is an optional dependency (the package's ``[debug]`` extra). It serves the Debug Adapter
Protocol on the port; VS Code's "Python Debugger: Attach" configuration connects to it, and from
then on breakpoints in the app's orchestrators, activities and entities stop the host: debugpy
suspends all its threads, the event loop included, until the debugger goes on.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("emulator")

DEFAULT_DEBUG_PORT = 5678


class DebuggerUnavailableError(RuntimeError):
    """debugpy is missing or cannot listen."""


def listen_for_debugger(port: int, host: str = "127.0.0.1") -> None:
    """Start debugpy's listener on ``host:port``; the host runs on without waiting for a client."""
    try:
        import debugpy
    except ImportError:
        raise DebuggerUnavailableError(
            "--debug needs debugpy, which is not installed: "
            "pip install 'durable-functions-emulator[debug]' (or pip install debugpy)"
        ) from None
    try:
        debugpy.listen((host, port))
    except (OSError, RuntimeError) as exc:
        raise DebuggerUnavailableError(f"--debug: debugpy could not listen on {host}:{port}: {exc}") from None
    logger.info(
        "Debugger (debugpy) listening on %s:%d: attach VS Code to it (see the README's Debugging section)",
        host,
        port,
    )
