"""Which incoming events an episode applies, which wait and which are dropped (duplicates are
recognised: docs/durability.md invariant 6).

The logic of DTFx ``ReconcileMessagesWithState``, as a pure function: a history (and what is
known of it, :class:`HistoryIndex`) and a batch of events in, a :class:`Reconciled` out. Nothing
is changed in place: an applied event that needs its queue message id recorded is applied as
a copy that carries it (``MESSAGE_ID``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emulator.durable import _history as h
from emulator.durable._history import EventType, HistoryEvent
from emulator.taskhub._interface import ControlMessage, MessageLease, StoredHistory

#: History column naming the queue message an event came in, to recognise redeliveries.
MESSAGE_ID = "MessageId"
_UNKEYED_MESSAGES = frozenset(
    {
        EventType.EventRaised,
        EventType.ExecutionTerminated,
        EventType.ExecutionSuspended,
        EventType.ExecutionResumed,
        EventType.GenericEvent,
    }
)

#: Events that still reach a suspended instance; the rest wait for the resume.
_WHILE_SUSPENDED = frozenset({EventType.ExecutionResumed, EventType.ExecutionTerminated})


@dataclass
class Delivery:
    """Events of one control message and the handle to acknowledge once they are checkpointed."""

    message: ControlMessage
    handle: MessageLease | None
    #: The events exist only in memory (activity results): nothing to acknowledge, and a
    #: crash loses them, which the activities' TaskScheduled rows make up for.
    volatile: bool = False


#: An incoming event with the delivery it came in.
Incoming = tuple[HistoryEvent, Delivery]


@dataclass
class HistoryIndex:
    """What reconciling needs to know of a history, caught up as rows are appended to it.

    Without it every episode would walk the whole history again, which makes a long chain of
    activities quadratic.
    """

    events: list[HistoryEvent]
    count: int = 0
    scheduled: set[int] = field(default_factory=set)
    completed: set[int] = field(default_factory=set)
    delivered: set[str] = field(default_factory=set)
    has_started: bool = False
    finished: bool = False
    suspended: bool = False

    def catch_up(self) -> HistoryIndex:
        for event in self.events[self.count :]:
            kind = h.event_type(event)
            if event.get(MESSAGE_ID):
                self.delivered.add(str(event[MESSAGE_ID]))
            if kind in h.SCHEDULING_EVENTS:
                self.scheduled.add(int(event["EventId"]))
            elif kind == EventType.ExecutionStarted:
                self.has_started = True
            elif kind in (EventType.ExecutionCompleted, EventType.ContinueAsNew):
                self.finished = kind == EventType.ExecutionCompleted
            elif kind in (EventType.ExecutionSuspended, EventType.ExecutionResumed):
                self.suspended = kind == EventType.ExecutionSuspended
            key = h.completion_key(event)
            if key is not None:
                self.completed.add(key)
        self.count = len(self.events)
        return self


@dataclass(frozen=True)
class Reconciled:
    """A batch sorted against a history."""

    #: The history to extend: a fresh one when a new execution replaces a finished one.
    history: StoredHistory
    #: The events to apply, in order (copies where a message id was recorded on them).
    accepted: list[HistoryEvent]
    #: The (event, delivery) pairs that must wait for a later episode.
    deferred: list[Incoming]
    #: Duplicates and events of another execution.
    dropped: list[Incoming]


def reconcile(stored: StoredHistory, index: HistoryIndex, batch: list[Incoming]) -> Reconciled:
    """Sort ``batch`` into applied, deferred and dropped events; ``index`` describes ``stored``."""
    # The index's sets are read, never changed: this batch's additions go to *_now sets.
    scheduled, completed, delivered = index.scheduled, index.completed, index.delivered
    completed_now: set[int] = set()
    delivered_now: set[str] = set()
    has_started, finished, suspended = index.has_started, index.finished, index.suspended
    accepted: list[HistoryEvent] = []
    deferred: list[Incoming] = []
    dropped: list[Incoming] = []
    for event, delivery in batch:
        kind = h.event_type(event)
        target = delivery.message.execution_id
        keep: bool | None  # True: apply, False: drop, None: wait
        if kind == EventType.ExecutionStarted:
            execution_id = event["OrchestrationInstance"]["ExecutionId"]
            if not has_started:
                keep = True
            elif finished and execution_id != stored.execution_id:
                # A new execution over a finished one: its history starts again at row 0.
                stored = StoredHistory([], stored.version, None)
                scheduled, completed = set(), set()
                completed_now.clear()
                finished = suspended = False
                keep = True
            else:
                keep = False
            has_started = True
        elif finished:
            keep = False
        elif not has_started:
            keep = None  # e.g. an event raised while the instance is still Pending
        elif suspended and kind not in _WHILE_SUSPENDED:
            keep = None
        else:
            key = h.completion_key(event)
            current = stored.execution_id or _execution_in(accepted)
            if key is not None and target is not None and current is not None and target != current:
                keep = False  # a result for an earlier generation (continue_as_new)
            elif key is None:
                keep = True
            elif key in completed or key in completed_now:
                keep = False
            elif key not in scheduled:
                keep = None  # the checkpoint that scheduled it has not landed yet
            else:
                completed_now.add(key)
                keep = True
        if keep and kind in (EventType.ExecutionSuspended, EventType.ExecutionResumed):
            suspended = kind == EventType.ExecutionSuspended
        if keep and kind == EventType.ExecutionTerminated:
            finished = True
        applied = event
        if keep and kind in _UNKEYED_MESSAGES and delivery.handle is not None:
            # Raised events and the like carry no task id: their queue message id tells a
            # redelivered message (its host died before deleting it) from a new one.
            position = next(i for i, e in enumerate(delivery.message.events) if e is event)
            message_id = f"{delivery.handle.message_id}:{position}"
            if message_id in delivered or message_id in delivered_now:
                keep = False
            else:
                delivered_now.add(message_id)
                applied = {**event, MESSAGE_ID: message_id}
        if keep is None:
            deferred.append((event, delivery))
        elif keep:
            accepted.append(applied)
        else:
            dropped.append((event, delivery))
    return Reconciled(stored, accepted, deferred, dropped)


def _execution_in(events: list[HistoryEvent]) -> str | None:
    for event in events:
        if h.event_type(event) == EventType.ExecutionStarted:
            return str(event["OrchestrationInstance"]["ExecutionId"])
    return None
