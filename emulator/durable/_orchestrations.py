"""Orchestration episodes: events in, one replay, decisions checkpointed in order.

Each instance is handled by one actor at a time (docs/durability.md invariant 7 within a host): events
that arrive while an episode runs wait and go into the next episode together, so a fan-in of
many completions costs few replays. One episode follows the real provider's checkpoint order
(docs/host-behaviour.md 4.5):

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
that its activities' results are written with it (``_Unflushed``): a one-activity orchestration
then writes its history once.

Duplicate and stale events are recognised and dropped before the replay (invariant 6).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from emulator.app._app_index import AppIndex
from emulator.client._purges import PurgedExecutions, belongs_to_no_execution, starts_another_execution
from emulator.durable import _history as h
from emulator.durable._crash import crash_point
from emulator.durable._episode import Episode, execute_episode
from emulator.durable._failure_log import function_failed
from emulator.durable._history import EventType, HistoryEvent, OrchestrationStatus
from emulator.durable._leases import LeaseKeeper
from emulator.durable._replay import HTTP_ACTIVITY, EpisodeDecisions, KnownFunctions
from emulator.durable._replay_check import (
    ends_execution,
    failed_by_nondeterminism,
    nondeterminism_report,
    note_replayed,
    replay_due,
)
from emulator.durable._timers import DurableClock
from emulator.durable._work_items import WorkItem
from emulator.durable._worker import OrchestratorSession
from emulator.functions._invocations import InvocationLog
from emulator.functions._threads import WorkerThreads
from emulator.taskhub._interface import (
    ControlMessage,
    HistoryConflictError,
    InstanceUpdate,
    MessageLease,
    StoredHistory,
    TaskHub,
)

logger = logging.getLogger("emulator.orchestrations")

WorkSink = Callable[[list[WorkItem]], None]
TimerSink = Callable[[ControlMessage, MessageLease | None, datetime], None]
ControlSink = Callable[[ControlMessage, MessageLease | None], None]

#: History column naming the queue message an event came in, to recognise redeliveries.
MESSAGE_ID = "MessageId"
_UNKEYED_MESSAGES = frozenset(
    {
        EventType.EventRaised,
        EventType.ExecutionTerminated,
        EventType.ExecutionSuspended,
        EventType.ExecutionResumed,
        EventType.GenericEvent,
    }
)

#: Events that still reach a suspended instance; the rest wait for the resume.
_WHILE_SUSPENDED = frozenset({EventType.ExecutionResumed, EventType.ExecutionTerminated})


@dataclass
class _Delivery:
    """Events of one control message and the handle to acknowledge once they are checkpointed."""

    message: ControlMessage
    handle: MessageLease | None
    #: The events exist only in memory (activity results): nothing to acknowledge, and a
    #: crash loses them, which the activities' TaskScheduled rows make up for.
    volatile: bool = False


@dataclass
class _StatusWrite:
    """The instance update and consumed messages of episodes not yet reflected in storage."""

    update: InstanceUpdate | None = None
    consumed: list[_Delivery] = field(default_factory=list)
    #: Set when the runtime status changes: written at once, without waiting for more.
    urgent: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Unflushed:
    """An episode whose history rows wait in memory to go out with the next episode's rows.

    Only an episode that consumed durable inputs alone (a queue message or a Pending row) and
    only scheduled activities waits like this: a crash before its rows are written replays
    the very same episode from those inputs (durability invariant 2), and its activities,
    already started, then run at most twice. Their results, arriving within a few
    milliseconds, are recorded in the same transaction, which saves one history write (and
    one Instances-row write) on the path of every short orchestration. Until then its
    messages stay unacknowledged and its status unwritten (invariants 3 and 5).
    """

    #: Where its rows begin in the instance's history (they are at its end, in memory only).
    start: int
    #: What it consumed: pending again should its rows never be written.
    batch: list[tuple[HistoryEvent, _Delivery]]
    consumed: list[_Delivery]
    update: InstanceUpdate
    timer: asyncio.TimerHandle | None = None
    #: The wait is over: write the rows without waiting for more.
    due: bool = False


#: How long an episode's rows may wait in memory for the next episode's (see ``_Unflushed``).
FLUSH_DELAY = 0.05
#: Bigger episodes are written at once (one transaction holds at most 100 rows).
MAX_UNFLUSHED_ROWS = 60

#: How long a row update that only moves LastUpdatedTime or the custom status may wait for the
#: next episodes' updates to be written together (a chain then writes it a few times a second).
STATUS_WRITE_DELAY = 0.1

#: A status query for an instance whose checkpoint is under way on this host waits this long at
#: most for the checkpoint's Instances-row write (``checkpoint_written``).
STATUS_QUERY_WAIT = 0.1

#: A live orchestration whose last step took less than this resumes on the event loop: user
#: code that yields this quickly costs less than the hand-off to an orchestrator thread and back.
INLINE_RESUME_SECONDS = 0.002
#: ...and only for a few new events (a fan-in of hundreds of results stays off the loop).
INLINE_RESUME_EVENTS = 4


@dataclass
class _HistoryIndex:
    """What reconciling needs to know of a history, caught up as rows are appended to it.

    Without it every episode would walk the whole history again, which makes a long chain of
    activities quadratic.
    """

    events: list[HistoryEvent]
    count: int = 0
    scheduled: set[int] = field(default_factory=set)
    completed: set[int] = field(default_factory=set)
    delivered: set[str] = field(default_factory=set)
    has_started: bool = False
    finished: bool = False
    suspended: bool = False

    def catch_up(self) -> _HistoryIndex:
        for event in self.events[self.count :]:
            kind = h.event_type(event)
            if event.get(MESSAGE_ID):
                self.delivered.add(str(event[MESSAGE_ID]))
            if kind in h.SCHEDULING_EVENTS:
                self.scheduled.add(int(event["EventId"]))
            elif kind == EventType.ExecutionStarted:
                self.has_started = True
            elif kind in (EventType.ExecutionCompleted, EventType.ContinueAsNew):
                self.finished = kind == EventType.ExecutionCompleted
            elif kind in (EventType.ExecutionSuspended, EventType.ExecutionResumed):
                self.suspended = kind == EventType.ExecutionSuspended
            key = h.completion_key(event)
            if key is not None:
                self.completed.add(key)
        self.count = len(self.events)
        return self


@dataclass
class _Instance:
    instance_id: str
    pending: list[tuple[HistoryEvent, _Delivery]] = field(default_factory=list)
    history: StoredHistory | None = None
    task: asyncio.Task[None] | None = None
    last_episode_time: datetime | None = None
    #: The orchestration kept alive from the last episode (extended sessions), if any.
    session: OrchestratorSession | None = None
    #: The events of the episode under way (out of ``pending`` while it runs).
    in_flight: list[tuple[HistoryEvent, _Delivery]] = field(default_factory=list)
    #: (execution id, task id) of activities handed to the dispatcher whose result is not
    #: recorded yet, so that loading the history again does not dispatch them twice.
    outstanding: set[tuple[str, int]] = field(default_factory=set)
    #: Load the history and dispatch its activities without a result (after a restart or a
    #: partition takeover), even with no event waiting.
    recovering: bool = False
    #: Writes the Instances row and deletes consumed messages behind the episodes (see
    #: ``_write_status``); ``unwritten`` is what it has still to do.
    follow_up: asyncio.Task[None] | None = None
    unwritten: _StatusWrite | None = None
    index: _HistoryIndex | None = None
    #: The last episode, if its history rows are still only in memory.
    unflushed: _Unflushed | None = None
    #: Status queries waiting for the next Instances-row write (``checkpoint_written``).
    status_waiters: list[asyncio.Future[bool]] = field(default_factory=list)
    #: Forgotten by the dispatcher (purged, or its partition lost): never kept again.
    dropped: bool = False

    @property
    def checkpoint_under_way(self) -> bool:
        """An episode runs, or one's history or Instances row is still to be written."""
        return (
            self.task is not None
            or self.unflushed is not None
            or self.unwritten is not None
            or not _settled(self.follow_up)
        )

    def release_status_waiters(self, written: bool) -> None:
        """Let the waiting status queries go (``written``: the Instances row was just written)."""
        waiters, self.status_waiters = self.status_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(written)

    def forget_unflushed(self) -> list[tuple[HistoryEvent, _Delivery]]:
        """Drop the in-memory episode; return its events, to be applied again."""
        carried, self.unflushed = self.unflushed, None
        if carried is None:
            return []
        if carried.timer is not None:
            carried.timer.cancel()
        return carried.batch

    def indexed(self, history: StoredHistory) -> _HistoryIndex:
        if self.index is None or self.index.events is not history.events:
            self.index = _HistoryIndex(history.events)
        return self.index.catch_up()


