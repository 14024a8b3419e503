"""One orchestration episode without any I/O: history and new events in, rows to append out.

Shared by the host's dispatcher and by tests that replay hand-built or saved histories, so a
history replayed offline is decided exactly as the running host decides it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emulator import _history as h
from emulator._history import EventType, HistoryEvent
from emulator._replay import EpisodeDecisions, OrchestratorState, decide, unknown_function_message
from emulator._worker import orchestration_payload, run_orchestrator


@dataclass
class Episode:
    #: Rows to append to the history, in order (OrchestratorStarted ... OrchestratorCompleted).
    rows: list[HistoryEvent]
    decisions: EpisodeDecisions
    state: OrchestratorState
    name: str
    execution_id: str
    started: HistoryEvent


def stored_form(event: HistoryEvent) -> HistoryEvent:
    """The row as the real provider persists it: message events are marked played."""
    stored = dict(event)
    stored["IsPlayed"] = h.event_type(event) in h.MESSAGE_EVENTS
    return stored


def execute_episode(
    *,
    instance_id: str,
    history: Sequence[HistoryEvent],
    new_events: Sequence[HistoryEvent],
    now: datetime,
    orchestrator: Callable[[str], Callable[[Any], Any] | None],
    activity_exists: Callable[[str], bool],
    known_activities: Callable[[], list[str]],
    known_orchestrators: Callable[[], list[str]],
) -> Episode:
    """Replay the orchestrator over ``history`` + [OrchestratorStarted, *new_events] and decide."""
    started = next(
        (e for e in [*history, *new_events] if h.event_type(e) == EventType.ExecutionStarted), None
    )
    if started is None:
        raise ValueError(f"Instance '{instance_id}' has no ExecutionStarted event")
    name = str(started.get("Name") or "")
    execution_id = str(started["OrchestrationInstance"]["ExecutionId"])
    parent = started.get("ParentInstance") or None
    parent_id = parent["OrchestrationInstance"]["InstanceId"] if parent else None

    episode_events = [h.orchestrator_started(now), *new_events]
    replay_history = [*history, *episode_events]
    handle = orchestrator(name)
    if handle is None:
        message = unknown_function_message(name, "orchestrator", known_orchestrators())
        state = OrchestratorState(is_done=False, actions=[], error=message)
    else:
        payload = orchestration_payload(
            instance_id=instance_id, history=replay_history, parent_instance_id=parent_id
        )
        state = run_orchestrator(handle, payload)
    decisions = decide(
        history=replay_history,
        orchestrator_name=name,
        state=state,
        now=now,
        activity_exists=activity_exists,
        known_activities=known_activities,
    )
    rows = [*(stored_form(e) for e in episode_events), *decisions.new_events, h.orchestrator_completed(now)]
    return Episode(rows, decisions, state, name, execution_id, started)
