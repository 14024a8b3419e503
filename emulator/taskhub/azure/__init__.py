"""The task hub in Azure Storage (or Azurite), laid out as the real Azure Storage provider lays it out.

Everything that speaks the storage SDKs for the durable engine is in this package: the engine
sees only :class:`emulator.taskhub.TaskHub`. Hosts and tools get their task hub here.
"""

from __future__ import annotations

import contextlib
import json

from emulator.host._azurite import client_options
from emulator.taskhub.azure._errors import is_missing_resource, is_storage_error, is_transient
from emulator.taskhub.azure._task_hub import AzureTaskHub

__all__ = [
    "AzureTaskHub",
    "import_storage_clients",
    "is_missing_resource",
    "is_storage_error",
    "is_transient",
    "open_task_hub",
    "stored_partition_count",
]


def import_storage_clients() -> None:
    """Import the storage SDKs (about 0.4 s; the host does it on a thread).

    Modules import them where they are used rather than at the top, so that a host can answer
    HTTP before they are loaded.
    """
    import azure.data.tables._serialize
    import azure.data.tables.aio
    import azure.storage.blob.aio
    import azure.storage.queue.aio  # noqa: F401


def open_task_hub(connection_string: str, hub_name: str, partition_count: int = 4) -> AzureTaskHub:
    """The task hub ``hub_name`` in the storage account of ``connection_string`` (not created yet)."""
    return AzureTaskHub(connection_string, hub_name, partition_count)


async def stored_partition_count(connection_string: str, hub: str, default: int) -> int | None:
    """The partition count in the hub's ``taskhub.json`` (``default`` if it names none), or None
    when the hub does not exist."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob.aio import BlobClient

    blob = BlobClient.from_connection_string(
        connection_string, f"{hub.lower()}-leases", "taskhub.json", **client_options(connection_string)
    )
    try:
        text = await (await blob.download_blob()).readall()
    except ResourceNotFoundError:
        return None
    finally:
        await blob.close()
    with contextlib.suppress(ValueError):
        info = json.loads(text)
        count = info.get("PartitionCount") if isinstance(info, dict) else None
        if isinstance(count, int) and 1 <= count <= 16:
            return count
    return default
