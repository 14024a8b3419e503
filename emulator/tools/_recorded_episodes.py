"""A saved history cut into the episodes that wrote it, for replaying one episode at a time.

A full history is split at each OrchestratorStarted. The status API's ``historyEvents`` has no
OrchestratorStarted markers and no sequence ids, and folds each finished task's TaskScheduled
into its completion: episodes are rebuilt from what is left. Decisions made in one episode carry
that episode's time, so decisions with the same timestamp form one episode, and the messages
before them are the ones the episode consumed. Which sequence id each of those decisions had is
left to the replay, which takes the order the code produces when the recorded set is the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulator.durable import _history as h
from emulator.durable._history import EventType, HistoryEvent

_COMPLETIONS = frozenset({EventType.ExecutionCompleted, EventType.ContinueAsNew, EventType.ExecutionFailed})
_MARKERS = frozenset({EventType.OrchestratorStarted, EventType.OrchestratorCompleted})
#: Completions the status API folds their TaskScheduled / SubOrchestrationInstanceCreated into.
_FOLDED = {
    EventType.TaskCompleted: EventType.TaskScheduled,
    EventType.TaskFailed: EventType.TaskScheduled,
    EventType.SubOrchestrationInstanceCompleted: EventType.SubOrchestrationInstanceCreated,
    EventType.SubOrchestrationInstanceFailed: EventType.SubOrchestrationInstanceCreated,
}


_STARTED = ("ExecutionStarted", int(EventType.ExecutionStarted))
_WITH_RESULT = {
    form
    for kind in (
        EventType.TaskCompleted,
        EventType.SubOrchestrationInstanceCompleted,
        EventType.ExecutionCompleted,
    )
    for form in (kind.name, int(kind))
}


class HistoryFileError(ValueError):
    """The input is not a history the replay understands; the message says why."""


@dataclass
class RecordedEpisode:
    """One episode as history recorded it."""

    started_at: datetime
    #: The events the episode consumed (ExecutionStarted, TaskCompleted, EventRaised, ...).
    messages: list[HistoryEvent] = field(default_factory=list)
    #: Its scheduling decisions, in sequence-id order.
    decisions: list[HistoryEvent] = field(default_factory=list)
    #: ExecutionCompleted (or ContinueAsNew) when the episode finished the instance.
    completion: HistoryEvent | None = None
    #: The episode's rows as they stand in history, for the episodes after it.
    rows: list[HistoryEvent] = field(default_factory=list)
    #: False when the decisions' order and sequence ids were lost and must be inferred.
    ids_known: bool = True
    #: (completion message, decision it completes) pairs whose sequence id is still to be set.
    links: list[tuple[HistoryEvent, HistoryEvent]] = field(default_factory=list)

    def rebuild_rows(self) -> None:
        self.rows = [
            h.orchestrator_started(self.started_at),
            *self.messages,
            *self.decisions,
            *([self.completion] if self.completion else []),
            h.orchestrator_completed(self.started_at),
        ]


def split_episodes(events: list[HistoryEvent]) -> list[RecordedEpisode]:
    """Cut a full history at each OrchestratorStarted."""
    episodes: list[RecordedEpisode] = []
    for event in events:
        kind = h.event_type(event)
        if kind == EventType.OrchestratorStarted or not episodes:
            episodes.append(RecordedEpisode(h.parse_timestamp(event["Timestamp"])))
        episode = episodes[-1]
        episode.rows.append(event)
        if kind in h.SCHEDULING_EVENTS:
            episode.decisions.append(event)
        elif kind in _COMPLETIONS:
            episode.completion = event
        elif kind not in _MARKERS:
            episode.messages.append(event)
    return episodes


@dataclass
class Reconstruction:
    instance_id: str
    orchestrator: str
    episodes: list[RecordedEpisode]
    notes: list[str]
    #: False when results of same-named tasks scheduled together cannot be told apart.
    outputs_comparable: bool


@dataclass
class _Group:
    """The decisions of one episode: everything scheduled at one orchestration time."""

    time: datetime
    decisions: list[HistoryEvent] = field(default_factory=list)
    completion: HistoryEvent | None = None


def _prepare_status_event(raw: Any, instance_id: str, orchestrator: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise HistoryFileError(f"A history event is not an object: {raw!r}")
    event = dict(raw)
    if event.get("EventType") in _WITH_RESULT and event.get("Result") is not None:
        # showHistoryOutput hands results over parsed; history keeps them as JSON text.
        event["Result"] = h.to_json_text(event["Result"])
    if event.get("EventType") in _STARTED:
        event.setdefault("Name", event.pop("FunctionName", None) or orchestrator)
        event.setdefault("OrchestrationInstance", {"InstanceId": instance_id, "ExecutionId": ""})
    return event


def status_episodes(
    raw_events: list[Any],
    *,
    instance_id: str,
    orchestrator: str,
    normalize: Callable[[dict[str, Any]], HistoryEvent],
) -> Reconstruction:
    """Rebuild episodes from the status API's ``historyEvents`` (``normalize`` parses one event)."""
    notes = [
        "This is the status API's history: sequence ids and episode boundaries were reconstructed. "
        "`durable get-history --json` keeps them."
    ]
    prepared = [_prepare_status_event(raw, instance_id, orchestrator) for raw in raw_events]
    started_raw = next((e for e in prepared if e.get("EventType") in _STARTED), None)
    if started_raw is not None and "Input" not in started_raw:
        notes.append("The history has no orchestration input (get it with showInput=true); None is replayed.")
    if any(e.get("EventType") in ("TaskCompleted", 5) and "Result" not in e for e in prepared):
        notes.append(
            "The history has no task results (get it with showHistoryOutput=true); None is replayed."
        )

    groups: dict[str, _Group] = {}
    flow: list[HistoryEvent] = []
    links: dict[int, HistoryEvent] = {}
    unfired: dict[str, list[HistoryEvent]] = {}
    folded_names: dict[str, Counter[tuple[int, str]]] = {}

    # The latest episode a decision listed so far belongs to: messages after it in the list came later.
    barrier: dict[int, _Group] = {}
    latest: _Group | None = None

    def group(timestamp: str) -> _Group:
        nonlocal latest
        found = groups.setdefault(timestamp, _Group(h.parse_timestamp(timestamp)))
        if latest is None or found.time > latest.time:
            latest = found
        return found

    for raw in prepared:
        function_name = raw.pop("FunctionName", None)
        scheduled_time = raw.pop("ScheduledTime", None)
        event = normalize(raw)
        kind = h.event_type(event)
        if kind in h.SCHEDULING_EVENTS:
            group(event["Timestamp"]).decisions.append(event)
            if kind == EventType.TimerCreated:
                unfired.setdefault(str(event.get("FireAt")), []).append(event)
        elif kind in _COMPLETIONS:
            group(event["Timestamp"]).completion = event
        elif kind in _MARKERS:
            continue
        else:
            if kind in _FOLDED and h.COMPLETION_KEY[kind] not in raw:
                if function_name is None or scheduled_time is None:
                    raise HistoryFileError(
                        f"A {kind.name} event has neither a TaskScheduledId nor a FunctionName and "
                        "ScheduledTime."
                    )
                when = h.format_timestamp(h.parse_timestamp(str(scheduled_time)))
                scheduled = _scheduled_event(_FOLDED[kind], str(function_name), h.parse_timestamp(when))
                group(when).decisions.append(scheduled)
                links[id(event)] = scheduled
                folded_names.setdefault(when, Counter())[
                    (int(scheduled["EventType"]), str(function_name))
                ] += 1
            elif kind == EventType.TimerFired and "TimerId" not in raw:
                waiting = unfired.get(str(event.get("FireAt"))) or []
                if waiting:
                    links[id(event)] = waiting.pop(0)
            event["IsPlayed"] = True
            if latest is not None:
                barrier[id(event)] = latest
            flow.append(event)

    ordered = sorted(groups.values(), key=lambda g: g.time)
    episodes = _merge(ordered, flow, links, barrier)
    comparable = all(count < 2 for counter in folded_names.values() for count in counter.values())
    if not comparable:
        notes.append(
            "Several tasks of the same name were scheduled together and this history does not say which "
            "result was whose: the final output is not compared."
        )
    started = next((e for e in flow if h.event_type(e) == EventType.ExecutionStarted), None)
    if started is None:
        raise HistoryFileError("The history has no ExecutionStarted event: it cannot be replayed.")
    return Reconstruction(instance_id, str(started.get("Name") or ""), episodes, notes, comparable)


