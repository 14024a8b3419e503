"""A local emulator of the Azure Functions host with the Durable Functions extension.

Run an app with ``python -m emulator start``; embed a host with :class:`EmulatorHost`.
"""

from emulator._host import EmulatorHost, HostOptions

__all__ = ["EmulatorHost", "HostOptions"]
