"""What the orchestration dispatcher keeps in memory of one instance between and during episodes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from emulator.durable._history import HistoryEvent
from emulator.durable._mailbox import Mailbox
from emulator.durable._reconcile import Delivery, HistoryIndex, Incoming
from emulator.durable._status_writer import InstanceStatus
from emulator.durable._worker import OrchestratorSession
from emulator.taskhub._interface import ControlMessage, InstanceUpdate, StoredHistory


@dataclass
class Unflushed:
    """An episode whose history rows wait in memory to go out with the next episode's rows.

    Only an episode that consumed durable inputs alone (a queue message or a Pending row) and
    only scheduled activities waits like this: a crash before its rows are written replays
    the very same episode from those inputs (docs/durability.md invariant 2), and its activities,
    already started, then run at most twice. Their results, arriving within a few
    milliseconds, are recorded in the same transaction, which saves one history write (and
    one Instances-row write) on the path of every short orchestration. Until then its
    messages stay unacknowledged and its status unwritten (invariants 3 and 5).
    """

    #: Where its rows begin in the instance's history (they are at its end, in memory only).
    start: int
    #: What it consumed: pending again should its rows never be written.
    batch: list[Incoming]
    consumed: list[Delivery]
    update: InstanceUpdate
    timer: asyncio.TimerHandle | None = None
    #: The wait is over: write the rows without waiting for more.
    due: bool = False


@dataclass
class OrchestrationInstance(Mailbox[tuple[HistoryEvent, Delivery]]):
    history: StoredHistory | None = None
    last_episode_time: datetime | None = None
    #: The orchestration kept alive from the last episode (extended sessions), if any.
    session: OrchestratorSession | None = None
    #: (execution id, task id) of activities handed to the dispatcher whose result is not
    #: recorded yet, so that loading the history again does not dispatch them twice.
    outstanding: set[tuple[str, int]] = field(default_factory=set)
    #: Load the history and dispatch its activities without a result (after a restart or a
    #: partition takeover), even with no event waiting.
    recovering: bool = False
    index: HistoryIndex | None = None
    #: The last episode, if its history rows are still only in memory.
    unflushed: Unflushed | None = None
    #: Its Instances-row writes behind the episodes (``StatusWriter``).
    status: InstanceStatus = field(init=False)

    #: The one delivery its in-memory activity results come in (``results_delivery``).
    _results: Delivery | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.status = InstanceStatus(self.instance_id)

    def results_delivery(self, execution_id: str) -> Delivery:
        """The delivery of the activity results of ``execution_id`` that exist only in memory.

        They share one: there is nothing to acknowledge, and a message of its own per result
        held a hundred megabytes while a 100,000-way fan-out's results waited for its rows.
        """
        results = self._results
        if results is None or results.message.execution_id != execution_id:
            message = ControlMessage(self.instance_id, [], execution_id)
            results = self._results = Delivery(message, None, volatile=True)
        return results

    @property
    def checkpoint_under_way(self) -> bool:
        """An episode runs, or one's history or Instances row is still to be written."""
        return self.task is not None or self.unflushed is not None or self.status.under_way

    def forget_unflushed(self) -> list[Incoming]:
        """Drop the in-memory episode; return its events, to be applied again."""
        carried, self.unflushed = self.unflushed, None
        if carried is None:
            return []
        if carried.timer is not None:
            carried.timer.cancel()
        return carried.batch

    def indexed(self, history: StoredHistory) -> HistoryIndex:
        if self.index is None or self.index.events is not history.events:
            self.index = HistoryIndex(history.events)
        return self.index.catch_up()

    @property
    def flush_due(self) -> bool:
        return self.unflushed is not None and self.unflushed.due
