"""Partition ownership: which host processes which control queue.

Like the real provider's table partition manager (the ``{hub}Partitions`` table: one row per
control queue with ``CurrentOwner``, ``NextOwner``, ``ExpiresAt``), every change is an
ETag-conditional update, so two hosts can never both own a partition (docs/durability.md invariant 7
across hosts, on top of the history's own ETag check). Owners renew their rows; a dead host's
rows expire and are claimed by the others. A host that owns less than its share asks for a
partition by writing its name into ``NextOwner``; the owner hands it over on its next renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

from emulator.durable import _history as h
from emulator.durable._history import aware
from emulator.taskhub._storage_outage import StorageHealth, is_transient

logger = logging.getLogger("emulator.partitions")

Listener = Callable[[int], None]


class PartitionManager:
    def __init__(
        self,
        table: TableClient,
        queue_names: list[str],
        owner: str,
        *,
        lease_seconds: float = 30.0,
        on_acquired: Listener,
        on_lost: Listener,
        health: StorageHealth | None = None,
        is_dead_predecessor: Callable[[str], bool] = lambda owner: False,
    ) -> None:
        self._table = table
        self._queues = queue_names
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._health = health
        self.owned: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        #: True for an owner that is this host's own predecessor, dead (``_host_identity``).
        self._is_dead_predecessor = is_dead_predecessor
        #: The holder each partition was last reported waiting for, to say it once.
        self._waiting_for: dict[int, str] = {}

    def owns(self, partition: int) -> bool:
        return partition in self.owned

    async def start(self) -> None:
        await self._ensure_rows()
        await self.balance()
        self._task = asyncio.create_task(self._loop(), name="partition-ownership")

    async def stop(self, release: bool = True) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if release:
            await self.release()

    async def release(self) -> None:
        """Give every owned partition back at once (a host that stops cleanly does)."""
        owned, self.owned = set(self.owned), set()

        async def release_one(partition: int) -> None:
            with contextlib.suppress(Exception):
                row = await self._table.get_entity("", self._queues[partition])
                if row.get("CurrentOwner") == self.owner:
                    await self._write(row, {"CurrentOwner": "", "ExpiresAt": h.utcnow()})

        await asyncio.gather(*(release_one(partition) for partition in owned))

    async def _ensure_rows(self) -> None:
        for name in self._queues:
            with contextlib.suppress(ResourceExistsError):
                await self._table.create_entity(
                    {
                        "PartitionKey": "",
                        "RowKey": name,
                        "CurrentOwner": "",
                        "NextOwner": "",
                        "ExpiresAt": h.utcnow(),
                    }
                )

    async def _loop(self) -> None:
        interval = max(self.lease.total_seconds() / 3.0, 0.2)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.balance()
            except Exception as exc:
                if self._health is not None and is_transient(exc):
                    self._health.failed(exc)  # one line for the whole outage
                else:
                    logger.warning("Could not renew partition ownership (%s); retrying", exc)
            else:
                if self._health is not None:
                    self._health.answered()

    async def _write(self, row: Any, changes: dict[str, Any]) -> bool:
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": "", "RowKey": row["RowKey"], **changes}
        try:
            await self._table.update_entity(
                entity,
                mode=UpdateMode.MERGE,
                etag=row.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    async def balance(self) -> None:
        """Renew what we own, claim what is free or expired, and share with hosts that have less."""
        now = h.utcnow()
        rows = [r async for r in self._table.query_entities("PartitionKey eq ''")]
        by_queue = {r["RowKey"]: r for r in rows}
        # A request for a partition counts only while its host keeps renewing it: a host that died
        # after asking must not hold a partition back forever.
        stale = now - 2 * self.lease
        wants = {
            r["RowKey"]: str(r.get("NextOwner") or "") for r in rows if aware(r.get("NextOwnerAt")) > stale
        }
        owners = {
            str(r["CurrentOwner"]) for r in rows if r.get("CurrentOwner") and aware(r.get("ExpiresAt")) > now
        } | {owner for owner in wants.values() if owner}
        owners.add(self.owner)
        fair_share = math.ceil(len(self._queues) / len(owners))
        expires = now + self.lease
        for partition, name in enumerate(self._queues):
            row = by_queue.get(name)
            if row is None:
                continue
            current = str(row.get("CurrentOwner") or "")
            wanted_by = wants.get(name, "")
            alive = current and aware(row.get("ExpiresAt")) > now
            if alive and current != self.owner and self._is_dead_predecessor(current):
                logger.info(
                    "%s is held by '%s', an earlier host on this machine and port that has ended: "
                    "taking it over without waiting for its lease to expire",
                    name,
                    current,
                )
                alive = False
            if current == self.owner and alive:
                if wanted_by and wanted_by != self.owner and len(self.owned) > fair_share:
                    # Hand over to the host that asked: it claims the row once we clear it.
                    if await self._write(row, {"CurrentOwner": "", "ExpiresAt": now}):
                        self._lose(partition)
                    continue
                if await self._write(row, {"ExpiresAt": expires, "LastRenewal": now}):
                    continue
                self._lose(partition)
            elif not alive or current == self.owner:
                if wanted_by and wanted_by != self.owner and len(self.owned) >= fair_share:
                    continue  # leave it to the host that asked for it
                changes = {
                    "CurrentOwner": self.owner,
                    "NextOwner": "",
                    "OwnedSince": now,
                    "ExpiresAt": expires,
                }
                if await self._write(row, changes):
                    self._gain(partition)
                else:
                    self._lose(partition)
            else:
                self._lose(partition)
                asks = len(self.owned) < fair_share and wanted_by in ("", self.owner)
                self._report_wait(partition, current, aware(row.get("ExpiresAt")) - now, asks)
                if asks:
                    await self._write(row, {"NextOwner": self.owner, "NextOwnerAt": now})

    def _report_wait(self, partition: int, holder: str, remaining: timedelta, asks: bool) -> None:
        """Say once per holder what this host waits for, and how long at most."""
        if self._waiting_for.get(partition) == holder:
            return
        self._waiting_for[partition] = holder
        handover = "it is asked to hand it over, " if asks else ""
        logger.info(
            "%s is owned by host '%s' (lease for %.0f s more); %sor this host takes it once "
            "that lease expires without renewal",
            self._queues[partition],
            holder,
            max(remaining.total_seconds(), 0.0),
            handover,
        )

    def _gain(self, partition: int) -> None:
        self._waiting_for.pop(partition, None)
        if partition not in self.owned:
            self.owned.add(partition)
            logger.info("Host '%s' now owns %s", self.owner, self._queues[partition])
            self._on_acquired(partition)

    def _lose(self, partition: int) -> None:
        if partition in self.owned:
            self.owned.discard(partition)
            logger.info("Host '%s' no longer owns %s", self.owner, self._queues[partition])
            self._on_lost(partition)
