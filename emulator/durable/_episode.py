"""One orchestration episode without any I/O: history and new events in, rows to append out.

Shared by the host's dispatcher and by tests that replay hand-built or saved histories, so a
history replayed offline is decided exactly as the running host decides it.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, overload

from emulator.durable import _history as h
from emulator.durable._history import EventType, HistoryEvent, OrchestrationStatus
from emulator.durable._replay import (
    EpisodeDecisions,
    KnownFunctions,
    OrchestratorState,
    decide,
    unknown_function_message,
)
from emulator.durable._worker import OrchestratorSession, orchestration_payload, run_orchestrator

#: Generations one episode may run back to back before it is stopped (continue_as_new loops).
MAX_GENERATIONS_PER_EPISODE = 1000

OrchestratorLookup = Callable[[str], Callable[[Any], Any] | None]


@dataclass
class Episode:
    #: Rows to append to the history (OrchestratorStarted ... OrchestratorCompleted). When
    #: ``new_generation`` is set they replace the history from row 0 (continue_as_new).
    rows: list[HistoryEvent]
    #: The final generation's decisions: its status, output and custom status.
    decisions: EpisodeDecisions
    state: OrchestratorState | None
    name: str
    execution_id: str
    started: HistoryEvent
    #: Every generation's decisions in order, for the work they send out.
    generations: list[EpisodeDecisions] = field(default_factory=list)
    new_generation: bool = False
    #: True when the instance became Suspended in this episode, False when it was resumed.
    suspended: bool | None = None
    #: The live orchestration to continue in the next episode, when it can be kept.
    session: OrchestratorSession | None = None


def stored_form(event: HistoryEvent) -> HistoryEvent:
    """The row as the real provider persists it: message events are marked played."""
    stored = dict(event)
    stored["IsPlayed"] = h.event_type(event) in h.MESSAGE_EVENTS
    return stored


def _started_event(events: Iterable[HistoryEvent]) -> HistoryEvent | None:
    return next((e for e in events if h.event_type(e) == EventType.ExecutionStarted), None)


class JoinedHistory(Sequence[HistoryEvent]):
    """``[*history, *episode_events]`` without a copy of the whole history for every episode
    (a fan-out's history grows to hundreds of thousands of events, an episode adds a few)."""

    def __init__(self, history: Sequence[HistoryEvent], episode_events: Sequence[HistoryEvent]) -> None:
        self._head = history
        self._tail = episode_events

    def __len__(self) -> int:
        return len(self._head) + len(self._tail)

    def __iter__(self) -> Iterator[HistoryEvent]:
        return itertools.chain(self._head, self._tail)

    @overload
    def __getitem__(self, index: int) -> HistoryEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[HistoryEvent]: ...

    def __getitem__(self, index: int | slice) -> HistoryEvent | list[HistoryEvent]:
        split = len(self._head)
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return [
                *self._head[start : min(stop, split)],
                *self._tail[max(start - split, 0) : max(stop - split, 0)],
            ]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("history index out of range")
        return self._head[index] if index < split else self._tail[index - split]


def _ids_used(history: Sequence[HistoryEvent]) -> int:
    ids = [int(e["EventId"]) for e in history if h.event_type(e) in h.SCHEDULING_EVENTS]
    return max(ids) + 1 if ids else 0


def execute_episode(
    *,
    instance_id: str,
    history: Sequence[HistoryEvent],
    new_events: Sequence[HistoryEvent],
    now: datetime,
    orchestrator: OrchestratorLookup,
    known: KnownFunctions,
    new_execution_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    session: OrchestratorSession | None = None,
    keep_session: bool = False,
) -> Episode:
    """Replay the orchestrator over ``history`` + [OrchestratorStarted, *new_events] and decide.

    With ``session`` (from the previous episode's result) only the new events are fed to the
    live orchestration; ``keep_session`` asks for a session to keep for the next episode.
    """
    started = _started_event(itertools.chain(history, new_events))
    if started is None:
        raise ValueError(f"Instance '{instance_id}' has no ExecutionStarted event")
    name = str(started.get("Name") or "")
    kinds = {h.event_type(e) for e in new_events}
    episode_events = [h.orchestrator_started(now), *new_events]

    if EventType.ExecutionTerminated in kinds:
        # Terminate wins over everything else in the batch; the orchestrator's answer would be ignored.
        reason = next(e.get("Input") for e in new_events if h.event_type(e) == EventType.ExecutionTerminated)
        decisions = EpisodeDecisions(status=OrchestrationStatus.Terminated, output=reason)
        completion = h.execution_completed(_ids_used(history), OrchestrationStatus.Terminated, reason, now)
        rows = [*(stored_form(e) for e in episode_events), completion, h.orchestrator_completed(now)]
        return Episode(rows, decisions, None, name, _execution_of(started), started, [decisions])

    if kinds and kinds <= {EventType.ExecutionSuspended, EventType.ExecutionResumed}:
        # Suspension changes nothing the orchestrator can see: record it without a replay.
        last = [e for e in new_events if h.event_type(e) in kinds][-1]
        rows = [*(stored_form(e) for e in episode_events), h.orchestrator_completed(now)]
        decisions = EpisodeDecisions()
        return Episode(
            rows,
            decisions,
            None,
            name,
            _execution_of(started),
            started,
            [decisions],
            suspended=h.event_type(last) == EventType.ExecutionSuspended,
        )

    generations: list[EpisodeDecisions] = []
    current_history: Sequence[HistoryEvent] = history
    current_new = list(new_events)
    new_generation = False
    while True:
        started = _started_event(itertools.chain(current_history, current_new))
        assert started is not None
        episode_events = [h.orchestrator_started(now), *current_new]
        replay_history = JoinedHistory(current_history, episode_events)
        state, decisions, session = _replay_once(
            instance_id, started, replay_history, current_new, now, orchestrator, known, session, keep_session
        )
        generations.append(decisions)
        if decisions.status != OrchestrationStatus.ContinuedAsNew:
            break
        if len(generations) >= MAX_GENERATIONS_PER_EPISODE:
            decisions.status = OrchestrationStatus.Failed
            decisions.output = (
                f"Orchestrator function '{name}' failed: continue_as_new was called "
                f"{MAX_GENERATIONS_PER_EPISODE} times without waiting for anything"
            )
            decisions.new_events[-1] = h.execution_completed(
                _ids_used(replay_history), OrchestrationStatus.Failed, decisions.output, now
            )
            break
        # DTFx starts the next generation in the same work item: fresh history, new execution id,
        # the new input stored the way a client start stores it, unconsumed events carried over.
        next_started = h.execution_started(
            instance_id=instance_id,
            execution_id=new_execution_id(),
            name=name,
            input_text=None if decisions.output is None else json.dumps(decisions.output),
            timestamp=now,
            parent_instance=started.get("ParentInstance"),
            generation=int(started.get("Generation") or 0) + 1,
        )
        current_history, current_new = [], [next_started, *decisions.carried_events]
        new_generation = True
        session = None

    rows = [*(stored_form(e) for e in episode_events), *decisions.new_events, h.orchestrator_completed(now)]
    if decisions.status != OrchestrationStatus.Running or (state is not None and state.error):
        session = None
    return Episode(
        rows,
        decisions,
        state,
        name,
        _execution_of(started),
        started,
        generations,
        new_generation=new_generation,
        session=session,
    )


def _execution_of(started: HistoryEvent) -> str:
    return str(started["OrchestrationInstance"]["ExecutionId"])


def _replay_once(
    instance_id: str,
    started: HistoryEvent,
    replay_history: Sequence[HistoryEvent],
    new_events: Sequence[HistoryEvent],
    now: datetime,
    orchestrator: OrchestratorLookup,
    known: KnownFunctions,
    session: OrchestratorSession | None,
    keep_session: bool,
) -> tuple[OrchestratorState, EpisodeDecisions, OrchestratorSession | None]:
    name = str(started.get("Name") or "")
    parent = started.get("ParentInstance") or None
    parent_id = parent["OrchestrationInstance"]["InstanceId"] if parent else None
    handle = orchestrator(name)
    if handle is None:
        message = unknown_function_message(name, "orchestrator", known.orchestrators)
        state = OrchestratorState(is_done=False, actions=[], error=message)
        session = None
    elif session is not None and not session.finished:
        state = session.resume(replay_history)
    else:
        payload = orchestration_payload(
            instance_id=instance_id, history=replay_history, parent_instance_id=parent_id
        )
        if keep_session and OrchestratorSession.supports(handle):
            session = OrchestratorSession(handle)
            state = session.start(payload)
        else:
            session = None
            state = run_orchestrator(handle, payload)
    decisions = decide(
        history=replay_history,
        orchestrator_name=name,
        state=state,
        now=now,
        known=known,
        execution_id=_execution_of(started),
        new_events=new_events,
        instance_id=instance_id,
        memo=None if session is None else session.memo,
    )
    return state, decisions, session
