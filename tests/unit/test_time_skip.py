"""When the plugin may move durable time: timers alone, looked for through sub-orchestrations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from emulator.durable import _history as h
from emulator.testing._time_skip import next_timer

NOW = datetime(2024, 1, 1, 12, tzinfo=timezone.utc)


def _at(minutes: float) -> str:
    return h.format_timestamp(NOW + timedelta(minutes=minutes))


def started() -> dict[str, Any]:
    return {"EventType": "ExecutionStarted", "EventId": -1}


def timer(seq: int, minutes: float) -> dict[str, Any]:
    return {"EventType": "TimerCreated", "EventId": seq, "FireAt": _at(minutes)}


def fired(seq: int) -> dict[str, Any]:
    return {"EventType": "TimerFired", "EventId": -1, "TimerId": seq}


def task(seq: int) -> dict[str, Any]:
    return {"EventType": "TaskScheduled", "EventId": seq, "Name": "A"}


def done(seq: int) -> dict[str, Any]:
    return {"EventType": "TaskCompleted", "EventId": -1, "TaskScheduledId": seq}


def child(seq: int, instance_id: str) -> dict[str, Any]:
    return {"EventType": "SubOrchestrationInstanceCreated", "EventId": seq, "InstanceId": instance_id}


def reader(histories: dict[str, list[dict[str, Any]]]) -> Any:
    return histories.get


def test_the_earliest_open_timer_is_next() -> None:
    history = [started(), timer(0, 5), timer(1, 2), fired(1), timer(2, 3)]
    assert next_timer(reader({"i": history}), "i", NOW) == NOW + timedelta(minutes=3)


def test_a_running_activity_keeps_time_still() -> None:
    history = [started(), task(0), timer(1, 5)]
    assert next_timer(reader({"i": history}), "i", NOW) is None
    assert next_timer(reader({"i": [*history, done(0)]}), "i", NOW) == NOW + timedelta(minutes=5)


def test_timers_of_sub_orchestrations_count_and_their_activities_block() -> None:
    parent = [started(), child(0, "c"), timer(1, 60)]
    assert next_timer(reader({"p": parent, "c": [started(), timer(0, 1)]}), "p", NOW) == NOW + timedelta(
        minutes=1
    )
    assert next_timer(reader({"p": parent, "c": [started(), task(0)]}), "p", NOW) is None
    assert next_timer(reader({"p": parent}), "p", NOW) is None  # the child has not started yet


def test_a_timer_being_delivered_is_waited_for_and_a_long_overdue_one_ignored() -> None:
    assert next_timer(reader({"i": [started(), timer(0, -0.01), timer(1, 5)]}), "i", NOW) is None
    # Cancelled as it was created: recorded, never fired.
    overdue = [started(), timer(0, -10), timer(1, 5)]
    assert next_timer(reader({"i": overdue}), "i", NOW) == NOW + timedelta(minutes=5)


def test_nothing_to_skip_to() -> None:
    finished = [started(), timer(0, 5), {"EventType": "ExecutionCompleted", "EventId": 1}]
    assert next_timer(reader({"i": finished}), "i", NOW) is None
    assert next_timer(reader({"i": [started()]}), "i", NOW) is None
    assert next_timer(reader({}), "missing", NOW) is None
