"""Partition ownership: which host processes which control queue.

Like the real provider's table partition manager (one lease per control queue with its current
owner, the next owner and when it expires), every change is a conditional write
(``TaskHub.write_partition_lease``), so two hosts can never both own a partition
(docs/durability.md invariant 7 across hosts, on top of the history's own version check). Owners
renew their leases; a dead host's leases expire and are claimed by the others. A host that owns
less than its share asks for a partition by naming itself its next owner; the owner hands it over
on its next renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from emulator.durable import _history as h
from emulator.durable._history import aware
from emulator.taskhub._interface import PartitionLease, TaskHub
from emulator.taskhub._storage_outage import StorageHealth

logger = logging.getLogger("emulator.partitions")

Listener = Callable[[int], None]


class PartitionManager:
    def __init__(
        self,
        task_hub: TaskHub,
        owner: str,
        *,
        lease_seconds: float = 30.0,
        on_acquired: Listener,
        on_lost: Listener,
        health: StorageHealth | None = None,
        is_dead_predecessor: Callable[[str], bool] = lambda owner: False,
    ) -> None:
        self._task_hub = task_hub
        self._names = [task_hub.partition_name(p) for p in range(task_hub.partition_count)]
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
        if not owned:
            return
        try:
            leases = await self._task_hub.read_partition_leases()  # one read for all of them
        except Exception:
            return  # they expire instead

        async def release_one(lease: PartitionLease) -> None:
            with contextlib.suppress(Exception):
                await self._write(lease, owner=None, expires_at=h.utcnow())

        mine = [x for x in leases if x.partition in owned and x.owner == self.owner]
        await asyncio.gather(*(release_one(lease) for lease in mine))

    async def _ensure_rows(self) -> None:
        for partition in range(len(self._names)):
            # None: it exists already.
            await self._task_hub.write_partition_lease(PartitionLease(partition, None, None, h.utcnow()))

    async def _loop(self) -> None:
        interval = max(self.lease.total_seconds() / 3.0, 0.2)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.balance()
            except Exception as exc:
                if self._health is not None and self._task_hub.is_transient(exc):
                    self._health.failed(exc)  # one line for the whole outage
                else:
                    logger.warning("Could not renew partition ownership (%s); retrying", exc)
            else:
                if self._health is not None:
                    self._health.answered()

    async def _write(self, lease: PartitionLease, **changes: Any) -> bool:
        """Change the lease as read; False when someone else changed it meanwhile."""
        return await self._task_hub.write_partition_lease(replace(lease, **changes)) is not None

    async def balance(self) -> None:
        """Renew what we own, claim what is free or expired, and share with hosts that have less."""
        now = h.utcnow()
        leases = await self._task_hub.read_partition_leases()
        by_partition = {lease.partition: lease for lease in leases}
        # A request for a partition counts only while its host keeps renewing it: a host that died
        # after asking must not hold a partition back forever.
        stale = now - 2 * self.lease
        wants = {x.partition: x.next_owner or "" for x in leases if aware(x.next_owner_at) > stale}
        owners = {x.owner for x in leases if x.owner and aware(x.expires_at) > now} | {
            owner for owner in wants.values() if owner
        }
        owners.add(self.owner)
        fair_share = math.ceil(len(self._names) / len(owners))
        expires = now + self.lease
        for partition, name in enumerate(self._names):
            row = by_partition.get(partition)
            if row is None:
                continue
            current = row.owner or ""
            wanted_by = wants.get(partition, "")
            alive = current and aware(row.expires_at) > now
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
                    if await self._write(row, owner=None, expires_at=now):
                        self._lose(partition)
                    continue
                if await self._write(row, expires_at=expires, last_renewal=now):
                    continue
                self._lose(partition)
            elif not alive or current == self.owner:
                if wanted_by and wanted_by != self.owner and len(self.owned) >= fair_share:
                    continue  # leave it to the host that asked for it
                if await self._write(
                    row, owner=self.owner, next_owner=None, owned_since=now, expires_at=expires
                ):
                    self._gain(partition)
                else:
                    self._lose(partition)
            else:
                self._lose(partition)
                asks = len(self.owned) < fair_share and wanted_by in ("", self.owner)
                self._report_wait(partition, current, aware(row.expires_at) - now, asks)
                if asks:
                    await self._write(row, next_owner=self.owner, next_owner_at=now)

    def _report_wait(self, partition: int, holder: str, remaining: timedelta, asks: bool) -> None:
        """Say once per holder what this host waits for, and how long at most."""
        if self._waiting_for.get(partition) == holder:
            return
        self._waiting_for[partition] = holder
        handover = "it is asked to hand it over, " if asks else ""
        logger.info(
            "%s is owned by host '%s' (lease for %.0f s more); %sor this host takes it once "
            "that lease expires without renewal",
            self._names[partition],
            holder,
            max(remaining.total_seconds(), 0.0),
            handover,
        )

    def _gain(self, partition: int) -> None:
        self._waiting_for.pop(partition, None)
        if partition not in self.owned:
            self.owned.add(partition)
            logger.info("Host '%s' now owns %s", self.owner, self._names[partition])
            self._on_acquired(partition)

    def _lose(self, partition: int) -> None:
        if partition in self.owned:
            self.owned.discard(partition)
            logger.info("Host '%s' no longer owns %s", self.owner, self._names[partition])
            self._on_lost(partition)
