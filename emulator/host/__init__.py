"""The host: wiring the stages together (the durable back end in ``_durable_runtime``), starting
Azurite, stopping cleanly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.host._host import EmulatorHost, HostOptions

__all__ = ["EmulatorHost", "HostOptions"]


def __getattr__(name: str) -> Any:
    # Lazy: the stages below import host._azurite, and the host imports them all.
    if name in __all__:
        from emulator.host import _host

        return getattr(_host, name)
    raise AttributeError(f"module 'emulator.host' has no attribute {name!r}")