def _scheduled_event(kind: EventType, name: str, when: datetime) -> HistoryEvent:
    if kind == EventType.TaskScheduled:
        return h.task_scheduled(-1, name, when)
    return h.sub_orchestration_created(-1, name, "", when)


def _merge(
    groups: list[_Group],
    flow: list[HistoryEvent],
    links: dict[int, HistoryEvent],
    barrier: dict[int, _Group],
) -> list[RecordedEpisode]:
    """Interleave messages and decision groups: a message comes after every group older than it,
    after the group holding the decision it completes and after the groups listed before it."""
    group_of = {id(d): index for index, g in enumerate(groups) for d in g.decisions}
    index_of = {id(g): index for index, g in enumerate(groups)}
    episodes: list[RecordedEpisode] = []
    pending: list[HistoryEvent] = []
    next_group = 0

    def close(through: int) -> None:
        nonlocal next_group, pending
        for g in groups[next_group : through + 1]:
            episode = RecordedEpisode(g.time, pending, list(g.decisions), g.completion, ids_known=False)
            episode.links = [(m, links[id(m)]) for m in pending if id(m) in links]
            episode.rebuild_rows()
            episodes.append(episode)
            pending = []
        next_group = max(next_group, through + 1)

    for message in flow:
        when = h.parse_timestamp(message["Timestamp"])
        through = next_group - 1
        while through + 1 < len(groups) and groups[through + 1].time < when:
            through += 1
        completes = links.get(id(message))
        if completes is not None:
            through = max(through, group_of.get(id(completes), -1))
        if id(message) in barrier:
            through = max(through, index_of[id(barrier[id(message)])])
        if through >= next_group:
            close(through)
        pending.append(message)
    close(len(groups) - 1)
    if pending:
        # Messages after the last decision: the instance was waiting when the history was read.
        last = RecordedEpisode(h.parse_timestamp(pending[-1]["Timestamp"]), pending, ids_known=False)
        last.links = [(m, links[id(m)]) for m in pending if id(m) in links]
        last.rebuild_rows()
        episodes.append(last)
    return episodes
