"""The durable back end of one host: leases, timers, the activity, orchestration and entity
dispatchers and partition ownership, built in dependency order, each given its collaborators.

It is also the local router they deliver through (``emulator.durable._routing.LocalRouter``):
a control message goes to the dispatcher of its instance when this host owns the instance's
partition, and back to its queue for the owner otherwise. The only loops back are queue
messages, which is also how work survives a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emulator.app._app_index import AppIndex
from emulator.durable._entities import EntityDispatcher
from emulator.durable._history import HistoryEvent
from emulator.durable._leases import LeaseKeeper
from emulator.durable._orchestrations import OrchestrationDispatcher
from emulator.durable._partitions import PartitionManager
from emulator.durable._timers import DurableClock, TimerScheduler
from emulator.durable._work_items import WorkItem
from emulator.functions._activities import ActivityDispatcher
from emulator.functions._bindings import Bindings
from emulator.functions._invocations import InvocationLog
from emulator.host._host_identity import is_dead_predecessor
from emulator.host._stopping import StopDeadline
from emulator.taskhub._interface import ControlMessage, MessageLease, TaskHub
from emulator.taskhub._storage_outage import StorageHealth

logger = logging.getLogger("emulator.host")


@dataclass(frozen=True)
class RuntimeOptions:
    #: How long a message stays leased to this host without renewal.
    lease_seconds: float
    max_concurrent_orchestrations: int
    max_concurrent_activities: int
    #: Orchestrations stay in memory between episodes.
    extended_sessions: bool
    #: ...and are checked against replays from the start.
    replay_check: bool
    #: Longest pause between polls of an idle queue; new work is handed over without polling.
    max_poll_interval: float


class DurableRuntime:
    def __init__(
        self,
        *,
        storage: TaskHub,
        health: StorageHealth,
        index: AppIndex,
        invocations: InvocationLog,
        clock: DurableClock,
        bindings: Bindings,
        owner: str,
        options: RuntimeOptions,
    ) -> None:
        self._storage = storage
        self._health = health
        self._max_poll_interval = options.max_poll_interval
        self._background: list[asyncio.Task[None]] = []
        self._wake = [asyncio.Event() for _ in range(storage.partition_count)]
        self.leases = LeaseKeeper(storage, options.lease_seconds)
        self.timers = TimerScheduler(clock, self.leases, self._deliver_owned)
        self.activities = ActivityDispatcher(
            index=index,
            invocations=invocations,
            clock=clock,
            bindings=bindings,
            results=self._activity_result,
            max_concurrent=options.max_concurrent_activities,
            hub_name=storage.name,
        )
        self.orchestrations = OrchestrationDispatcher(
            storage=storage,
            index=index,
            invocations=invocations,
            leases=self.leases,
            clock=clock,
            router=self,
            max_concurrent=options.max_concurrent_orchestrations,
            extended_sessions=options.extended_sessions,
            replay_check=options.replay_check,
        )
        self.entities = EntityDispatcher(
            storage=storage,
            index=index,
            invocations=invocations,
            leases=self.leases,
            clock=clock,
            route=self.route,
        )
        self.partitions = PartitionManager(
            storage,
            owner,
            # Ownership outlives a crash by at most the message lease, capped at the real 30 s.
            lease_seconds=min(30.0, self.leases.lease_seconds),
            on_acquired=self._partition_acquired,
            on_lost=self._partition_lost,
            health=health,
            is_dead_predecessor=lambda holder: is_dead_predecessor(holder, owner),
        )

    async def start(self) -> None:
        self.leases.start()
        self.timers.start()
        await self.partitions.start()
        for partition in range(self._storage.partition_count):
            self._spawn(self._poll_control(partition), f"poll-control-{partition:02d}")

    async def stop_taking_work(self, deadline: StopDeadline) -> None:
        """Stop polling and owning partitions (without handing them back yet)."""
        await self.partitions.stop(release=False)
        for task in self._background:
            task.cancel()
        await deadline.run("the pollers", asyncio.gather(*self._background, return_exceptions=True))
        self._background.clear()

    async def close(self, deadline: StopDeadline) -> None:
        """Abandon the work in flight (it is redone from its checkpoints), then give partitions
        and leased messages back, so another host takes them over at once."""
        await self.timers.stop()
        for dispatcher in (self.activities, self.orchestrations, self.entities):
            await deadline.run("the work in flight", dispatcher.close(), local=True)
        await self.leases.stop()
        await deadline.run("handing back its partitions", self.partitions.release())
        await deadline.run("handing back its leased messages", self.leases.release_all())

    def runs_here(self, instance_id: str) -> bool:
        return self.partitions.owns(self._storage.partition_of(instance_id))

    # -- the local router -------------------------------------------------------------------

    def route(self, message: ControlMessage, handle: MessageLease | None) -> None:
        """Process a control message here if this host owns its partition, else let the owner."""
        if self.runs_here(message.instance_id):
            self.timers.route(message, handle)
        elif handle is not None:
            # It was sent leased to us: make it visible now so the owner's poller finds it.
            self._spawn(self._storage.renew(handle, 0), "release-control-message")

    def schedule_timer(self, message: ControlMessage, handle: MessageLease | None, fire_at: datetime) -> None:
        self.timers.schedule(message, handle, fire_at)

    def run_activities(self, items: list[WorkItem]) -> None:
        self.activities.dispatch(items)

    def _deliver_owned(self, message: ControlMessage, handle: MessageLease | None) -> None:
        """Hand a due control message of an owned partition to its dispatcher."""
        if message.instance_id.startswith("@"):
            self.entities.deliver(message, handle)
        else:
            self.orchestrations.deliver(message, handle)

    def _activity_result(self, item: WorkItem, event: HistoryEvent) -> None:
        if self.runs_here(item.instance_id):
            self.orchestrations.deliver_result(item, event)
        else:
            # The partition's new owner dispatched this activity again from the history.
            logger.debug(
                "Dropping the result of activity '%s' of '%s': its partition moved to another host",
                item.name,
                item.instance_id,
            )

    # -- partition ownership ----------------------------------------------------------------

    def _partition_acquired(self, partition: int) -> None:
        self._wake[partition].set()
        self._spawn(self._recover_partition(partition), f"recover-partition-{partition:02d}")

    async def _recover_partition(self, partition: int) -> None:
        """Load the unfinished instances of a newly owned partition: their activities without a
        result in history may have been lost with the host that ran them."""
        backoff = 0.5
        while self.partitions.owns(partition):
            try:
                ids = await self._storage.unfinished_instances()
                break
            except Exception as exc:
                logger.warning(
                    "Could not list the unfinished instances (%s); retrying in %.1f s", exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
        else:
            return
        mine = [i for i in ids if self._storage.partition_of(i) == partition and not i.startswith("@")]
        if mine:
            logger.info("Partition %d: loading %d unfinished orchestrations", partition, len(mine))
        for instance_id in mine:
            self.orchestrations.recover(instance_id)

    def _partition_lost(self, partition: int) -> None:
        storage = self._storage
        owned_here = lambda instance_id: storage.partition_of(instance_id) == partition  # noqa: E731
        dropped = [
            *self.orchestrations.drop(owned_here),
            *self.entities.drop(owned_here),
            *self.timers.drop(owned_here),
        ]
        for handle in dropped:
            self.leases.release(handle)
            # Visible at once, so the new owner's poller finds it without waiting out our lease.
            self._spawn(storage.renew(handle, 0), "release-control-message")

    async def forget_instance(self, instance_id: str, execution_ids: set[str]) -> None:
        """Drop an instance about to be purged: its episode, queued events and timers.

        Their messages are deleted rather than released: they belong to the purged execution.
        """
        handles = [
            *await self.orchestrations.forget(instance_id, execution_ids),
            *self.timers.drop(lambda other: other == instance_id),
        ]
        for handle in handles:
            self.leases.release(handle)
        await asyncio.gather(*(self._storage.complete(h) for h in handles), return_exceptions=True)

    # -- polling ----------------------------------------------------------------------------

    async def _poll_control(self, partition: int) -> None:
        interval = 0.05
        while True:
            if not self.partitions.owns(partition):
                # Another host owns it: wait until ownership changes (or look again later).
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake[partition].wait(), self._max_poll_interval)
                self._wake[partition].clear()
                continue
            try:
                batch = await self._storage.receive_control(partition, self.leases.lease_seconds)
            except Exception as exc:
                if self._storage.is_transient(exc):
                    self._health.failed(exc)  # one line for the whole outage
                else:
                    logger.warning("Could not read control queue %d (%s); retrying", partition, exc)
                batch = []
                interval = self._max_poll_interval
            else:
                self._health.answered()
            for message, handle in batch:
                # Recovered timer messages wait in memory for their fire time.
                self.timers.route(message, handle)
            if batch:
                interval = 0.05
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake[partition].wait(), interval)
            self._wake[partition].clear()
            interval = min(interval * 2, self._max_poll_interval)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._background.append(asyncio.create_task(coro, name=name))
