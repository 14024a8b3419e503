"""Orchestration episodes: events in, one replay, decisions checkpointed in order.

Each instance is handled by one actor at a time (docs/durability.md invariant 7 within a host): events
that arrive while an episode runs wait and go into the next episode together, so a fan-in of
many completions costs few replays (``emulator.durable._mailbox``). One episode follows the real
provider's checkpoint order (docs/host-behaviour.md 4.5):

1. send the outbound messages (timers, sub-orchestrations, entity operations, results to a
   parent) - invariant 2: the events this episode consumed are still in their queue messages
   (activity results that exist only in memory are first written to one), so recovery
   rebuilds the same episode;
2. append the history rows under the sentinel ETag - invariant 1;
3. hand the new activities to the activity dispatcher: their ``TaskScheduled`` rows are their
   durable record, and whoever loads the history next dispatches the ones without a result
   (when every event the episode consumed is durable in a queue message or a Pending row,
   they start before step 2 instead: a crash then replays the very same episode);
4. merge the Instances row - invariant 5: the API reports only what is stored (a status query
   that waited for this write may answer with the row as written, ``checkpoint_written``);
5. delete the consumed messages - invariant 3.

Activity results come back in memory and are recorded by the next episode's history, so a step
of a chain costs one storage write on its critical path. A small episode of the kind whose
activities start before step 2 may also postpone steps 2, 4 and 5 for a few milliseconds, so
that its activities' results are written with it (``Unflushed``): a one-activity orchestration
then writes its history once.

Duplicate and stale events are recognised and dropped before the replay (invariant 6).

This module decides what an episode does and in which order; its parts do it: ``_reconcile``
sorts the events, ``_episode_runner`` replays, ``_outbound`` sends (step 1), ``_checkpoints``
appends or holds the rows (step 2), ``_status_writer`` writes the row and deletes (steps 4, 5).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from emulator.app._app_index import AppIndex
from emulator.client._purges import PurgedExecutions, belongs_to_no_execution, starts_another_execution
from emulator.durable import _history as h
from emulator.durable._checkpoints import MAX_UNFLUSHED_ROWS, Checkpointer
from emulator.durable._crash import crash_point
from emulator.durable._episode_runner import EpisodeRunner
from emulator.durable._failure_log import function_failed
from emulator.durable._history import EventType, HistoryEvent, OrchestrationStatus
from emulator.durable._instance import OrchestrationInstance
from emulator.durable._leases import LeaseKeeper
from emulator.durable._mailbox import MailboxLoop
from emulator.durable._outbound import Handoff, OutboundSender
from emulator.durable._reconcile import Delivery, Incoming, reconcile
from emulator.durable._replay import HTTP_ACTIVITY
from emulator.durable._routing import LocalRouter
from emulator.durable._status_writer import StatusWriter
from emulator.durable._timers import DurableClock
from emulator.durable._work_items import WorkItem
from emulator.functions._invocations import InvocationLog
from emulator.taskhub._interface import (
    ControlMessage,
    HistoryConflictError,
    MessageLease,
    StoredHistory,
    TaskHub,
)

logger = logging.getLogger("emulator.orchestrations")

#: Most events one episode applies. A fan-in of 100,000 results that all waited for their
#: TaskScheduled rows then goes in episodes of this many, so that each episode's copies of its
#: events (the rows, the SDK's events) are not all in memory at once.
MAX_EPISODE_EVENTS = 10_000


class OrchestrationDispatcher:
    def __init__(
        self,
        *,
        storage: TaskHub,
        index: AppIndex,
        invocations: InvocationLog,
        leases: LeaseKeeper,
        clock: DurableClock,
        router: LocalRouter,
        max_concurrent: int,
        extended_sessions: bool = True,
        replay_check: bool = True,
        max_idle_instances: int = 2000,
    ) -> None:
        self._storage = storage
        self._leases = leases
        self._clock = clock
        self._router = router
        self._instances: dict[str, OrchestrationInstance] = {}
        #: Idle instances kept in memory (history and live orchestration) at the most.
        self._max_idle = max_idle_instances
        self._slots = asyncio.Semaphore(max_concurrent)
        self._purged = PurgedExecutions()
        self._runner = EpisodeRunner(
            index=index,
            invocations=invocations,
            max_concurrent=max_concurrent,
            extended_sessions=extended_sessions,
            replay_check=replay_check,
        )
        self._status = StatusWriter(storage=storage, leases=leases)
        self._checkpoints = Checkpointer(storage=storage, status=self._status, on_due=self._flush_soon)
        self._outbound = OutboundSender(storage=storage, leases=leases, clock=clock, router=router)
        self._loop: MailboxLoop[OrchestrationInstance] = MailboxLoop(
            kind="orchestration",
            label="Episode of instance",
            logger=logger,
            step=self._step,
            has_work=lambda i: bool(i.pending or i.recovering or i.flush_due),
            on_error=self._step_failed,
            on_idle=self._idle,
        )

    def drop(self, belongs: Callable[[str], bool]) -> list[MessageLease]:
        """Forget the instances another host now owns; return the message handles they held."""
        handles: list[MessageLease] = []
        for instance_id in [i for i in self._instances if belongs(i)]:
            handles += self._discard(self._instances.pop(instance_id))
        return handles

    async def forget(self, instance_id: str, execution_ids: set[str]) -> list[MessageLease]:
        """Forget a purged instance and its executions; return the message handles it held.

        Its episode and status write are cancelled and awaited, so that neither writes to
        storage once the purge has begun; its results and messages still to come are dropped.
        """
        instance = self._instances.pop(instance_id, None)
        if instance is not None and instance.history is not None and instance.history.execution_id:
            execution_ids = execution_ids | {instance.history.execution_id}
        self._purged.add(instance_id, execution_ids)
        if instance is None:
            return []
        handles = self._discard(instance)
        tasks = [t for t in (instance.task, instance.status.follow_up) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        logger.info("Instance '%s' was purged: its in-memory orchestration is dropped", instance_id)
        return handles

    async def reload(self, instance_id: str) -> None:
        """Let the episode under way finish, then forget the history and live orchestration in
        memory: the client is changing the history in storage (a rewind)."""
        instance = self._instances.get(instance_id)
        if instance is None:
            return
        for task in (instance.task, instance.status.follow_up):
            if task is not None and not task.done():
                await asyncio.wait([task])
        instance.history = instance.session = instance.index = None

    @staticmethod
    def _discard(instance: OrchestrationInstance) -> list[MessageLease]:
        instance.dropped = True
        for task in (instance.task, instance.status.follow_up):
            if task is not None:
                task.cancel()
        instance.status.release_waiters(written=False)
        events = [*instance.forget_unflushed(), *instance.in_flight, *instance.pending]
        deliveries = [d for _, d in events]
        if instance.status.unwritten is not None:
            deliveries += instance.status.unwritten.consumed  # checkpointed, not yet acknowledged
        return list({id(d.handle): d.handle for d in deliveries if d.handle is not None}.values())

    async def close(self) -> None:
        for instance in self._instances.values():
            instance.forget_unflushed()  # replayed from its durable inputs by the next host
        tasks = [t for i in self._instances.values() for t in (i.task, i.status.follow_up) if t is not None]
        for task in tasks:
            task.cancel()
        tasks += self._status.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._runner.shutdown()  # even when the stop's grace period cuts the wait short

    # -- intake -----------------------------------------------------------------------------

    def deliver(self, message: ControlMessage, handle: MessageLease | None) -> None:
        """Queue a control message's events for its instance and make sure an episode will run."""
        if (message.instance_id, message.execution_id) in self._purged:
            self._drop_purged(message, handle)
            return
        delivery = Delivery(message, handle)
        if handle is not None:
            self._leases.hold(handle)
        instance = self._instances.get(message.instance_id)
        if instance is None:
            instance = self._instances[message.instance_id] = OrchestrationInstance(message.instance_id)
            if message.new_instance:
                # Nothing to read; should a history exist after all, the first append (which
                # creates the sentinel) fails and the episode reloads it (invariant 1).
                instance.history = StoredHistory([], None, None)
        instance.pending.extend((event, delivery) for event in message.events)
        self._loop.wake(instance)

    def deliver_result(self, item: WorkItem, event: HistoryEvent) -> None:
        """Queue an activity's result (held in memory until an episode records it)."""
        if (item.instance_id, item.execution_id) in self._purged:
            self._drop_purged(ControlMessage(item.instance_id, [event], item.execution_id), None)
            return
        instance = self._instances.get(item.instance_id)
        if instance is None:
            instance = self._instances[item.instance_id] = OrchestrationInstance(item.instance_id)
        instance.pending.append((event, instance.results_delivery(item.execution_id)))
        self._loop.wake(instance)

    def _drop_purged(self, message: ControlMessage, handle: MessageLease | None) -> None:
        logger.debug(
            "Dropping a message for purged execution %s of '%s'", message.execution_id, message.instance_id
        )
        if handle is not None:
            self._status.consume_later(message.instance_id, [Delivery(message, handle)])

    def recover(self, instance_id: str) -> None:
        """Load an instance this host now owns, to dispatch its activities that have no result."""
        if instance_id in self._instances:
            return  # already in memory: its history was (or will be) loaded with that check
        instance = self._instances[instance_id] = OrchestrationInstance(instance_id, recovering=True)
        self._loop.wake(instance)

    async def checkpoint_written(self, instance_id: str) -> bool:
        """Wait for the Instances-row write of a checkpoint under way here, if any (briefly).

        A status query that comes while an episode of the instance is being checkpointed then
        reports the state that episode leaves, instead of the one before it, and does not compete
        with the episode's writes for storage. True when the row was written just now: the
        caller may then answer with the row as written (invariant 5: it is what is stored).
        """
        instance = self._instances.get(instance_id)
        if instance is None or not instance.checkpoint_under_way:
            return False
        return await instance.status.wait_for_write()

    # -- the per-instance loop --------------------------------------------------------------

    async def _step(self, instance: OrchestrationInstance) -> bool:
        async with self._slots:
            if instance.recovering:
                await self._recover(instance)
                return True
            if not instance.pending:
                await self._checkpoints.flush(instance)
                return True
            return await self._episode(instance)

    @staticmethod
    def _step_failed(instance: OrchestrationInstance, exc: Exception) -> bool:
        """Make what the episode held pending again; back off unless the history just moved."""
        instance.pending = [*instance.forget_unflushed(), *instance.pending]
        instance.session = instance.history = None
        if isinstance(exc, HistoryConflictError):
            # Another writer checkpointed this instance: reload the history and decide again.
            logger.warning("History of '%s' changed underneath; replaying from storage", instance.instance_id)
            return False
        return True

    def _idle(self, instance: OrchestrationInstance) -> None:
        if not instance.checkpoint_under_way:
            instance.status.release_waiters(written=False)
        if not instance.pending:
            self._park(instance)

    def _park(self, instance: OrchestrationInstance) -> None:
        """Keep an idle running instance's history and live orchestration for its next events.

        Between two steps of a chain the instance has nothing pending; forgetting it then would
        mean reading and replaying its whole history again for every step. The idle cache is
        bounded: the least recently used instances are evicted (and replay from storage later).
        """
        if instance.dropped:
            return  # forgotten while its episode ran (a purge, a lost partition)
        self._instances.pop(instance.instance_id, None)
        if instance.history is None:
            return
        self._instances[instance.instance_id] = instance  # re-inserted last: most recently used
        if len(self._instances) <= self._max_idle:
            return  # nothing to evict (and no scan of every instance per episode)
        idle = [
            i
            for i in self._instances.values()
            if i.task is None
            and not i.pending
            and not i.outstanding
            and not i.status.under_way
            and i.unflushed is None
        ]
        for evicted in idle[: max(0, len(idle) - self._max_idle)]:
            self._instances.pop(evicted.instance_id, None)

    # -- one episode ------------------------------------------------------------------------

    async def _episode(self, instance: OrchestrationInstance) -> bool:
        """Run one episode with the pending events; False when only deferred events are left."""
        batch, instance.pending = _take_batch(instance.pending)
        instance.in_flight = batch
        try:
            return await self._checkpoint_episode(instance, batch)
        except BaseException:
            # Nothing was acknowledged: every event of the batch stays pending for the retry,
            # and the live orchestration may have seen them, so the retry replays from history.
            instance.pending = [*instance.forget_unflushed(), *batch, *instance.pending]
            instance.session = None
            raise
        finally:
            instance.in_flight = []

    async def _checkpoint_episode(self, instance: OrchestrationInstance, batch: list[Incoming]) -> bool:
        if instance.history is None:
            await self._load_history(instance)
        elif starts_another_execution(instance.indexed(instance.history), [e for e, _ in batch]):
            # Only a purge (by another host or the command line) lets a new execution start
            # while this one runs: what is in memory is of an execution that is gone.
            logger.info(
                "A new execution of '%s' starts while its last one is in memory: reading it again",
                instance.instance_id,
            )
            batch.extend(instance.forget_unflushed())  # after the new start: dropped as stale
            await self._load_history(instance)
        if instance.unflushed is not None and not all(d.volatile for _, d in batch):
            await self._checkpoints.flush(instance)  # only activity results join an unwritten episode
        assert instance.history is not None
        reconciled = reconcile(instance.history, instance.indexed(instance.history), batch)
        stored, accepted, deferred = reconciled.history, reconciled.accepted, reconciled.deferred
        for event, _ in reconciled.dropped:
            logger.debug(
                "Dropping %s for instance '%s' (duplicate or stale)",
                h.event_type(event).name,
                instance.instance_id,
            )
        if stored is not instance.history:
            instance.session = None  # a new execution replaces a finished one
        if deferred and not accepted and not stored.events:
            deferred = await self._without_orphans(instance.instance_id, deferred)
        waiting = {id(delivery) for _, delivery in deferred}
        # A message is acknowledged once none of its events still waits to be applied.
        consumed = list({id(d): d for _, d in batch if id(d) not in waiting}.values())
        if not accepted:
            instance.pending = deferred + instance.pending
            if consumed and stored.events:
                # Only redeliveries: the host that checkpointed them may have died before it
                # updated the Instances row, so make sure the row tells what the history says.
                await self._checkpoints.flush(instance)
                if instance.status.follow_up is not None:
                    await asyncio.shield(instance.status.follow_up)
                await self._status.sync_instance_row(instance.instance_id, stored)
            await self._status.consume(consumed)
            self._settle(instance, batch, deferred)
            # Events that arrived meanwhile still need an episode; only deferred ones may wait.
            return len(instance.pending) > len(deferred)

        now = self._episode_time(instance)
        episode = await self._runner.run(instance.instance_id, stored.events, accepted, now, instance.session)
        instance.session = None
        decisions = episode.decisions

        # Messages are made durable before the history, but handed to this host's dispatchers
        # only after it: an episode lost to a crash then never ran work that the replayed
        # episode sends again, which keeps every activity at no more than two runs.
        handoffs: list[Handoff] = []
        volatile_inputs = any(d.volatile for _, d in batch)
        if self._outbound.sends_messages(episode) and volatile_inputs:
            # Invariant 2: what this episode consumed must be durable before it sends anything.
            consumed.append(await self._outbound.persist_volatile(instance.instance_id, batch))
        work = [
            WorkItem(instance.instance_id, episode.execution_id, a.task_id, a.name, a.input, a.http_request)
            for generation in episode.generations
            for a in generation.activities
        ]
        if work and not volatile_inputs and not episode.new_generation:
            # Every input is durable in its queue message, so a crash before the history lands
            # replays this very episode (invariant 2): the activities may start now, while a
            # big fan-out's TaskScheduled rows are still being written. Their results wait
            # (deferred) until those rows are committed.
            self._dispatch(instance.instance_id, work)
            if (
                not decisions.is_finished
                and not self._outbound.sends_messages(episode)
                and len(episode.rows) <= MAX_UNFLUSHED_ROWS
            ):
                # A small episode's rows wait for its activities' results instead.
                crash_point("episode-after-send")
                instance.pending = deferred + instance.pending
                self._settle(instance, batch, deferred)
                waiting_events = {id(event) for event, _ in deferred}
                kept = [(event, delivery) for event, delivery in batch if id(event) not in waiting_events]
                update = self._status.instance_update(episode, accepted, now)
                self._checkpoints.hold(instance, stored, episode, kept, consumed, update)
                return True
        elif work:
            handoffs.append(functools.partial(self._dispatch, instance.instance_id, work))
        for generation in episode.generations:
            handoffs += await self._outbound.send_outbound(instance.instance_id, episode, generation)
        if decisions.is_finished:
            handoffs += await self._outbound.notify_parent(episode, now)
        crash_point("episode-after-send")
        carried = await self._checkpoints.append(instance, stored, episode)
        for handoff in handoffs:
            handoff()
        instance.pending = deferred + instance.pending
        self._settle(instance, batch, deferred)
        if carried is not None:
            self._status.queue_status_write(instance.status, carried.update, carried.consumed)
        update = self._status.instance_update(episode, accepted, now)
        self._status.queue_status_write(instance.status, update, consumed)
        if decisions.is_finished:
            # The final status is what callers wait for; nothing may overtake it.
            assert instance.status.follow_up is not None
            await asyncio.shield(instance.status.follow_up)
            if decisions.status == OrchestrationStatus.Failed:
                reason = decisions.output or ""
                function_failed(
                    self._storage.name, episode.name, "Orchestrator", instance.instance_id, reason
                )
            else:
                logger.info(
                    "Orchestration '%s' (%s) %s",
                    episode.name,
                    instance.instance_id,
                    decisions.status.name.lower(),
                )
            instance.history = None
            instance.session = None
        return True

    async def _load_history(self, instance: OrchestrationInstance) -> None:
        """Read the history and dispatch its activities that have no result and are not running."""
        instance.session = None
        history = instance.history = await self._storage.read_history(instance.instance_id)
        if history.execution_id is None:
            return
        scheduled: dict[int, HistoryEvent] = {}
        for event in history.events:
            kind = h.event_type(event)
            if kind == EventType.TaskScheduled:
                scheduled[int(event["EventId"])] = event
            elif kind in (EventType.TaskCompleted, EventType.TaskFailed):
                scheduled.pop(int(event["TaskScheduledId"]), None)
            elif kind == EventType.ExecutionCompleted:
                return  # a finished orchestration needs no more results
        execution_id = history.execution_id
        items = [
            _work_item(instance.instance_id, execution_id, task_id, event)
            for task_id, event in scheduled.items()
            if (execution_id, task_id) not in instance.outstanding
        ]
        if items:
            logger.info(
                "Dispatching %d activities of '%s' again that have no result in its history",
                len(items),
                instance.instance_id,
            )
            instance.outstanding.update((execution_id, item.task_id) for item in items)
            self._router.run_activities(items)

    async def _recover(self, instance: OrchestrationInstance) -> None:
        await self._load_history(instance)
        assert instance.history is not None
        record = await self._storage.read_instance(instance.instance_id)
        if (
            record is not None
            and record.runtime_status == OrchestrationStatus.Pending
            and record.execution_id != instance.history.execution_id
        ):
            # A client start on the owning host is recorded only in its Pending row: start it.
            # (Should its message exist too, the second ExecutionStarted is dropped.)
            started = h.execution_started(
                instance_id=instance.instance_id,
                execution_id=record.execution_id,
                name=record.name,
                input_text=record.input,
                timestamp=record.created_time,
                generation=record.generation,
            )
            message = ControlMessage(instance.instance_id, [started], record.execution_id)
            instance.pending.append((started, Delivery(message, None)))
        elif instance.history.events:
            # The last episode may have recorded results that lived only in memory and died
            # before the Instances row followed: no message comes back to trigger the catch-up.
            await self._status.sync_instance_row(instance.instance_id, instance.history)
        instance.recovering = False

    async def _without_orphans(self, instance_id: str, deferred: list[Incoming]) -> list[Incoming]:
        """Drop the events that wait for a start of an execution that is gone (``_purges``)."""
        record = await self._storage.read_instance(instance_id)
        row_execution = None if record is None else record.execution_id
        kept = [
            (event, delivery)
            for event, delivery in deferred
            if not belongs_to_no_execution(delivery.message.execution_id, row_execution, record is not None)
        ]
        if len(kept) < len(deferred):
            logger.info(
                "Dropping %d events for '%s': they belong to no current execution (purged?)",
                len(deferred) - len(kept),
                instance_id,
            )
        return kept

    def _settle(
        self,
        instance: OrchestrationInstance,
        batch: list[Incoming],
        deferred: list[Incoming],
    ) -> None:
        """Forget the outstanding activities whose results this episode recorded or dropped."""
        waiting = {id(event) for event, _ in deferred}
        for event, delivery in batch:
            if id(event) in waiting:
                continue
            key = h.completion_key(event)
            if delivery.volatile and key is not None and delivery.message.execution_id is not None:
                instance.outstanding.discard((delivery.message.execution_id, key))

    def _episode_time(self, instance: OrchestrationInstance) -> datetime:
        # current_utc_datetime must never go backwards between episodes.
        now = self._clock.now()
        if instance.last_episode_time is not None and now <= instance.last_episode_time:
            now = instance.last_episode_time + timedelta(microseconds=1)
        instance.last_episode_time = now
        return now

    def _dispatch(self, instance_id: str, items: list[WorkItem]) -> None:
        """Hand activities to the dispatcher, except those already running for this instance
        (an episode retried after a storage error decides them again)."""
        instance = self._instances.get(instance_id)
        if instance is not None:
            items = [i for i in items if (i.execution_id, i.task_id) not in instance.outstanding]
            instance.outstanding.update((item.execution_id, item.task_id) for item in items)
        if items:
            self._router.run_activities(items)

    def _flush_soon(self, instance: OrchestrationInstance) -> None:
        if instance.unflushed is not None and self._instances.get(instance.instance_id) is instance:
            instance.unflushed.due = True
            self._loop.wake(instance)


def _take_batch(pending: list[Incoming]) -> tuple[list[Incoming], list[Incoming]]:
    """The events for the next episode and those left pending: up to ``MAX_EPISODE_EVENTS``,
    unless that would part a queue message's events (it is acknowledged once they all are)."""
    if len(pending) <= MAX_EPISODE_EVENTS:
        return pending, []
    taken = {id(d) for _, d in pending[:MAX_EPISODE_EVENTS] if not d.volatile}
    if any(id(d) in taken for _, d in pending[MAX_EPISODE_EVENTS:]):
        return pending, []
    return pending[:MAX_EPISODE_EVENTS], pending[MAX_EPISODE_EVENTS:]


def _work_item(instance_id: str, execution_id: str, task_id: int, scheduled: HistoryEvent) -> WorkItem:
    """The work item of a TaskScheduled row (the built-in HTTP activity's input is its request)."""
    name, input_text = str(scheduled.get("Name") or ""), scheduled.get("Input")
    if name == HTTP_ACTIVITY and input_text:
        return WorkItem(instance_id, execution_id, task_id, name, None, json.loads(input_text))
    return WorkItem(instance_id, execution_id, task_id, name, input_text)
