"""Keeps queue messages this host is working on invisible to everyone else.

Messages are sent or received with a visibility timeout (the lease). While a message is held
(waiting for its episode, its timer, or its activities to finish) the lease is renewed well
before it runs out; if the host dies the renewals stop and the message reappears for another
receiver, which is how work survives a crash (docs/durability.md invariants 3 and 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from emulator.taskhub._interface import MessageLease, TaskHub

logger = logging.getLogger("emulator.leases")


class LeaseKeeper:
    def __init__(self, storage: TaskHub, lease_seconds: float) -> None:
        self._storage = storage
        self.lease_seconds = lease_seconds
        self._held: dict[int, MessageLease] = {}
        self._task: asyncio.Task[None] | None = None

    def hold(self, handle: MessageLease) -> None:
        self._held[id(handle)] = handle

    def release(self, handle: MessageLease) -> None:
        self._held.pop(id(handle), None)

    @property
    def held(self) -> int:
        return len(self._held)

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew_loop(), name="lease-renewal")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def release_all(self) -> None:
        """Make every held message visible again now, so a restarted host picks it up at once."""
        held = list(self._held.values())
        self._held.clear()
        await asyncio.gather(*(self._storage.renew(handle, 0) for handle in held), return_exceptions=True)

    async def _renew(self, handle: MessageLease) -> None:
        if await self._storage.renew(handle, self.lease_seconds):
            return
        if id(handle) in self._held:  # not a message that was just finished and deleted
            logger.warning(
                "Lost the lease on message %s; another receiver may process it again",
                handle.label,
            )
            self._held.pop(id(handle), None)

    async def _renew_loop(self) -> None:
        # Renew once a third of the lease has passed, checking twice as often as that.
        renew_after = self.lease_seconds / 3.0
        while True:
            await asyncio.sleep(max(renew_after / 2.0, 0.05))
            now = time.monotonic()
            due = [handle for handle in self._held.values() if now - handle.leased_at >= renew_after]
            if due:
                await asyncio.gather(*(self._renew(handle) for handle in due), return_exceptions=True)
