"""DurableTask history events in the shape the Python SDK reads them.

Events are plain dicts with the PascalCase DataMember names and an integer ``EventType``,
exactly what the real host serializes into the orchestration trigger payload
(docs/sdk-protocol.md section 3.2). Storage converts them to and from History table rows.
"""

from __future__ import annotations

import enum
import json
import uuid
from datetime import datetime, timezone
from typing import Any

HistoryEvent = dict[str, Any]


class EventType(enum.IntEnum):
    """DurableTask.Core ``EventType``; the History table stores the names."""

    ExecutionStarted = 0
    ExecutionCompleted = 1
    ExecutionFailed = 2
    ExecutionTerminated = 3
    TaskScheduled = 4
    TaskCompleted = 5
    TaskFailed = 6
    SubOrchestrationInstanceCreated = 7
    SubOrchestrationInstanceCompleted = 8
    SubOrchestrationInstanceFailed = 9
    TimerCreated = 10
    TimerFired = 11
    OrchestratorStarted = 12
    OrchestratorCompleted = 13
    EventSent = 14
    EventRaised = 15
    ContinueAsNew = 16
    GenericEvent = 17
    HistoryState = 18
    ExecutionSuspended = 19
    ExecutionResumed = 20
    ExecutionRewound = 21


class OrchestrationStatus(enum.IntEnum):
    """DurableTask.Core ``OrchestrationStatus``; HTTP and tables use the names."""

    Running = 0
    Completed = 1
    ContinuedAsNew = 2
    Failed = 3
    Canceled = 4
    Terminated = 5
    Pending = 6
    Suspended = 7


#: Decision events carry the sequence id the orchestrator's action took.
SCHEDULING_EVENTS = frozenset(
    {
        EventType.TaskScheduled,
        EventType.SubOrchestrationInstanceCreated,
        EventType.TimerCreated,
        EventType.EventSent,
    }
)

#: Events that complete a scheduled task, keyed by the field naming the task.
COMPLETION_KEY = {
    EventType.TaskCompleted: "TaskScheduledId",
    EventType.TaskFailed: "TaskScheduledId",
    EventType.SubOrchestrationInstanceCompleted: "TaskScheduledId",
    EventType.SubOrchestrationInstanceFailed: "TaskScheduledId",
    EventType.TimerFired: "TimerId",
}

