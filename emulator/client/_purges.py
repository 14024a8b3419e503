"""What a purge leaves behind on the host that runs the instance, and how it is kept from acting.

A purge deletes an instance's rows and blobs, but the host may still hold the purged execution
in memory (its history, its live orchestration, its leased messages and timers) and activities
of it may still be running. The real provider discards every message of an execution that no
longer exists: it carries the execution's id, and no current execution has that id. Here the
host forgets the instance before the rows go, remembers the purged execution ids (so results
and messages of them that come back later are dropped at once), and an episode that finds only
events waiting for an execution that has no Instances row drops them (which also covers messages
that come back after a restart, when nothing is remembered any more).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from emulator.durable import _history as h
from emulator.durable._history import EventType, HistoryEvent


class _History(Protocol):
    events: list[HistoryEvent]
    finished: bool


#: Purged executions remembered at the most (the oldest are forgotten first).
PURGED_EXECUTIONS_KEPT = 10_000


class PurgedExecutions:
    """The (instance id, execution id) pairs purged while this host ran, most recent last."""

    def __init__(self, kept: int = PURGED_EXECUTIONS_KEPT) -> None:
        self._kept = kept
        self._pairs: OrderedDict[tuple[str, str], None] = OrderedDict()

    def add(self, instance_id: str, execution_ids: set[str]) -> None:
        for execution_id in execution_ids:
            self._pairs[(instance_id, execution_id)] = None
            self._pairs.move_to_end((instance_id, execution_id))
        while len(self._pairs) > self._kept:
            self._pairs.popitem(last=False)

    def __contains__(self, pair: tuple[str, str | None]) -> bool:
        return pair[1] is not None and pair in self._pairs


def belongs_to_no_execution(target: str | None, row_execution_id: str | None, row_exists: bool) -> bool:
    """True for an event waiting for a start that will never come.

    ``target`` is the execution the event's message names (None: whichever is current, as a
    client's raise or terminate does). Without an Instances row no execution will start: the
    instance was purged (or never existed). With a row, an event that names another execution
    than the row's belongs to one that is gone.
    """
    if not row_exists:
        return True
    return target is not None and row_execution_id is not None and target != row_execution_id


def starts_another_execution(history: _History, new_events: Sequence[HistoryEvent]) -> bool:
    """True when ``new_events`` start an execution other than the unfinished one of ``history``.

    While an execution runs, only a purge (by another host or the command line) lets a start of
    another one through the client's checks: the history in memory is then of a gone execution.
    """
    current = next(
        (
            str(e["OrchestrationInstance"]["ExecutionId"])
            for e in history.events
            if h.event_type(e) == EventType.ExecutionStarted
        ),
        None,
    )
    if current is None or history.finished:
        return False
    return any(
        h.event_type(e) == EventType.ExecutionStarted and e["OrchestrationInstance"]["ExecutionId"] != current
        for e in new_events
    )
