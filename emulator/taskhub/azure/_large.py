"""Values too large for a table column or a queue message: gzipped blobs in ``{hub}-largemessages``."""

from __future__ import annotations

import gzip
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.storage.blob.aio import ContainerClient

#: Largest string column kept inline (the real provider's 60 KB of UTF-16); longer ones go to a blob.
MAX_INLINE_PROPERTY_CHARS = 30 * 1024
_LARGE_COLUMNS = ("Input", "Result", "Output", "Reason", "Details", "CustomStatus", "Name")


class LargeValues:
    """The large-messages container of one task hub."""

    def __init__(self, container: ContainerClient) -> None:
        self.container = container

    async def upload(self, blob_name: str, text: str) -> None:
        await self.container.upload_blob(blob_name, gzip.compress(text.encode("utf-8")), overwrite=True)

    async def download(self, blob_name: str) -> str:
        stream = await self.container.download_blob(blob_name)
        return gzip.decompress(await stream.readall()).decode("utf-8")

    async def offload_columns(self, row: dict[str, Any], prefix: str) -> None:
        """Move each string column longer than a table holds to a blob named in ``<column>BlobName``."""
        for column in _LARGE_COLUMNS:
            value = row.get(column)
            if isinstance(value, str) and len(value) > MAX_INLINE_PROPERTY_CHARS:
                blob_name = f"{prefix}-{column}-{uuid.uuid4().hex[:8].upper()}.json.gz"
                await self.upload(blob_name, value)
                row[column] = ""
                row[f"{column}BlobName"] = blob_name

    async def restore_columns(self, row: dict[str, Any]) -> dict[str, str]:
        """The values of the row's columns kept in blobs, by column."""
        restored: dict[str, str] = {}
        for key, value in row.items():
            if key.endswith("BlobName") and value:
                restored[key[: -len("BlobName")]] = await self.download(str(value))
        return restored