#: Events that arrive as messages; the real executor marks them played before the checkpoint.
MESSAGE_EVENTS = frozenset(
    {
        EventType.ExecutionStarted,
        EventType.ExecutionTerminated,
        EventType.EventRaised,
        EventType.ExecutionSuspended,
        EventType.ExecutionResumed,
        EventType.GenericEvent,
        *COMPLETION_KEY,
    }
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(value: Any) -> datetime:
    """A stored timestamp as an aware UTC datetime: table rows may hold naive ones, and a missing
    value (anything but a datetime) counts as the Unix epoch, before any real timestamp."""
    if not isinstance(value, datetime):
        return datetime.fromtimestamp(0, timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def new_execution_id() -> str:
    """Execution ids are GUIDs in "N" format (32 hex digits), as DTFx creates them."""
    return uuid.uuid4().hex


def format_timestamp(moment: datetime) -> str:
    """.NET round-trip style with seven fractional digits, as the host serializes DateTime."""
    global _last_formatted
    last = _last_formatted
    if last is not None and last[0] == moment:
        return last[1]  # one text for an episode's rows: a fan-out's 100,000 share one moment
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    _last_formatted = (moment, text)
    return text


_last_formatted: tuple[datetime, str] | None = None


def parse_timestamp(text: str) -> datetime:
    """Parse the 0-7 fractional digit ISO forms the host and the SDK write."""
    body = text.rstrip("Z")
    if "+" in body[10:]:
        body = body[: 10 + body[10:].index("+")]
    if "." in body:
        head, frac = body.split(".", 1)
        body = f"{head}.{frac[:6].ljust(6, '0')}"
    # fromisoformat reads exactly these forms, many times faster than strptime.
    return datetime.fromisoformat(body).replace(tzinfo=timezone.utc)


def _event(event_type: EventType, timestamp: datetime, event_id: int = -1, **fields: Any) -> HistoryEvent:
    return {
        "EventType": int(event_type),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": format_timestamp(timestamp),
        **fields,
    }


def orchestrator_started(timestamp: datetime) -> HistoryEvent:
    return _event(EventType.OrchestratorStarted, timestamp)


def orchestrator_completed(timestamp: datetime) -> HistoryEvent:
    return _event(EventType.OrchestratorCompleted, timestamp)


def execution_started(
    *,
    instance_id: str,
    execution_id: str,
    name: str,
    input_text: str | None,
    timestamp: datetime,
    parent_instance: dict[str, Any] | None = None,
    generation: int = 0,
) -> HistoryEvent:
    # `Version` must be present: the SDK raises AttributeError without it.
    return _event(
        EventType.ExecutionStarted,
        timestamp,
        OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
        ParentInstance=parent_instance,
        Name=name,
        Version="",
        Input=input_text,
        Tags=None,
        Correlation=None,
        ParentTraceContext=None,
        ScheduledStartTime=None,
        Generation=generation,
    )


def task_scheduled(
    event_id: int, name: str, timestamp: datetime, input_text: str | None = None
) -> HistoryEvent:
    # The input is kept in the row (like storeInputsInOrchestrationHistory=true): the history is
    # the durable record an activity is dispatched from again after a crash.
    return _event(EventType.TaskScheduled, timestamp, event_id, Name=name, Version="", Input=input_text)


def task_completed(scheduled_id: int, result: str | None, timestamp: datetime) -> HistoryEvent:
    # `Result` must be present even when null: the SDK reads it unconditionally.
    return _event(EventType.TaskCompleted, timestamp, TaskScheduledId=scheduled_id, Result=result)


def task_failed(scheduled_id: int, reason: str, details: str | None, timestamp: datetime) -> HistoryEvent:
    return _event(
        EventType.TaskFailed,
        timestamp,
        TaskScheduledId=scheduled_id,
        Reason=reason,
        Details=details,
        FailureDetails=None,
    )


def sub_orchestration_created(
    event_id: int, name: str, instance_id: str, timestamp: datetime
) -> HistoryEvent:
    return _event(
        EventType.SubOrchestrationInstanceCreated,
        timestamp,
        event_id,
        Name=name,
        Version="",
        InstanceId=instance_id,
        Input=None,
        ClientSpanId=None,
        Tags=None,
    )


def sub_orchestration_completed(scheduled_id: int, result: str | None, timestamp: datetime) -> HistoryEvent:
    return _event(
        EventType.SubOrchestrationInstanceCompleted, timestamp, TaskScheduledId=scheduled_id, Result=result
    )


def sub_orchestration_failed(
    scheduled_id: int, reason: str | None, details: str | None, timestamp: datetime
) -> HistoryEvent:
    return _event(
        EventType.SubOrchestrationInstanceFailed,
        timestamp,
        TaskScheduledId=scheduled_id,
        Reason=reason,
        Details=details,
        FailureDetails=None,
    )


def timer_created(event_id: int, fire_at: str, timestamp: datetime) -> HistoryEvent:
    return _event(EventType.TimerCreated, timestamp, event_id, FireAt=fire_at)


def timer_fired(timer_id: int, fire_at: str, timestamp: datetime) -> HistoryEvent:
    return _event(EventType.TimerFired, timestamp, TimerId=timer_id, FireAt=fire_at)


def event_raised(name: str, input_text: str | None, timestamp: datetime) -> HistoryEvent:
    return _event(EventType.EventRaised, timestamp, Name=name, Input=input_text, ParentTraceContext=None)


def execution_completed(
    event_id: int, status: OrchestrationStatus, result: str | None, timestamp: datetime
) -> HistoryEvent:
    return _event(
        EventType.ExecutionCompleted,
        timestamp,
        event_id,
        OrchestrationStatus=int(status),
        Result=result,
        FailureDetails=None,
    )


def event_sent(event_id: int, instance_id: str, input_text: str, timestamp: datetime) -> HistoryEvent:
    # Entity operations go out as EventSent named "op"; Input is the RequestMessage JSON.
    return _event(
        EventType.EventSent, timestamp, event_id, InstanceId=instance_id, Name="op", Input=input_text
    )


def continued_as_new(event_id: int, new_input: str | None, timestamp: datetime) -> HistoryEvent:
    return _event(
        EventType.ContinueAsNew,
        timestamp,
        event_id,
        OrchestrationStatus=int(OrchestrationStatus.ContinuedAsNew),
        Result=new_input,
        FailureDetails=None,
    )


def execution_terminated(reason: str | None, timestamp: datetime) -> HistoryEvent:
    return _event(EventType.ExecutionTerminated, timestamp, Input=reason)


def execution_suspended(reason: str | None, timestamp: datetime) -> HistoryEvent:
    return _event(EventType.ExecutionSuspended, timestamp, Reason=reason)


def execution_resumed(reason: str | None, timestamp: datetime) -> HistoryEvent:
    return _event(EventType.ExecutionResumed, timestamp, Reason=reason)


def generic_event(data: str | None, timestamp: datetime) -> HistoryEvent:
    return _event(EventType.GenericEvent, timestamp, Data=data)


#: Enum members by value: a dictionary lookup is many times cheaper than ``EventType(value)``,
#: and replays look up the type of every event of a history.
_EVENT_TYPES: dict[int, EventType] = {member.value: member for member in EventType}
_COMPLETION_FIELDS: dict[int, str] = {kind.value: field for kind, field in COMPLETION_KEY.items()}


def event_type(event: HistoryEvent) -> EventType:
    value = event["EventType"]
    found = _EVENT_TYPES.get(value)
    return found if found is not None else EventType(value)


def completion_key(event: HistoryEvent) -> int | None:
    """The sequence id a completion event completes, or None for other events."""
    field = _COMPLETION_FIELDS.get(event["EventType"])
    return None if field is None else int(event[field])


def to_json_text(value: Any) -> str:
    """Compact JSON like Newtonsoft writes it (used for outputs stored as text)."""
    return json.dumps(value, separators=(",", ":"))
