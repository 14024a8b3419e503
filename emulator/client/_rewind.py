"""Rewinding a failed orchestration: its failures cleared from the history (``RewindHistoryAsync``).

Each failure event (ExecutionCompleted with status Failed, TaskFailed,
SubOrchestrationInstanceFailed) and the TaskScheduled event of each failed activity become
``GenericEvent`` events with Reason "Rewound: <old type>", so a replay no longer sees them; a
failed sub-orchestration's SubOrchestrationInstanceCreated event only gets that Reason and the
child instance is rewound in turn. The instance goes back to Pending.
"""

from __future__ import annotations

from emulator.durable import _history as h
from emulator.durable._history import EventType, HistoryEvent, OrchestrationStatus
from emulator.taskhub._interface import HistoryConflictError, InstanceUpdate, TaskHub

#: How often a rewind reads the history again when an episode changed it meanwhile.
_ATTEMPTS = 3


async def rewind_history(
    task_hub: TaskHub,
    instance_id: str,
    failed_leaves: list[str] | None = None,
    rewound: list[str] | None = None,
) -> list[str]:
    """Rewind the instance's current execution and its failed sub-orchestrations.

    Returns the deepest failed instances, which need a message to run again; ``rewound``
    collects every instance whose history this changes.
    """
    leaves = [] if failed_leaves is None else failed_leaves
    if rewound is not None:
        rewound.append(instance_id)
    events, children = await _rewind_one(task_hub, instance_id)
    for child in children:
        await rewind_history(task_hub, child, leaves, rewound)
    await task_hub.update_instance(
        instance_id, InstanceUpdate(last_updated_time=h.utcnow(), runtime_status=OrchestrationStatus.Pending)
    )
    if not any(h.event_type(e) == EventType.SubOrchestrationInstanceFailed for e in events):
        leaves.append(instance_id)
    return leaves


async def _rewind_one(task_hub: TaskHub, instance_id: str) -> tuple[list[HistoryEvent], list[str]]:
    """Replace the failures of one history; its events (before) and the failed children to rewind."""
    for attempt in range(_ATTEMPTS):
        stored = await task_hub.read_history(instance_id)
        if stored.version is None:
            raise ValueError(f"Orchestration instance '{instance_id}' has no history to rewind.")
        children: list[str] = []
        replacements = _rewound_events(stored.events, children)
        try:
            await task_hub.replace_history_events(instance_id, replacements, stored.version)
        except HistoryConflictError:
            if attempt == _ATTEMPTS - 1:
                raise
            continue  # an episode wrote meanwhile: rewind what it left
        return stored.events, children
    raise AssertionError("unreachable")


def _rewound_events(events: list[HistoryEvent], children: list[str]) -> dict[int, HistoryEvent]:
    """The events a rewind replaces, by position; ``children`` gets the failed children to rewind."""
    by_decision = {(h.event_type(e), e.get("EventId")): position for position, e in enumerate(events)}
    replacements: dict[int, HistoryEvent] = {}
    for position, event in enumerate(events):
        kind = h.event_type(event)
        if not _is_failure(event):
            continue
        if kind == EventType.TaskFailed:
            scheduled = by_decision.get((EventType.TaskScheduled, event.get("TaskScheduledId")))
            if scheduled is not None:
                replacements[scheduled] = _marked(events[scheduled], to_generic=True)
        elif kind == EventType.SubOrchestrationInstanceFailed:
            created = by_decision.get(
                (EventType.SubOrchestrationInstanceCreated, event.get("TaskScheduledId"))
            )
            if created is not None:
                # The child is still there and will report again once rewound: keep the decision.
                replacements[created] = _marked(events[created], to_generic=False)
                children.append(str(events[created]["InstanceId"]))
        replacements[position] = _marked(event, to_generic=True)
    return replacements


def _is_failure(event: HistoryEvent) -> bool:
    if event.get("OrchestrationStatus") == int(OrchestrationStatus.Failed):
        return True
    return h.event_type(event) in (EventType.TaskFailed, EventType.SubOrchestrationInstanceFailed)


def _marked(event: HistoryEvent, *, to_generic: bool) -> HistoryEvent:
    marked = dict(event)
    marked["Reason"] = f"Rewound: {h.event_type(event).name}"
    if to_generic:
        marked["EventType"] = int(EventType.GenericEvent)
    return marked
