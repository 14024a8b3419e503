"""A local emulator of the Azure Functions host with the Durable Functions extension.

Run an app with ``python -m emulator start``; embed a host with :class:`EmulatorHost`.

The package is laid out by the stages a request goes through: ``app`` (loading the function app),
``functions`` (bindings, invocations, triggers), ``http`` (the HTTP front), ``client`` (the durable
client and management API), ``durable`` (the engine), ``taskhub`` (where durable state lives),
``host`` (the wiring), ``tools`` (the command line) and ``testing`` (the pytest plugin). Importing
``emulator`` itself imports none of them: ``EmulatorHost`` loads the host on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.host import EmulatorHost, HostOptions

__all__ = ["EmulatorHost", "HostOptions"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from emulator import host

        return getattr(host, name)
    raise AttributeError(f"module 'emulator' has no attribute {name!r}")