def known_functions(index: AppIndex) -> KnownFunctions:
    aliases = {
        fn.python_name.lower()
        for fn in index.functions
        if fn.is_kind("activityTrigger") or fn.is_kind("orchestrationTrigger")
    }
    return KnownFunctions(
        activities=tuple(index.names("activityTrigger")),
        orchestrators=tuple(index.names("orchestrationTrigger")),
        aliases=frozenset(aliases),
    )


class OrchestrationDispatcher:
    def __init__(
        self,
        *,
        storage: TaskHub,
        index: AppIndex,
        invocations: InvocationLog,
        leases: LeaseKeeper,
        clock: DurableClock,
        max_concurrent: int,
        extended_sessions: bool = True,
        replay_check: bool = True,
        max_idle_instances: int = 2000,
    ) -> None:
        self._extended_sessions = extended_sessions
        #: Check live orchestrations against replays from the start (``emulator.durable._replay_check``).
        self._replay_check = replay_check
        self._storage = storage
        self._index = index
        self._known = known_functions(index)
        self._invocations = invocations
        self._leases = leases
        self._clock = clock
        self._instances: dict[str, _Instance] = {}
        #: Idle instances kept in memory (history and live orchestration) at the most.
        self._max_idle = max_idle_instances
        self._slots = asyncio.Semaphore(max_concurrent)
        # Orchestrator replays are CPU work in user code: keep them off the event loop.
        self._threads = WorkerThreads(min(max_concurrent, 4), "orchestrator")
        self._work_sink: WorkSink | None = None
        self._deleting: set[asyncio.Task[None]] = set()
        self._timer_sink: TimerSink | None = None
        self._control_sink: ControlSink | None = None
        self._purged = PurgedExecutions()

    def connect(self, work_sink: WorkSink, timer_sink: TimerSink, control_sink: ControlSink) -> None:
        self._work_sink = work_sink
        self._timer_sink = timer_sink
        self._control_sink = control_sink

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
        tasks = [t for t in (instance.task, instance.follow_up) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        logger.info("Instance '%s' was purged: its in-memory orchestration is dropped", instance_id)
        return handles

    async def reload(self, instance_id: str) -> None:
        """Let the episode under way finish, then forget the history and live orchestration in
        memory: the client is changing the history in storage (a rewind)."""
        instance = self._instances.get(instance_id)
        if instance is None:
            return
        for task in (instance.task, instance.follow_up):
            if task is not None and not task.done():
                await asyncio.wait([task])
        instance.history = instance.session = instance.index = None

    @staticmethod
    def _discard(instance: _Instance) -> list[MessageLease]:
        instance.dropped = True
        for task in (instance.task, instance.follow_up):
            if task is not None:
                task.cancel()
        instance.release_status_waiters(written=False)
        events = [*instance.forget_unflushed(), *instance.in_flight, *instance.pending]
        deliveries = [d for _, d in events]
        if instance.unwritten is not None:
            deliveries += instance.unwritten.consumed  # checkpointed, not yet acknowledged
        return list({id(d.handle): d.handle for d in deliveries if d.handle is not None}.values())

    async def close(self) -> None:
        for instance in self._instances.values():
            instance.forget_unflushed()  # replayed from its durable inputs by the next host
        tasks = [t for i in self._instances.values() for t in (i.task, i.follow_up) if t is not None]
        tasks += list(self._deleting)
        for task in tasks:
            task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._threads.shutdown()  # even when the stop's grace period cuts the wait short

    # -- intake -----------------------------------------------------------------------------

    def deliver(self, message: ControlMessage, handle: MessageLease | None) -> None:
        """Queue a control message's events for its instance and make sure an episode will run."""
        if (message.instance_id, message.execution_id) in self._purged:
            self._drop_purged(message, handle)
            return
        delivery = _Delivery(message, handle)
        if handle is not None:
            self._leases.hold(handle)
        instance = self._instances.get(message.instance_id)
        if instance is None:
            instance = self._instances[message.instance_id] = _Instance(message.instance_id)
            if message.new_instance:
                # Nothing to read; should a history exist after all, the first append (which
                # creates the sentinel) fails and the episode reloads it (invariant 1).
                instance.history = StoredHistory([], None, None)
        instance.pending.extend((event, delivery) for event in message.events)
        self._wake(instance)

    def deliver_result(self, item: WorkItem, event: HistoryEvent) -> None:
        """Queue an activity's result (held in memory until an episode records it)."""
        message = ControlMessage(item.instance_id, [event], item.execution_id)
        if (item.instance_id, item.execution_id) in self._purged:
            self._drop_purged(message, None)
            return
        instance = self._instances.get(item.instance_id)
        if instance is None:
            instance = self._instances[item.instance_id] = _Instance(item.instance_id)
        instance.pending.append((event, _Delivery(message, None, volatile=True)))
        self._wake(instance)

    def _drop_purged(self, message: ControlMessage, handle: MessageLease | None) -> None:
        logger.debug(
            "Dropping a message for purged execution %s of '%s'", message.execution_id, message.instance_id
        )
        if handle is not None:
            self._consume_later(message.instance_id, [_Delivery(message, handle)])

    def recover(self, instance_id: str) -> None:
        """Load an instance this host now owns, to dispatch its activities that have no result."""
        if instance_id in self._instances:
            return  # already in memory: its history was (or will be) loaded with that check
        instance = self._instances[instance_id] = _Instance(instance_id, recovering=True)
        self._wake(instance)

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
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        instance.status_waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, STATUS_QUERY_WAIT)
        except asyncio.TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                instance.status_waiters.remove(waiter)

    def _wake(self, instance: _Instance) -> None:
        if instance.task is None:
            instance.task = asyncio.get_running_loop().create_task(
                self._run(instance), name=f"orchestration:{instance.instance_id}"
            )

    async def _run(self, instance: _Instance) -> None:
        backoff = 0.5
        try:
            while instance.pending or instance.recovering or _flush_due(instance):
                try:
                    async with self._slots:
                        if instance.recovering:
                            await self._recover(instance)
                            continue
                        if not instance.pending:
                            await self._flush(instance)
                            continue
                        progressed = await self._episode(instance)
                except HistoryConflictError:
                    # Another writer checkpointed this instance: reload the history and decide again.
                    logger.warning(
                        "History of '%s' changed underneath; replaying from storage", instance.instance_id
                    )
                    instance.pending = [*instance.forget_unflushed(), *instance.pending]
                    instance.session = instance.history = None
                    continue
                except Exception as exc:
                    # Storage went away or similar: the events stay pending and leased; try again.
                    logger.warning(
                        "Episode of instance '%s' could not be completed (%s: %s); retrying in %.1f s",
                        instance.instance_id,
                        type(exc).__name__,
                        exc,
                        backoff,
                    )
                    logger.debug("Episode failure detail", exc_info=True)
                    instance.pending = [*instance.forget_unflushed(), *instance.pending]
                    instance.session = instance.history = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 0.5
                if not progressed:
                    break
        finally:
            instance.task = None
            if not instance.checkpoint_under_way:
                instance.release_status_waiters(written=False)
            if not instance.pending:
                self._park(instance)

    def _park(self, instance: _Instance) -> None:
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
            and _settled(i.follow_up)
            and i.unwritten is None
            and i.unflushed is None
        ]
        for evicted in idle[: max(0, len(idle) - self._max_idle)]:
            self._instances.pop(evicted.instance_id, None)

    # -- one episode ------------------------------------------------------------------------

    async def _episode(self, instance: _Instance) -> bool:
        """Run one episode with every pending event; False when only deferred events are left."""
        batch, instance.pending = instance.pending, []
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

    async def _checkpoint_episode(
        self, instance: _Instance, batch: list[tuple[HistoryEvent, _Delivery]]
    ) -> bool:
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
            await self._flush(instance)  # only activity results join an unwritten episode
        assert instance.history is not None
        stored, accepted, deferred = self._reconcile(
            instance.instance_id, instance.history, instance.indexed(instance.history), batch
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
                await self._flush(instance)
                if instance.follow_up is not None:
                    await asyncio.shield(instance.follow_up)
                await self._sync_instance_row(instance.instance_id, stored)
            await self._consume(consumed)
            self._settle(instance, batch, deferred)
            # Events that arrived meanwhile still need an episode; only deferred ones may wait.
            return len(instance.pending) > len(deferred)

        now = self._episode_time(instance)
        episode = await self._replay(instance.instance_id, stored.events, accepted, now, instance.session)
        instance.session = None
        decisions = episode.decisions

        # Messages are made durable before the history, but handed to this host's dispatchers
        # only after it: an episode lost to a crash then never ran work that the replayed
        # episode sends again, which keeps every activity at no more than two runs.
        handoffs: list[Callable[[], None]] = []
        volatile_inputs = any(d.volatile for _, d in batch)
        if self._sends_messages(episode) and volatile_inputs:
            # Invariant 2: what this episode consumed must be durable before it sends anything.
            consumed.append(await self._persist_volatile(instance.instance_id, batch))
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
                and not self._sends_messages(episode)
                and len(episode.rows) <= MAX_UNFLUSHED_ROWS
            ):
                # A small episode's rows wait for its activities' results instead.
                crash_point("episode-after-send")
                self._hold_unflushed(instance, stored, episode, batch, deferred, consumed, accepted, now)
                return True
        elif work:
            handoffs.append(functools.partial(self._dispatch, instance.instance_id, work))
        for generation in episode.generations:
            handoffs += await self._send_outbound(instance.instance_id, episode, generation)
        if decisions.is_finished:
            handoffs += await self._notify_parent(episode, now)
        crash_point("episode-after-send")
        carried = instance.unflushed
        if carried is not None and episode.new_generation:
            await self._flush(instance)  # the old generation's rows first
            carried, stored = None, instance.history
            assert stored is not None
        if episode.new_generation:
            committed, rows = 0, episode.rows
        elif carried is not None:
            committed, rows = carried.start, [*stored.events[carried.start :], *episode.rows]
        else:
            committed, rows = len(stored.events), episode.rows
        etag = await self._storage.append_history(
            instance.instance_id, episode.execution_id, committed, rows, stored.version
        )
        instance.forget_unflushed()
        self._take_rows(instance, stored, episode, etag)
        crash_point("episode-after-history")
        for handoff in handoffs:
            handoff()
        instance.pending = deferred + instance.pending
        self._settle(instance, batch, deferred)
        if carried is not None:
            self._queue_status_write(instance, carried.update, carried.consumed)
        self._queue_status_write(instance, self._instance_update(episode, accepted, now), consumed)
        if decisions.is_finished:
            # The final status is what callers wait for; nothing may overtake it.
            assert instance.follow_up is not None
            await asyncio.shield(instance.follow_up)
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

    def _queue_status_write(
        self, instance: _Instance, update: InstanceUpdate, consumed: list[_Delivery]
    ) -> None:
        """Have an episode's instance update written and its messages acknowledged.

        The next episode need not wait for them (invariants 5 and 3 hold: both follow the
        history); they are written in episode order behind it.
        """
        pending_write = instance.unwritten = instance.unwritten or _StatusWrite()
        pending_write.update = update if pending_write.update is None else pending_write.update.then(update)
        pending_write.consumed += consumed
        if update.runtime_status is not None:
            pending_write.urgent.set()
        if _settled(instance.follow_up):
            instance.follow_up = asyncio.get_running_loop().create_task(self._write_status(instance))

    def _hold_unflushed(
        self,
        instance: _Instance,
        stored: StoredHistory,
        episode: Episode,
        batch: list[tuple[HistoryEvent, _Delivery]],
        deferred: list[tuple[HistoryEvent, _Delivery]],
        consumed: list[_Delivery],
        accepted: list[HistoryEvent],
        now: datetime,
    ) -> None:
        """Keep an episode's rows in memory for the next episode's transaction (``_Unflushed``)."""
        start = len(stored.events)
        self._take_rows(instance, stored, episode, stored.version)  # the ETag of before: not written yet
        instance.pending = deferred + instance.pending
        self._settle(instance, batch, deferred)
        waiting = {id(event) for event, _ in deferred}
        carried = instance.unflushed = _Unflushed(
            start,
            [(event, delivery) for event, delivery in batch if id(event) not in waiting],
            consumed,
            self._instance_update(episode, accepted, now),
        )
        carried.timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._flush_soon, instance)

    @staticmethod
    def _take_rows(instance: _Instance, stored: StoredHistory, episode: Episode, etag: str | None) -> None:
        """Make the episode's rows part of the instance's history in memory, and keep its session."""
        if episode.new_generation:
            events = list(episode.rows)
        else:
            events = stored.events  # extended in place: its index catches up with the new rows
            events.extend(episode.rows)
        instance.history = StoredHistory(events, etag, episode.execution_id)
        instance.session = episode.session

    def _flush_soon(self, instance: _Instance) -> None:
        if instance.unflushed is not None and self._instances.get(instance.instance_id) is instance:
            instance.unflushed.due = True
            self._wake(instance)

    async def _flush(self, instance: _Instance) -> None:
        """Write the rows of an episode kept in memory (no result came in time to join them)."""
        carried, history = instance.unflushed, instance.history
        if carried is None:
            return
        # An unflushed episode always leaves its execution's history in memory (_hold_unflushed).
        assert history is not None and history.execution_id is not None
        # On failure the episode stays unflushed: whoever handles the error makes it pending again.
        etag = await self._storage.append_history(
            instance.instance_id,
            history.execution_id,
            carried.start,
            history.events[carried.start :],
            history.version,
        )
        instance.forget_unflushed()
        instance.history = StoredHistory(history.events, etag, history.execution_id)
        crash_point("episode-after-history")
        self._queue_status_write(instance, carried.update, carried.consumed)

    async def _load_history(self, instance: _Instance) -> None:
        """Read the history and dispatch its activities that have no result and are not running."""
        instance.session = None
        history = instance.history = await self._storage.read_history(instance.instance_id)
        if history.execution_id is None or self._work_sink is None:
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
            self._work_sink(items)

    async def _recover(self, instance: _Instance) -> None:
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
            instance.pending.append((started, _Delivery(message, None)))
        elif instance.history.events:
            # The last episode may have recorded results that lived only in memory and died
            # before the Instances row followed: no message comes back to trigger the catch-up.
            await self._sync_instance_row(instance.instance_id, instance.history)
        instance.recovering = False

    async def _without_orphans(
        self, instance_id: str, deferred: list[tuple[HistoryEvent, _Delivery]]
    ) -> list[tuple[HistoryEvent, _Delivery]]:
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
        instance: _Instance,
        batch: list[tuple[HistoryEvent, _Delivery]],
        deferred: list[tuple[HistoryEvent, _Delivery]],
    ) -> None:
        """Forget the outstanding activities whose results this episode recorded or dropped."""
        waiting = {id(event) for event, _ in deferred}
        for event, delivery in batch:
            if id(event) in waiting:
                continue
            key = h.completion_key(event)
            if delivery.volatile and key is not None and delivery.message.execution_id is not None:
                instance.outstanding.discard((delivery.message.execution_id, key))

    @staticmethod
    def _sends_messages(episode: Episode) -> bool:
        decisions = episode.decisions
        if decisions.is_finished and episode.started.get("ParentInstance"):
            return True
        return any(g.timers or g.sub_orchestrations or g.entity_messages for g in episode.generations)

    async def _persist_volatile(
        self, instance_id: str, batch: list[tuple[HistoryEvent, _Delivery]]
    ) -> _Delivery:
        """Write the in-memory activity results of a batch to a control message of their own."""
        events = [e for e, d in batch if d.volatile]
        execution_id = next(d.message.execution_id for _, d in batch if d.volatile)
        message = ControlMessage(instance_id, events, execution_id)
        handle = await self._storage.send_control(message, lease=self._leases.lease_seconds)
        self._leases.hold(handle)
        return _Delivery(message, handle)

    async def _write_status(self, instance: _Instance) -> None:
        """Write what the episodes left unwritten, in order, folding close updates together."""
        while instance.unwritten is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(instance.unwritten.urgent.wait(), STATUS_WRITE_DELAY)
            write, instance.unwritten = instance.unwritten, None
            assert write.update is not None  # queued with its first update
            await self._write_once(instance.instance_id, write.update, write.consumed)
            instance.release_status_waiters(written=True)

    async def _write_once(self, instance_id: str, update: InstanceUpdate, consumed: list[_Delivery]) -> None:
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
            self._consume_later(instance_id, consumed)

    def _consume_later(self, instance_id: str, consumed: list[_Delivery]) -> None:
        task = asyncio.get_running_loop().create_task(self._consume_quietly(instance_id, consumed))
        self._deleting.add(task)
        task.add_done_callback(self._deleting.discard)

    async def _consume_quietly(self, instance_id: str, consumed: list[_Delivery]) -> None:
        try:
            await self._consume(consumed)
        except Exception as exc:
            # The messages come back after their lease and are dropped as duplicates then.
            logger.debug("Could not delete consumed messages of '%s': %s", instance_id, exc)

    async def _sync_instance_row(self, instance_id: str, stored: StoredHistory) -> None:
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

    def _episode_time(self, instance: _Instance) -> datetime:
        # current_utc_datetime must never go backwards between episodes.
        now = self._clock.now()
        if instance.last_episode_time is not None and now <= instance.last_episode_time:
            now = instance.last_episode_time + timedelta(microseconds=1)
        instance.last_episode_time = now
        return now

    async def _replay(
        self,
        instance_id: str,
        history: list[HistoryEvent],
        new_events: list[HistoryEvent],
        now: datetime,
        session: OrchestratorSession | None,
    ) -> Episode:
        index = self._index

        def orchestrator(name: str) -> Callable[[Any], Any] | None:
            function = index.orchestrator(name)
            return None if function is None else function.user_function

        def run(session: OrchestratorSession | None) -> Episode:
            began = time.perf_counter()
            replayed = session is None or session.finished or session.replay_pending
            episode = execute_episode(
                instance_id=instance_id,
                history=history,
                new_events=new_events,
                now=now,
                orchestrator=orchestrator,
                known=self._known,
                session=session,
                keep_session=self._extended_sessions,
            )
            if episode.session is not None:
                # A first episode (or a full replay) costs at least what a step would.
                episode.session.last_resume_seconds = time.perf_counter() - began
            if replayed:
                note_replayed(episode, len(history))
            return episode

        live = session is not None and not session.finished and self._replay_check
        if live and session is not None and replay_due(session, len(history) + len(new_events) + 1):
            session, live = session.replayed_from_start(), False
        name = _orchestrator_name(history, new_events)
        function = index.orchestrator(name)
        with self._invocations.invoke(
            function.name if function else name, reason="(null)", instance_id=instance_id
        ) as record:
            if (
                session is not None
                and not session.replay_pending
                and session.last_resume_seconds < INLINE_RESUME_SECONDS
                and len(new_events) <= INLINE_RESUME_EVENTS
            ):
                # The live orchestration's last step was this quick and this one is as small:
                # two thread hand-offs would cost more than running it right here.
                episode = run(session)
            else:
                episode = await self._threads.run(functools.partial(run, session))
            if live and session is not None and ends_execution(episode):
                # Before an execution ends, its last episode is decided as the real host decides
                # it: by a replay of the code from the start.
                replay = session.replayed_from_start(episode_ran=True)
                episode = await self._threads.run(functools.partial(run, replay))
            if episode.state is not None and episode.state.error:
                record.succeeded = False
                record.error = episode.state.error
        if failed_by_nondeterminism(episode):
            report = await self._threads.run(
                functools.partial(nondeterminism_report, instance_id, name, history, index)
            )
            logger.warning("Orchestration '%s' (%s) is not deterministic:\n%s", name, instance_id, report)
        return episode

    def _reconcile(
        self,
        instance_id: str,
        stored: StoredHistory,
        index: _HistoryIndex,
        batch: list[tuple[HistoryEvent, _Delivery]],
    ) -> tuple[StoredHistory, list[HistoryEvent], list[tuple[HistoryEvent, _Delivery]]]:
        """Sort incoming events into applied, deferred and dropped (DTFx ReconcileMessagesWithState).

        Returns the history to extend (a fresh one when a new execution replaces a finished
        one), the events to apply, and the (event, delivery) pairs that must wait. Dropped
        events are duplicates or belong to another execution (durability invariant 6).
        ``index`` describes ``stored``; what this batch adds goes to copies-on-write below.
        """
        # The index's sets are read, never changed: this batch's additions go to *_now sets.
        scheduled, completed, delivered = index.scheduled, index.completed, index.delivered
        completed_now: set[int] = set()
        delivered_now: set[str] = set()
        has_started, finished, suspended = index.has_started, index.finished, index.suspended
        accepted: list[HistoryEvent] = []
        deferred: list[tuple[HistoryEvent, _Delivery]] = []
        for event, delivery in batch:
            kind = h.event_type(event)
            target = delivery.message.execution_id
            keep: bool | None  # True: apply, False: drop, None: wait
            if kind == EventType.ExecutionStarted:
                execution_id = event["OrchestrationInstance"]["ExecutionId"]
                if not has_started:
                    keep = True
                elif finished and execution_id != stored.execution_id:
                    # A new execution over a finished one: its history starts again at row 0.
                    stored = StoredHistory([], stored.version, None)
                    scheduled, completed = set(), set()
                    completed_now.clear()
                    finished = suspended = False
                    keep = True
                else:
                    keep = False
                has_started = True
            elif finished:
                keep = False
            elif not has_started:
                keep = None  # e.g. an event raised while the instance is still Pending
            elif suspended and kind not in _WHILE_SUSPENDED:
                keep = None
            else:
                key = h.completion_key(event)
                current = stored.execution_id or _execution_in(accepted)
                if key is not None and target is not None and current is not None and target != current:
                    keep = False  # a result for an earlier generation (continue_as_new)
                elif key is None:
                    keep = True
                elif key in completed or key in completed_now:
                    keep = False
                elif key not in scheduled:
                    keep = None  # the checkpoint that scheduled it has not landed yet
                else:
                    completed_now.add(key)
                    keep = True
            if keep and kind in (EventType.ExecutionSuspended, EventType.ExecutionResumed):
                suspended = kind == EventType.ExecutionSuspended
            if keep and kind == EventType.ExecutionTerminated:
                finished = True
            if keep and kind in _UNKEYED_MESSAGES and delivery.handle is not None:
                # Raised events and the like carry no task id: their queue message id tells a
                # redelivered message (its host died before deleting it) from a new one.
                position = next(i for i, e in enumerate(delivery.message.events) if e is event)
                message_id = f"{delivery.handle.message_id}:{position}"
                if message_id in delivered or message_id in delivered_now:
                    keep = False
                else:
                    delivered_now.add(message_id)
                    event[MESSAGE_ID] = message_id
            if keep is None:
                deferred.append((event, delivery))
            elif keep:
                accepted.append(event)
            else:
                logger.debug("Dropping %s for instance '%s' (duplicate or stale)", kind.name, instance_id)
        return stored, accepted, deferred

    # -- what an episode sends --------------------------------------------------------------

    async def _send_outbound(
        self, instance_id: str, episode: Episode, decisions: EpisodeDecisions
    ) -> list[Callable[[], None]]:
        """Make the episode's messages durable; return how to hand them to this host's dispatchers."""
        handoffs: list[Callable[[], None]] = []
        execution_id = episode.execution_id
        for timer in decisions.timers:
            fire_at = h.parse_timestamp(timer.fire_at)
            message = ControlMessage(
                instance_id, [h.timer_fired(timer.timer_id, timer.fire_at, fire_at)], execution_id
            )
            handle = await self._storage.send_control(message, lease=self._leases.lease_seconds)
            if self._timer_sink is not None:
                handoffs.append(functools.partial(self._timer_sink, message, handle, fire_at))
        for child in decisions.sub_orchestrations:
            parent = {
                "Name": episode.name,
                "OrchestrationInstance": {"InstanceId": instance_id, "ExecutionId": execution_id},
                "TaskScheduleId": child.task_id,
                "Version": "",
            }
            child_execution = h.new_execution_id()
            started = h.execution_started(
                instance_id=child.instance_id,
                execution_id=child_execution,
                name=child.name,
                # Stored like a client start: the SDK's input text as a JSON string.
                input_text=None if child.input is None else _json_string(child.input),
                timestamp=self._clock.now(),
                parent_instance=parent,
            )
            handoffs.append(
                await self._send_control(ControlMessage(child.instance_id, [started], child_execution))
            )
        # One message per entity carries all of this episode's operations for it, in order.
        by_entity: dict[str, list[HistoryEvent]] = {}
        for entity in decisions.entity_messages:
            request = h.event_raised("op", json.dumps(entity.request), self._clock.now())
            by_entity.setdefault(entity.instance_id, []).append(request)
        for target, requests in by_entity.items():
            handoffs.append(await self._send_control(ControlMessage(target, requests, None)))
        return handoffs

    def _dispatch(self, instance_id: str, items: list[WorkItem]) -> None:
        """Hand activities to the dispatcher, except those already running for this instance
        (an episode retried after a storage error decides them again)."""
        instance = self._instances.get(instance_id)
        if instance is not None:
            items = [i for i in items if (i.execution_id, i.task_id) not in instance.outstanding]
            instance.outstanding.update((item.execution_id, item.task_id) for item in items)
        if items and self._work_sink is not None:
            self._work_sink(items)

    async def _notify_parent(self, episode: Episode, now: datetime) -> list[Callable[[], None]]:
        parent = episode.started.get("ParentInstance")
        if not parent:
            return []
        decisions = episode.decisions
        task_id = int(parent["TaskScheduleId"])
        if decisions.status == OrchestrationStatus.Completed:
            event = h.sub_orchestration_completed(task_id, decisions.output, now)
        else:
            # Failed and Terminated children both fail the parent's task, with the child's reason.
            event = h.sub_orchestration_failed(task_id, decisions.output, None, now)
        target = parent["OrchestrationInstance"]
        return [
            await self._send_control(ControlMessage(target["InstanceId"], [event], target.get("ExecutionId")))
        ]

    async def _send_control(self, message: ControlMessage) -> Callable[[], None]:
        handle = await self._storage.send_control(message, lease=self._leases.lease_seconds)
        return functools.partial(self._control_sink or self.deliver, message, handle)

    @staticmethod
    def _instance_update(episode: Episode, accepted: list[HistoryEvent], now: datetime) -> InstanceUpdate:
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

    async def _consume(self, deliveries: list[_Delivery]) -> None:
        handles = [d.handle for d in deliveries if d.handle is not None]
        for handle in handles:
            self._leases.release(handle)
        await asyncio.gather(*(self._storage.complete(handle) for handle in handles))


def _orchestrator_name(history: list[HistoryEvent], new_events: list[HistoryEvent]) -> str:
    for event in [*history, *new_events]:
        if h.event_type(event) == EventType.ExecutionStarted:
            return str(event.get("Name") or "")
    return ""


def _execution_in(events: list[HistoryEvent]) -> str | None:
    for event in events:
        if h.event_type(event) == EventType.ExecutionStarted:
            return str(event["OrchestrationInstance"]["ExecutionId"])
    return None


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _work_item(instance_id: str, execution_id: str, task_id: int, scheduled: HistoryEvent) -> WorkItem:
    """The work item of a TaskScheduled row (the built-in HTTP activity's input is its request)."""
    name, input_text = str(scheduled.get("Name") or ""), scheduled.get("Input")
    if name == HTTP_ACTIVITY and input_text:
        return WorkItem(instance_id, execution_id, task_id, name, None, json.loads(input_text))
    return WorkItem(instance_id, execution_id, task_id, name, input_text)


def _flush_due(instance: _Instance) -> bool:
    return instance.unflushed is not None and instance.unflushed.due


def _settled(task: asyncio.Task[None] | None) -> bool:
    return task is None or task.done()
