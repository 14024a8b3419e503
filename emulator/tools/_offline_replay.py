"""Offline replay: does the app's current code still make the decisions a saved history recorded?

Each recorded episode is decided again by ``execute_episode`` (the host's own episode code) from
the history before it, and its decisions (type, sequence id, name) and final status are compared
with what the episode recorded. Comparing episode by episode finds a change where it first shows,
before the host's own nondeterminism check would even see it. The first episode that disagrees
ends the replay: later ones build on decisions the code no longer makes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.app._app_index import AppIndex, load_app
from emulator.app._settings import load_settings
from emulator.durable import _history as h
from emulator.durable._episode import execute_episode
from emulator.durable._episode_runner import known_functions
from emulator.durable._history import EventType, HistoryEvent, OrchestrationStatus
from emulator.durable._worker import OrchestratorSession
from emulator.tools._history_files import SavedHistory
from emulator.tools._recorded_episodes import RecordedEpisode

_MAX_SHOWN_TEXT = 300
_MAX_SHOWN_EVENTS = 6


def load_app_for_replay(script_root: Path) -> AppIndex:
    """Import the app as the host does (local settings first); raises AppLoadError."""
    load_settings(script_root).apply_to_environment()
    return load_app(script_root)


@dataclass(frozen=True)
class Decision:
    """A scheduling decision: what an orchestrator action became in history."""

    kind: str
    sequence_id: int
    name: str | None
    detail: str | None = None

    @classmethod
    def of(cls, event: HistoryEvent) -> Decision:
        kind = h.event_type(event)
        detail = event.get("FireAt") if kind == EventType.TimerCreated else None
        name = None if kind == EventType.TimerCreated else str(event.get("Name") or "")
        return cls(kind.name, int(event["EventId"]), name, None if detail is None else str(detail))

    def same_as(self, other: Decision | None) -> bool:
        # Names compare without case, as the host's own nondeterminism check does.
        return (
            other is not None
            and (self.kind, self.sequence_id) == (other.kind, other.sequence_id)
            and (self.name or "").lower() == (other.name or "").lower()
        )

    def describe(self) -> str:
        if self.name is not None:
            return f"{self.kind} '{self.name}'"
        return f"{self.kind} (fires at {self.detail})" if self.detail else self.kind


@dataclass(frozen=True)
class Outcome:
    """How an episode left the instance: still running, or finished with a status and output."""

    status: str
    output: str | None = None

    @classmethod
    def of(cls, completion: HistoryEvent | None) -> Outcome:
        if completion is None:
            return cls("Running")
        status = OrchestrationStatus(int(completion.get("OrchestrationStatus", 0)))
        if h.event_type(completion) == EventType.ContinueAsNew:
            status = OrchestrationStatus.ContinuedAsNew
        result = completion.get("Result")
        return cls(status.name, None if result is None else str(result))

    def agrees_with(self, other: Outcome, compare_output: bool) -> bool:
        if self.status != other.status:
            return False
        # Failure messages may name files and lines: only the status is compared for them.
        if not compare_output or self.status in ("Failed", "Terminated", "Running"):
            return True
        return _json_or_text(self.output) == _json_or_text(other.output)

    def describe(self) -> str:
        if self.output is None or self.status == "Running":
            return self.status
        return f"{self.status}: {_shorten(self.output)}"


@dataclass
class EpisodeDiff:
    """The first episode where the code and history disagree."""

    number: int
    started_at: str
    new_events: list[str]
    recorded: list[Decision]
    produced: list[Decision]
    recorded_outcome: Outcome
    produced_outcome: Outcome
    outcome_differs: bool
    #: True when the recorded sequence ids were reconstructed (status API input).
    ids_reconstructed: bool = False

    def differing_ids(self) -> list[int]:
        recorded = {d.sequence_id: d for d in self.recorded}
        produced = {d.sequence_id: d for d in self.produced}
        return [
            seq
            for seq in sorted(set(recorded) | set(produced))
            if recorded.get(seq) is None or not recorded[seq].same_as(produced.get(seq))
        ]


@dataclass
class ReplayReport:
    instance_id: str
    orchestrator: str
    source: str
    episodes: int
    replayed: int = 0
    notes: list[str] = field(default_factory=list)
    mismatch: EpisodeDiff | None = None
    label: str = ""

    @property
    def ok(self) -> bool:
        return self.mismatch is None

    def format(self) -> str:
        """The report for people: a one-line verdict, or the diff of the first disagreeing episode."""
        what = f"'{self.orchestrator}' (instance '{self.instance_id}')"
        where = f" from {self.label}" if self.label else ""
        lines: list[str] = []
        if self.mismatch is None:
            lines.append(
                f"OK: {what}{where}: all {self.episodes} episodes agree with the code ({self.source})."
            )
        else:
            lines.append(f"NONDETERMINISM in {what}{where} ({self.source}, {self.episodes} episodes):")
            lines += _diff_lines(self.mismatch, self.episodes)
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def replay_saved(
    saved: SavedHistory, index: AppIndex, *, label: str = "", sessions: bool = False
) -> ReplayReport:
    """Replay every recorded episode of ``saved`` against the app in ``index``.

    Each episode is decided by a replay from the start, as the real host decides it; with
    ``sessions`` one run of the code goes through all of them (as the host's live orchestrations
    do), which costs one replay in all rather than one per episode.
    """
    known = known_functions(index)

    def orchestrator(name: str) -> Callable[[Any], Any] | None:
        function = index.orchestrator(name)
        return None if function is None else function.user_function

    report = ReplayReport(
        saved.instance_id,
        saved.orchestrator,
        saved.source,
        len(saved.episodes),
        notes=list(saved.notes),
        label=label,
    )
    history: list[HistoryEvent] = []
    session: OrchestratorSession | None = None
    for number, recorded in enumerate(saved.episodes, start=1):
        for message, decision in recorded.links:
            message[h.COMPLETION_KEY[h.event_type(message)]] = decision["EventId"]
        episode = execute_episode(
            instance_id=saved.instance_id,
            history=history,
            new_events=[{**m, "IsPlayed": False} for m in recorded.messages],
            now=recorded.started_at,
            orchestrator=orchestrator,
            known=known,
            session=session,
            keep_session=sessions,
        )
        session = episode.session
        # Only the first generation answers to this history; later ones (continue_as_new) start anew.
        made = episode.generations[0].new_events if episode.generations else episode.decisions.new_events
        produced = [Decision.of(e) for e in made if h.event_type(e) in h.SCHEDULING_EVENTS]
        produced_completion = next((e for e in made if h.event_type(e) not in h.SCHEDULING_EVENTS), None)
        if not recorded.ids_known:
            _adopt_sequence_ids(recorded, produced, _next_sequence_id(history))
        diff = EpisodeDiff(
            number=number,
            started_at=h.format_timestamp(recorded.started_at),
            new_events=[_describe_message(m) for m in recorded.messages],
            recorded=[Decision.of(e) for e in recorded.decisions],
            produced=produced,
            recorded_outcome=Outcome.of(recorded.completion),
            produced_outcome=Outcome.of(produced_completion),
            outcome_differs=False,
            ids_reconstructed=not recorded.ids_known,
        )
        diff.outcome_differs = not diff.recorded_outcome.agrees_with(
            diff.produced_outcome, saved.outputs_comparable
        )
        report.replayed = number
        if diff.differing_ids() or diff.outcome_differs:
            report.mismatch = diff
            break
        history.extend(recorded.rows)
    return report


def _next_sequence_id(history: list[HistoryEvent]) -> int:
    ids = [int(e["EventId"]) for e in history if h.event_type(e) in h.SCHEDULING_EVENTS]
    return max(ids) + 1 if ids else 0


def _adopt_sequence_ids(recorded: RecordedEpisode, produced: list[Decision], first_id: int) -> None:
    """Give reconstructed decisions their ids: the code's order when it made the same set, else
    the recorded order (and the diff will show why)."""
    remaining = list(recorded.decisions)
    ordered: list[HistoryEvent] = []
    for decision in produced:
        match = next(
            (
                e
                for e in remaining
                if h.event_type(e).name == decision.kind
                and (decision.name is None or str(e.get("Name") or "").lower() == decision.name.lower())
            ),
            None,
        )
        if match is None:
            break
        remaining.remove(match)
        match["EventId"] = decision.sequence_id
        ordered.append(match)
    if remaining or len(ordered) != len(produced):
        ordered = list(recorded.decisions)
        for offset, event in enumerate(ordered):
            event["EventId"] = first_id + offset
    recorded.decisions = ordered
    if recorded.completion is not None:
        recorded.completion["EventId"] = first_id + len(ordered)
    recorded.rebuild_rows()


def _describe_message(event: HistoryEvent) -> str:
    kind = h.event_type(event)
    key = h.completion_key(event)
    if key is not None:
        return f"{kind.name} #{key}"
    if kind == EventType.EventRaised:
        return f"{kind.name} '{event.get('Name')}'"
    return kind.name


def _json_or_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN_TEXT else text[: _MAX_SHOWN_TEXT - 3] + "..."


def _summarize(items: list[str]) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:_MAX_SHOWN_EVENTS])
    more = len(items) - _MAX_SHOWN_EVENTS
    return shown + (f" and {more} more" if more > 0 else "")


def _diff_lines(diff: EpisodeDiff, total: int) -> list[str]:
    lines = [
        f"  episode {diff.number} of {total}, orchestration time {diff.started_at}, "
        f"new events: {_summarize(diff.new_events)}"
    ]
    recorded = {d.sequence_id: d for d in diff.recorded}
    produced = {d.sequence_id: d for d in diff.produced}
    differing = diff.differing_ids()
    width = max((len(str(seq)) for seq in differing), default=1)
    for seq in differing:
        before, now = recorded.get(seq), produced.get(seq)
        lines.append(f"    seq {seq:>{width}}  history: {before.describe() if before else '(nothing)'}")
        lines.append(f"        {'':>{width}}  code:    {now.describe() if now else '(nothing)'}")
    agreeing = len(set(recorded) | set(produced)) - len(differing)
    if agreeing and differing:
        lines.append(f"    ({agreeing} other decision{'s' if agreeing != 1 else ''} of this episode agree)")
    if diff.outcome_differs:
        lines.append(f"    status   history: {diff.recorded_outcome.describe()}")
        lines.append(f"             code:    {diff.produced_outcome.describe()}")
    else:
        lines.append(f"    status: {diff.recorded_outcome.describe()} in both")
    if diff.ids_reconstructed:
        lines.append("    (the input does not record sequence ids: those of this episode were reconstructed)")
    if diff.number + 1 == total:
        lines.append(f"  episode {total} was not replayed: it builds on the decisions recorded here")
    elif diff.number < total:
        later = f"episodes {diff.number + 1}-{total}"
        lines.append(f"  {later} were not replayed: they build on the decisions recorded here")
    return lines
