"""When may a test move durable time forward? When an instance waits on timers and nothing else.

Read from history alone (the ``durable get-history`` shape, enum names): an activity that has
not completed is real work, so time stays; an unfinished sub-orchestration is looked into, so a
timer in a child counts too. External events leave no trace until they arrive, so an instance
that waits for an event *and* a timer (a timeout) looks as if it waited on the timer only:
skipping fires the timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from emulator.durable import _history as h

HistoryReader = Callable[[str], "list[dict[str, Any]] | None"]

_SCHEDULED = ("TaskScheduled", "SubOrchestrationInstanceCreated", "TimerCreated")
_COMPLETIONS = {
    "TaskCompleted": "TaskScheduledId",
    "TaskFailed": "TaskScheduledId",
    "SubOrchestrationInstanceCompleted": "TaskScheduledId",
    "SubOrchestrationInstanceFailed": "TaskScheduledId",
    "TimerFired": "TimerId",
}
_FINISHED = ("ExecutionCompleted", "ExecutionTerminated", "ExecutionFailed")
_DELIVERY_GRACE = timedelta(seconds=5)
#: Sub-orchestrations nested deeper than this are not looked into (time is then left alone).
_MAX_DEPTH = 10


class _Busy(Exception):
    """Something other than a timer is in progress."""


def next_timer(read_history: HistoryReader, instance_id: str, now: datetime) -> datetime | None:
    """The earliest future timer the instance waits on, if it waits on timers only; else None."""
    try:
        times = _open_timers(read_history, instance_id, 0)
    except _Busy:
        return None
    ahead = [t for t in times if t > now]
    # A timer just due is being delivered: wait for it rather than skip past it. One long overdue
    # was cancelled as it was created (the SDK still records it) and never fires.
    if not ahead or any(now - _DELIVERY_GRACE < t <= now for t in times):
        return None
    return min(ahead)


def _open_timers(read_history: HistoryReader, instance_id: str, depth: int) -> list[datetime]:
    if depth > _MAX_DEPTH:
        raise _Busy
    events = read_history(instance_id)
    if not events:
        raise _Busy  # not started yet
    if any(e.get("EventType") in _FINISHED for e in events):
        return []
    done = {int(e[_COMPLETIONS[e["EventType"]]]) for e in events if e.get("EventType") in _COMPLETIONS}
    timers: list[datetime] = []
    for event in events:
        kind = event.get("EventType")
        if kind not in _SCHEDULED or int(event.get("EventId", -1)) in done:
            continue
        if kind == "TaskScheduled":
            raise _Busy
        if kind == "TimerCreated":
            timers.append(h.parse_timestamp(str(event["FireAt"])))
        else:
            timers += _open_timers(read_history, str(event.get("InstanceId")), depth + 1)
    return timers
