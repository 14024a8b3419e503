"""The ``{hub}Partitions`` table: one row per control queue (PartitionKey ``""``, RowKey the queue)
with ``CurrentOwner``, ``NextOwner`` and ``ExpiresAt``, like the real provider's table partition
manager. Every change is ETag-conditional (docs/durability.md invariant 7 across hosts)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from emulator.taskhub._interface import PartitionLease

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient


class PartitionsTable:
    """The Partitions table of one task hub; a lease's version is its row's ETag."""

    def __init__(self, table: TableClient, queue_names: list[str]) -> None:
        self.table = table
        self._names = queue_names

    async def read(self) -> list[PartitionLease]:
        leases = []
        async for row in self.table.query_entities("PartitionKey eq ''"):
            if row["RowKey"] in self._names:
                leases.append(_lease(self._names.index(row["RowKey"]), row))
        return sorted(leases, key=lambda lease: lease.partition)

    async def write(self, lease: PartitionLease) -> PartitionLease | None:
        from azure.data.tables import UpdateMode

        entity = {
            "PartitionKey": "",
            "RowKey": self._names[lease.partition],
            "CurrentOwner": lease.owner or "",
            "NextOwner": lease.next_owner or "",
            "ExpiresAt": lease.expires_at,
            "NextOwnerAt": lease.next_owner_at,
            "OwnedSince": lease.owned_since,
            "LastRenewal": lease.last_renewal,
        }
        try:
            if lease.version is None:
                metadata = await self.table.create_entity(entity)
            else:
                metadata = await self.table.update_entity(
                    entity,
                    mode=UpdateMode.MERGE,
                    etag=lease.version,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return None
        return PartitionLease(
            lease.partition,
            lease.owner or None,
            lease.next_owner or None,
            lease.expires_at,
            lease.next_owner_at,
            lease.owned_since,
            lease.last_renewal,
            version=str(metadata.get("etag") or "") or None,
        )


def _lease(partition: int, row: Any) -> PartitionLease:
    return PartitionLease(
        partition,
        owner=str(row.get("CurrentOwner") or "") or None,
        next_owner=str(row.get("NextOwner") or "") or None,
        expires_at=_time(row.get("ExpiresAt")),
        next_owner_at=_time(row.get("NextOwnerAt")),
        owned_since=_time(row.get("OwnedSince")),
        last_renewal=_time(row.get("LastRenewal")),
        version=row.metadata["etag"],
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
