"""Instances-row updates and message deletes behind an orchestration's checkpoints.

The history is the checkpoint (docs/durability.md); the Instances row follows it (invariant 5: the
API reports only what is stored) and the consumed messages are deleted after that (invariant 3). Neither holds
up the next episode: they are written in episode order behind it, close updates folded into
one write (a chain then writes its row a few times a second), a runtime status change at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from emulator.durable import _history as h
from emulator.durable._crash import crash_point
from emulator.durable._episode import Episode
from emulator.durable._history import EventType, HistoryEvent, OrchestrationStatus
from emulator.durable._leases import LeaseKeeper
from emulator.durable._reconcile import Delivery
from emulator.taskhub._interface import InstanceUpdate, StoredHistory, TaskHub

logger = logging.getLogger("emulator.orchestrations")

#: How long a row update that only moves LastUpdatedTime or the custom status may wait for the
#: next episodes' updates to be written together (a chain then writes it a few times a second).
STATUS_WRITE_DELAY = 0.1

#: A status query for an instance whose checkpoint is under way on this host waits this long at
#: most for the checkpoint's Instances-row write (``OrchestrationDispatcher.checkpoint_written``).
STATUS_QUERY_WAIT = 0.1


@dataclass
class StatusWrite:
    """The instance update and consumed messages of episodes not yet reflected in storage."""

    update: InstanceUpdate | None = None
    consumed: list[Delivery] = field(default_factory=list)
    #: Set when the runtime status changes: written at once, without waiting for more.
    urgent: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class InstanceStatus:
    """One instance's Instances-row writes under way, and the status queries waiting for them."""

    instance_id: str
    #: Writes the row and deletes consumed messages (``StatusWriter.write_status``);
    #: ``unwritten`` is what it has still to do.
    follow_up: asyncio.Task[None] | None = None
    unwritten: StatusWrite | None = None
    #: Status queries waiting for the next Instances-row write (``wait_for_write``).
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)

    @property
    def under_way(self) -> bool:
        return self.unwritten is not None or not settled(self.follow_up)

    def release_waiters(self, written: bool) -> None:
        """Let the waiting status queries go (``written``: the Instances row was just written)."""
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(written)

    async def wait_for_write(self) -> bool:
        """Wait briefly for the next Instances-row write; True when it was written just now."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, STATUS_QUERY_WAIT)
        except asyncio.TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                self.waiters.remove(waiter)


class StatusWriter:
    def __init__(self, *, storage: TaskHub, leases: LeaseKeeper) -> None:
        self._storage = storage
        self._leases = leases
        self._deleting: set[asyncio.Task[None]] = set()

    def cancel(self) -> list[asyncio.Task[None]]:
        """Cancel the message deletes under way; return their tasks, to be awaited."""
        tasks = list(self._deleting)
        for task in tasks:
            task.cancel()
        return tasks

    def queue_status_write(
        self, status: InstanceStatus, update: InstanceUpdate, consumed: list[Delivery]
    ) -> None:
        """Have an episode's instance update written and its messages acknowledged.

        The next episode need not wait for them (invariants 5 and 3 hold: both follow the
        history); they are written in episode order behind it.
        """
        pending_write = status.unwritten = status.unwritten or StatusWrite()
        pending_write.update = update if pending_write.update is None else pending_write.update.then(update)
        pending_write.consumed += consumed
        if update.runtime_status is not None:
            pending_write.urgent.set()
        if settled(status.follow_up):
            status.follow_up = asyncio.get_running_loop().create_task(self.write_status(status))

    async def write_status(self, status: InstanceStatus) -> None:
        """Write what the episodes left unwritten, in order, folding close updates together."""
        while status.unwritten is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(status.unwritten.urgent.wait(), STATUS_WRITE_DELAY)
            write, status.unwritten = status.unwritten, None
            assert write.update is not None  # queued with its first update
            await self._write_once(status.instance_id, write.update, write.consumed)
            status.release_waiters(written=True)

    async def _write_once(self, instance_id: str, update: InstanceUpdate, consumed: list[Delivery]) -> None:
        backoff = 0.5
        while True:
            try:
                if not await self._storage.update_instance(instance_id, update):
                    logger.debug("No Instances row of '%s' to update: it was purged", instance_id)
                break
            except Exception as exc:
                logger.warning(
                    "The status of '%s' could not be stored (%s: %s); retrying in %.1f s",
                    instance_id,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
        crash_point("episode-after-instance")
        if consumed:
            # The next status write need not wait for these deletes.
            self.consume_later(instance_id, consumed)

    def consume_later(self, instance_id: str, consumed: list[Delivery]) -> None:
        task = asyncio.get_running_loop().create_task(self._consume_quietly(instance_id, consumed))
        self._deleting.add(task)
        task.add_done_callback(self._deleting.discard)

    async def _consume_quietly(self, instance_id: str, consumed: list[Delivery]) -> None:
        try:
            await self.consume(consumed)
        except Exception as exc:
            # The messages come back after their lease and are dropped as duplicates then.
            logger.debug("Could not delete consumed messages of '%s': %s", instance_id, exc)

    async def consume(self, deliveries: list[Delivery]) -> None:
        handles = [d.handle for d in deliveries if d.handle is not None]
        for handle in handles:
            self._leases.release(handle)
        await asyncio.gather(*(self._storage.complete(handle) for handle in handles))

    @staticmethod
    def instance_update(episode: Episode, accepted: list[HistoryEvent], now: datetime) -> InstanceUpdate:
        decisions, started = episode.decisions, episode.started
        update = InstanceUpdate(last_updated_time=now, execution_id=episode.execution_id)
        update.custom_status = decisions.custom_status
        if episode.new_generation or any(h.event_type(e) == EventType.ExecutionStarted for e in accepted):
            update.name, update.input = started.get("Name"), started.get("Input")
            update.runtime_status = OrchestrationStatus.Running
            update.created_time = h.parse_timestamp(started["Timestamp"])
            update.generation = int(started.get("Generation") or 0)
        if episode.suspended is not None:
            reason = next((e.get("Reason") for e in reversed(accepted) if e.get("Reason") is not None), None)
            status = OrchestrationStatus.Suspended if episode.suspended else OrchestrationStatus.Running
            update.runtime_status, update.output = status, reason
        if decisions.is_finished:
            update.runtime_status = decisions.status
            update.output = decisions.output
            update.completed_time = now
        return update

    async def sync_instance_row(self, instance_id: str, stored: StoredHistory) -> None:
        started = next((e for e in stored.events if h.event_type(e) == EventType.ExecutionStarted), None)
        if started is None:
            return
        status, output = OrchestrationStatus.Running, None
        for event in stored.events:
            kind = h.event_type(event)
            if kind == EventType.ExecutionCompleted:
                status, output = OrchestrationStatus(event["OrchestrationStatus"]), event.get("Result")
            elif kind in (EventType.ExecutionSuspended, EventType.ExecutionResumed):
                suspended = kind == EventType.ExecutionSuspended
                status = OrchestrationStatus.Suspended if suspended else OrchestrationStatus.Running
        record = await self._storage.read_instance(instance_id)
        execution_id = str(started["OrchestrationInstance"]["ExecutionId"])
        if record is not None and record.execution_id == execution_id and record.runtime_status == status:
            return
        logger.info("Bringing the Instances row of '%s' up to date with its history", instance_id)
        last = h.parse_timestamp(stored.events[-1]["Timestamp"])
        update = InstanceUpdate(
            last_updated_time=last,
            runtime_status=status,
            execution_id=execution_id,
            name=started.get("Name"),
            created_time=h.parse_timestamp(started["Timestamp"]),
            input=started.get("Input"),
        )
        if status not in (OrchestrationStatus.Running, OrchestrationStatus.Suspended):
            update.output, update.completed_time = output, last
        await self._storage.update_instance(instance_id, update)


def settled(task: asyncio.Task[None] | None) -> bool:
    return task is None or task.done()
