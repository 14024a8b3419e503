"""What a live orchestration's decision walks learn, so that the next episode's walk starts
later (``emulator.durable._replay.decide``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from emulator.durable import _history as h
from emulator.durable._action_types import (
    CALL_ACTIVITY,
    CALL_ACTIVITY_WITH_RETRY,
    CALL_HTTP,
    CALL_SUB_ORCHESTRATOR,
    CALL_SUB_ORCHESTRATOR_WITH_RETRY,
    CREATE_TIMER,
    WHEN_ALL,
    WHEN_ANY,
)
from emulator.durable._history import EventType, HistoryEvent

#: Actions whose outcome, once finished, no later history can change and whose issue consumes
#: nothing but sequence ids: a finished run of them at the start of the list is memoised.
_MEMOISABLE = frozenset(
    {CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY, CALL_SUB_ORCHESTRATOR, CALL_SUB_ORCHESTRATOR_WITH_RETRY}
    | {CREATE_TIMER, CALL_HTTP, WHEN_ALL}
)
#: Children of a task_all or task_any whose state is no more than "completed or not": once all
#: are scheduled, an unfinished compound of them is followed by its completions alone.
_PLAIN_TASKS = frozenset({CALL_ACTIVITY, CALL_SUB_ORCHESTRATOR})


def memoisable(action: dict[str, Any]) -> bool:
    kind = int(action["actionType"])
    if kind in (WHEN_ALL, WHEN_ANY):
        # Memoised only once nothing in it is left open (the caller checks): a task_any whose
        # other tasks are done or are timers it cancelled.
        return all(memoisable(child) for child in action.get("compoundActions") or [])
    return kind in _MEMOISABLE


def plain_compound(action: dict[str, Any]) -> bool:
    """A task_all or task_any of activities and sub-orchestrations without retries."""
    if int(action["actionType"]) not in (WHEN_ALL, WHEN_ANY):
        return False
    return all(int(child["actionType"]) in _PLAIN_TASKS for child in action.get("compoundActions") or [])


@dataclass
class HistoryIndex:
    """Decisions, completions and raised events of a history, by key."""

    scheduled: dict[int, HistoryEvent] = field(default_factory=dict)
    completed: dict[int, HistoryEvent] = field(default_factory=dict)
    raised: dict[str, list[HistoryEvent]] = field(default_factory=dict)
    length: int = 0

    def add(self, events: Iterable[HistoryEvent]) -> None:
        for event in events:
            self.length += 1
            kind = h.event_type(event)
            if kind in h.SCHEDULING_EVENTS:
                self.scheduled[int(event["EventId"])] = event
            elif kind == EventType.EventRaised:
                self.raised.setdefault(str(event.get("Name") or "").lower(), []).append(event)
            else:
                key = h.completion_key(event)
                if key is not None:
                    self.completed.setdefault(key, event)


@dataclass
class OpenCompound:
    """The unfinished task_all or task_any (``plain_compound``) the last walk stopped at, all of
    whose tasks were already in the history: its sequence ids and the ones still open."""

    action: dict[str, Any]
    first_id: int
    end_id: int
    pending: set[int]
    any: bool

    @property
    def finished(self) -> bool:
        if self.any:
            return len(self.pending) < self.end_id - self.first_id
        return not self.pending


@dataclass
class WalkMemo:
    """What a live orchestration's last decision walk learned, so the next one starts later.

    Between episodes of one execution the history only grows and the SDK's action list only
    gets longer, so the history index is extended rather than rebuilt, and the leading actions
    that had finished (all their tasks done, nothing left open) are not issued again: their
    sequence ids are taken as a block. A long chain then costs the same per step at its end as
    at its start. The unfinished fan-in the walk stopped at (``open``), the same dict in the
    next episode's actions, is not issued task by task again either: only the completions that
    came in since are taken off its open tasks, so a fan-in of N results costs O(N) in all
    rather than O(N) per episode. Any doubt (another execution, a shorter history, a changed
    action) starts over.
    """

    execution_id: str = ""
    index: HistoryIndex = field(default_factory=HistoryIndex)
    #: The leading finished actions (the very dicts of the state) and the next id after them.
    done_actions: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 0
    open: OpenCompound | None = None

    def prepare(self, history: Sequence[HistoryEvent], execution_id: str) -> HistoryIndex:
        if execution_id != self.execution_id or len(history) < self.index.length:
            self.execution_id, self.index = execution_id, HistoryIndex()
            self.forget()
        new = history[self.index.length :]
        self.index.add(new)
        if self.open is not None:
            for event in new:
                key = h.completion_key(event)
                if key is not None:
                    self.open.pending.discard(key)
        return self.index

    def forget(self) -> None:
        self.done_actions, self.next_id, self.open = [], 0, None

    def skip(self, actions: Sequence[dict[str, Any]]) -> int:
        """How many leading actions are known finished (0 unless they are exactly the same)."""
        done = self.done_actions
        # Mostly the very same dicts; a timer's is rebuilt every episode and compared by value.
        same = len(actions) >= len(done) and all(
            a is b or a == b for a, b in zip(actions[: len(done)], done, strict=True)
        )
        if not same:
            self.forget()
        return len(self.done_actions)
