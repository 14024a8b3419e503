"""What an orchestration episode sends: timers, sub-orchestration starts, entity operations and
its result to a parent, each made durable in a control message before the history is appended
(docs/host-behaviour.md 4.5, step 1), and handed to this host only after it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime

from emulator.durable import _history as h
from emulator.durable._episode import Episode
from emulator.durable._history import HistoryEvent, OrchestrationStatus
from emulator.durable._leases import LeaseKeeper
from emulator.durable._reconcile import Delivery, Incoming
from emulator.durable._replay import EpisodeDecisions
from emulator.durable._routing import LocalRouter
from emulator.durable._timers import DurableClock
from emulator.taskhub._interface import ControlMessage, TaskHub

#: Hands a message made durable to this host's dispatchers (once the history allows it).
Handoff = Callable[[], None]


class OutboundSender:
    def __init__(
        self, *, storage: TaskHub, leases: LeaseKeeper, clock: DurableClock, router: LocalRouter
    ) -> None:
        self._storage = storage
        self._leases = leases
        self._clock = clock
        self._router = router

    @staticmethod
    def sends_messages(episode: Episode) -> bool:
        decisions = episode.decisions
        if decisions.is_finished and episode.started.get("ParentInstance"):
            return True
        return any(g.timers or g.sub_orchestrations or g.entity_messages for g in episode.generations)

    async def send_outbound(
        self, instance_id: str, episode: Episode, decisions: EpisodeDecisions
    ) -> list[Handoff]:
        """Make the episode's messages durable; return how to hand them to this host's dispatchers."""
        handoffs: list[Handoff] = []
        execution_id = episode.execution_id
        for timer in decisions.timers:
            fire_at = h.parse_timestamp(timer.fire_at)
            message = ControlMessage(
                instance_id, [h.timer_fired(timer.timer_id, timer.fire_at, fire_at)], execution_id
            )
            handle = await self._storage.send_control(message, lease=self._leases.lease_seconds)
            handoffs.append(functools.partial(self._router.schedule_timer, message, handle, fire_at))
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

    async def notify_parent(self, episode: Episode, now: datetime) -> list[Handoff]:
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

    async def _send_control(self, message: ControlMessage) -> Handoff:
        handle = await self._storage.send_control(message, lease=self._leases.lease_seconds)
        return functools.partial(self._router.route, message, handle)

    async def persist_volatile(self, instance_id: str, batch: list[Incoming]) -> Delivery:
        """Write the in-memory activity results of a batch to a control message of their own."""
        events = [e for e, d in batch if d.volatile]
        execution_id = next(d.message.execution_id for _, d in batch if d.volatile)
        message = ControlMessage(instance_id, events, execution_id)
        handle = await self._storage.send_control(message, lease=self._leases.lease_seconds)
        self._leases.hold(handle)
        return Delivery(message, handle)


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
