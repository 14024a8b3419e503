"""Where the durable parts of a host send what they produce: the shapes of the local router.

A part is given these callables when it is built; it never looks its collaborators up later.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from emulator.durable._history import HistoryEvent
from emulator.durable._work_items import WorkItem
from emulator.taskhub._interface import ControlMessage, MessageLease

#: Takes a control message (and the handle of its queue message, if this host holds one).
ControlSink = Callable[[ControlMessage, MessageLease | None], None]
#: Takes a timer's message, to deliver it at its fire time.
TimerSink = Callable[[ControlMessage, MessageLease | None, datetime], None]
#: Takes activities to run.
WorkSink = Callable[[list[WorkItem]], None]
#: Takes each finished activity with its TaskCompleted or TaskFailed event.
ResultSink = Callable[[WorkItem, HistoryEvent], None]


class LocalRouter(Protocol):
    """What an orchestration episode hands to this host once its checkpoint allows it."""

    def route(self, message: ControlMessage, handle: MessageLease | None) -> None:
        """Process a control message here if this host owns its instance, else let the owner."""

    def schedule_timer(self, message: ControlMessage, handle: MessageLease | None, fire_at: datetime) -> None:
        """Hold a timer's message until its fire time."""

    def run_activities(self, items: list[WorkItem]) -> None:
        """Run activities on this host."""
