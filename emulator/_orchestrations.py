"""Orchestration episodes: events in, one replay, decisions checkpointed in order.

Each instance is handled by one actor at a time (durability invariant 7 within a host): events
that arrive while an episode runs wait and go into the next episode together, so a fan-in of
many completions costs few replays. One episode follows the real provider's checkpoint order
(host-behaviour.md 4.5):

1. send the outbound work (activities, timers, sub-orchestrations, results to a parent) -
   invariant 2: the events this episode consumed are still in their queue messages, so
   recovery rebuilds the same episode;
2. append the history rows under the sentinel ETag - invariant 1;
3. merge the Instances row - invariant 5: the API reads only what is stored;
4. delete the consumed messages - invariant 3.

Duplicate and stale events are recognised and dropped before the replay (invariant 6).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from emulator import _history as h
from emulator._app_index import AppIndex
from emulator._episode import Episode, execute_episode
from emulator._history import EventType, HistoryEvent, OrchestrationStatus
from emulator._invocations import InvocationLog
from emulator._leases import LeaseKeeper
from emulator._replay import EpisodeDecisions, KnownFunctions
from emulator._storage import (
    ControlMessage,
    HistoryConflictError,
    MessageHandle,
    ReceivedWork,
    StoredHistory,
    TaskHubStorage,
    WorkItem,
)
from emulator._timers import DurableClock

logger = logging.getLogger("emulator.orchestrations")

WorkSink = Callable[[list[ReceivedWork]], None]
TimerSink = Callable[[ControlMessage, MessageHandle | None, datetime], None]
ControlSink = Callable[[ControlMessage, MessageHandle | None], None]

#: Events that still reach a suspended instance; the rest wait for the resume.
_WHILE_SUSPENDED = frozenset({EventType.ExecutionResumed, EventType.ExecutionTerminated})


@dataclass
class _Delivery:
    """Events of one control message and the handle to acknowledge once they are checkpointed."""

    message: ControlMessage
    handle: MessageHandle | None


@dataclass
class _Instance:
    instance_id: str
    pending: list[tuple[HistoryEvent, _Delivery]] = field(default_factory=list)
    history: StoredHistory | None = None
    task: asyncio.Task[None] | None = None
    last_episode_time: datetime | None = None


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
        storage: TaskHubStorage,
        index: AppIndex,
        invocations: InvocationLog,
        leases: LeaseKeeper,
        clock: DurableClock,
        max_concurrent: int,
    ) -> None:
        self._storage = storage
        self._index = index
        self._known = known_functions(index)
        self._invocations = invocations
        self._leases = leases
        self._clock = clock
        self._instances: dict[str, _Instance] = {}
        self._slots = asyncio.Semaphore(max_concurrent)
        # Orchestrator replays are CPU work in user code: keep them off the event loop.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(max_concurrent, 4), thread_name_prefix="orchestrator"
        )
        self._work_sink: WorkSink | None = None
        self._timer_sink: TimerSink | None = None
        self._status_listeners: list[Callable[[str], None]] = []

    def connect(self, work_sink: WorkSink, timer_sink: TimerSink) -> None:
        self._work_sink = work_sink
        self._timer_sink = timer_sink

    def add_status_listener(self, listener: Callable[[str], None]) -> None:
        self._status_listeners.append(listener)

    async def close(self) -> None:
        tasks = [i.task for i in self._instances.values() if i.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def busy(self) -> bool:
        """Some instance has events waiting or an episode running."""
        return any(i.task is not None for i in self._instances.values())

    # -- intake -----------------------------------------------------------------------------

    def deliver(self, message: ControlMessage, handle: MessageHandle | None) -> None:
        """Queue a control message's events for its instance and make sure an episode will run."""
        delivery = _Delivery(message, handle)
        if handle is not None:
            self._leases.hold(handle)
        instance = self._instances.get(message.instance_id)
        if instance is None:
            instance = self._instances[message.instance_id] = _Instance(message.instance_id)
        instance.pending.extend((event, delivery) for event in message.events)
        if instance.task is None:
            instance.task = asyncio.get_running_loop().create_task(
                self._run(instance), name=f"orchestration:{instance.instance_id}"
            )

    async def _run(self, instance: _Instance) -> None:
        backoff = 0.5
        try:
            while instance.pending:
                try:
                    async with self._slots:
                        progressed = await self._episode(instance)
                except HistoryConflictError:
                    # Another writer checkpointed this instance: reload the history and decide again.
                    logger.warning(
                        "History of '%s' changed underneath; replaying from storage", instance.instance_id
                    )
                    instance.history = None
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
                    instance.history = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 0.5
                if not progressed:
                    break
        finally:
            instance.task = None
            if not instance.pending:
                self._instances.pop(instance.instance_id, None)

    # -- one episode ------------------------------------------------------------------------

    async def _episode(self, instance: _Instance) -> bool:
        """Run one episode with every pending event; False when nothing could be applied."""
        batch, instance.pending = instance.pending, []
        try:
            return await self._checkpoint_episode(instance, batch)
        except BaseException:
            # Nothing was acknowledged: every event of the batch stays pending for the retry.
            instance.pending = batch + instance.pending
            raise

    async def _checkpoint_episode(
        self, instance: _Instance, batch: list[tuple[HistoryEvent, _Delivery]]
    ) -> bool:
        if instance.history is None:
            instance.history = await self._storage.read_history(instance.instance_id)
        stored, accepted, deferred = self._reconcile(instance.instance_id, instance.history, batch)
        waiting = {id(delivery) for _, delivery in deferred}
        # A message is acknowledged once none of its events still waits to be applied.
        consumed = list({id(d): d for _, d in batch if id(d) not in waiting}.values())
        if not accepted:
            instance.pending = deferred + instance.pending
            await self._consume(consumed)
            return False

        now = self._episode_time(instance)
        episode = await self._replay(instance.instance_id, stored.events, accepted, now)
        decisions = episode.decisions

        for generation in episode.generations:
            await self._send_outbound(instance.instance_id, episode, generation)
        if decisions.is_finished:
            await self._notify_parent(episode, now)
        committed = 0 if episode.new_generation else len(stored.events)
        etag = await self._storage.append_history(
            instance.instance_id, episode.execution_id, committed, episode.rows, stored.etag
        )
        events = episode.rows if episode.new_generation else [*stored.events, *episode.rows]
        instance.history = StoredHistory(list(events), etag, episode.execution_id)
        await self._storage.merge_instance(
            instance.instance_id, self._instance_columns(episode, accepted, now)
        )
        instance.pending = deferred + instance.pending
        await self._consume(consumed)
        for listener in self._status_listeners:
            listener(instance.instance_id)
        if decisions.is_finished:
            logger.info(
                "Orchestration '%s' (%s) %s",
                episode.name,
                instance.instance_id,
                decisions.status.name.lower(),
            )
            instance.history = None
        return True

    def _episode_time(self, instance: _Instance) -> datetime:
        # current_utc_datetime must never go backwards between episodes.
        now = self._clock.now()
        if instance.last_episode_time is not None and now <= instance.last_episode_time:
            now = instance.last_episode_time + timedelta(microseconds=1)
        instance.last_episode_time = now
        return now

    async def _replay(
        self, instance_id: str, history: list[HistoryEvent], new_events: list[HistoryEvent], now: datetime
    ) -> Episode:
        index = self._index

        def orchestrator(name: str) -> Callable[[Any], Any] | None:
            function = index.orchestrator(name)
            return None if function is None else function.user_function

        def run() -> Episode:
            return execute_episode(
                instance_id=instance_id,
                history=history,
                new_events=new_events,
                now=now,
                orchestrator=orchestrator,
                known=self._known,
            )

        name = _orchestrator_name(history, new_events)
        function = index.orchestrator(name)
        loop = asyncio.get_running_loop()
        with self._invocations.invoke(
            function.name if function else name, reason="(null)", instance_id=instance_id
        ) as record:
            episode = await loop.run_in_executor(self._executor, run)
            if episode.state is not None and episode.state.error:
                record.succeeded = False
                record.error = episode.state.error
        return episode

    def _reconcile(
        self,
        instance_id: str,
        stored: StoredHistory,
        batch: list[tuple[HistoryEvent, _Delivery]],
    ) -> tuple[StoredHistory, list[HistoryEvent], list[tuple[HistoryEvent, _Delivery]]]:
        """Sort incoming events into applied, deferred and dropped (DTFx ReconcileMessagesWithState).

        Returns the history to extend (a fresh one when a new execution replaces a finished
        one), the events to apply, and the (event, delivery) pairs that must wait. Dropped
        events are duplicates or belong to another execution (durability invariant 6).
        """
        scheduled: set[int] = set()
        completed: set[int] = set()
        has_started = finished = suspended = False
        for event in stored.events:
            kind = h.event_type(event)
            if kind in h.SCHEDULING_EVENTS:
                scheduled.add(int(event["EventId"]))
            elif kind == EventType.ExecutionStarted:
                has_started = True
            elif kind in (EventType.ExecutionCompleted, EventType.ContinueAsNew):
                finished = kind == EventType.ExecutionCompleted
            elif kind in (EventType.ExecutionSuspended, EventType.ExecutionResumed):
                suspended = kind == EventType.ExecutionSuspended
            key = h.completion_key(event)
            if key is not None:
                completed.add(key)

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
                    stored = StoredHistory([], stored.etag, None)
                    scheduled.clear()
                    completed.clear()
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
                elif key in completed:
                    keep = False
                elif key not in scheduled:
                    keep = None  # the checkpoint that scheduled it has not landed yet
                else:
                    completed.add(key)
                    keep = True
            if keep and kind in (EventType.ExecutionSuspended, EventType.ExecutionResumed):
                suspended = kind == EventType.ExecutionSuspended
            if keep and kind == EventType.ExecutionTerminated:
                finished = True
            if keep is None:
                deferred.append((event, delivery))
            elif keep:
                accepted.append(event)
            else:
                logger.debug("Dropping %s for instance '%s' (duplicate or stale)", kind.name, instance_id)
        return stored, accepted, deferred

    # -- what an episode sends --------------------------------------------------------------

    async def _send_outbound(self, instance_id: str, episode: Episode, decisions: EpisodeDecisions) -> None:
        execution_id = episode.execution_id
        if decisions.activities:
            items = [
                WorkItem(instance_id, execution_id, a.task_id, a.name, a.input, a.http_request)
                for a in decisions.activities
            ]
            sent = await self._storage.send_work_items(items, lease=self._leases.lease_seconds)
            if self._work_sink is not None:
                self._work_sink(sent)
        for timer in decisions.timers:
            fire_at = h.parse_timestamp(timer.fire_at)
            message = ControlMessage(
                instance_id, [h.timer_fired(timer.timer_id, timer.fire_at, fire_at)], execution_id
            )
            handle = await self._storage.send_control(message, lease=self._leases.lease_seconds)
            if self._timer_sink is not None:
                self._timer_sink(message, handle, fire_at)
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
            await self._send_control(ControlMessage(child.instance_id, [started], child_execution))

    async def _notify_parent(self, episode: Episode, now: datetime) -> None:
        parent = episode.started.get("ParentInstance")
        if not parent:
            return
        decisions = episode.decisions
        task_id = int(parent["TaskScheduleId"])
        if decisions.status == OrchestrationStatus.Completed:
            event = h.sub_orchestration_completed(task_id, decisions.output, now)
        else:
            # Failed and Terminated children both fail the parent's task, with the child's reason.
            event = h.sub_orchestration_failed(task_id, decisions.output, None, now)
        target = parent["OrchestrationInstance"]
        await self._send_control(ControlMessage(target["InstanceId"], [event], target.get("ExecutionId")))

    async def _send_control(self, message: ControlMessage) -> None:
        handle = await self._storage.send_control(message, lease=self._leases.lease_seconds)
        self.deliver(message, handle)

    def _instance_columns(
        self, episode: Episode, accepted: list[HistoryEvent], now: datetime
    ) -> dict[str, Any]:
        decisions, started = episode.decisions, episode.started
        columns: dict[str, Any] = {"LastUpdatedTime": now, "ExecutionId": episode.execution_id}
        if decisions.custom_status is not None:
            columns["CustomStatus"] = decisions.custom_status
        if episode.new_generation or any(h.event_type(e) == EventType.ExecutionStarted for e in accepted):
            columns.update(
                {
                    "Name": started.get("Name"),
                    "Input": started.get("Input"),
                    "RuntimeStatus": OrchestrationStatus.Running.name,
                    "CreatedTime": h.parse_timestamp(started["Timestamp"]),
                    "TaskHubName": self._storage.hub_name,
                    "Version": "",
                    "Generation": int(started.get("Generation") or 0),
                }
            )
        if episode.suspended is not None:
            reason = next((e.get("Reason") for e in reversed(accepted) if e.get("Reason") is not None), None)
            status = OrchestrationStatus.Suspended if episode.suspended else OrchestrationStatus.Running
            columns.update({"RuntimeStatus": status.name, "Output": reason})
        if decisions.is_finished:
            columns["RuntimeStatus"] = decisions.status.name
            columns["Output"] = decisions.output
            columns["CompletedTime"] = now
        return columns

    async def _consume(self, deliveries: list[_Delivery]) -> None:
        handles = [d.handle for d in deliveries if d.handle is not None]
        for handle in handles:
            self._leases.release(handle)
        await asyncio.gather(*(self._storage.delete_message(handle) for handle in handles))


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
