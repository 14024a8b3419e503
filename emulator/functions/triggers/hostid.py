"""The host ID and the names the storage extensions derive from it.

Locally the Functions host's ID is the machine name (letters and digits only) and a stable hash of
the script root, cut to 32 characters and lower-cased (``ScriptHostIdProvider.GetDefaultHostId``),
unless the ``AzureFunctionsWebHost__hostid`` setting gives one. Timer status and blob receipts are
kept under it in the ``azure-webjobs-hosts`` container, so a restarted host finds its own.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

HOSTS_CONTAINER = "azure-webjobs-hosts"
MAX_HOST_ID_LENGTH = 32
HOST_ID_SETTING = "AzureFunctionsWebHost__hostid"


def stable_hash(text: str) -> int:
    """``Utility.GetStableHash``: a 32-bit signed ``hash * 31 + char`` over UTF-16 code units."""
    value = 23
    data = text.encode("utf-16-le")
    for index in range(0, len(data), 2):
        value = (value * 31 + int.from_bytes(data[index : index + 2], "little")) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def machine_name() -> str:
    # .NET's Environment.MachineName on Linux is the host name up to the first dot.
    return socket.gethostname().split(".", 1)[0]


def host_id(script_root: Path) -> str:
    configured = os.environ.get(HOST_ID_SETTING)
    if configured:
        return configured
    sanitized = "".join(c for c in machine_name() if c.isalnum())
    value = f"{sanitized}-{abs(stable_hash(str(script_root)))}"
    return value[:MAX_HOST_ID_LENGTH].lower().rstrip("-")


def function_id(function_name: str) -> str:
    """The WebJobs function ID of a script function (timer status and blob receipts use it)."""
    return f"Host.Functions.{function_name}"
