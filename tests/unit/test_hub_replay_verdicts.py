"""The task hub check's verdicts on single instances, without storage."""

from __future__ import annotations

from datetime import timedelta

import pytest

from emulator.app._app_index import AppIndex
from emulator.durable import _history as h
from emulator.durable._history import HistoryEvent, OrchestrationStatus
from emulator.taskhub._interface import InstanceRecord
from emulator.testing._replay import app_index
from emulator.tools._hub_replay import HubCheck, Verdict, check_history
from tests.conftest import TEST_APPS


@pytest.fixture(scope="module")
def index() -> AppIndex:
    return app_index((TEST_APPS / "hub_replay_app").resolve())


def record(name: str, status: OrchestrationStatus = OrchestrationStatus.Running) -> InstanceRecord:
    now = h.utcnow()
    return InstanceRecord("i-1", name, status, "e-1", now, now)


def waiter_history(*, finished: bool = False) -> list[HistoryEvent]:
    start = h.utcnow() - timedelta(minutes=5)
    later = start + timedelta(minutes=1)
    events = [
        h.orchestrator_started(start),
        h.execution_started(
            instance_id="i-1", execution_id="e-1", name="Waiter", input_text=None, timestamp=start
        ),
        h.orchestrator_completed(start),
    ]
    if finished:
        events += [
            h.orchestrator_started(later),
            h.event_raised("Go", '"yes"', later),
            h.execution_completed(0, OrchestrationStatus.Completed, '"yes"', later),
            h.orchestrator_completed(later),
        ]
    return events


def test_a_waiting_instance_replays(index: AppIndex) -> None:
    check = check_history(record("Waiter"), waiter_history(), index)
    assert check.verdict == Verdict.OK and check.report is not None and check.report.episodes == 1


def test_a_pending_instance_without_history_is_not_started(index: AppIndex) -> None:
    check = check_history(record("Waiter", OrchestrationStatus.Pending), [], index)
    assert check.verdict == Verdict.NOT_STARTED and not check.verdict.breaks
    assert "not started yet" in check.format()


def test_an_instance_finished_meanwhile_is_left_out(index: AppIndex) -> None:
    check = check_history(record("Waiter"), waiter_history(finished=True), index)
    assert check.verdict == Verdict.FINISHED
    hub = HubCheck("Hub", [check])
    assert hub.ok and "i-1" not in hub.format() and hub.to_json()["instances"] == []


def test_a_history_without_its_start_cannot_be_replayed(index: AppIndex) -> None:
    check = check_history(record("Waiter"), waiter_history()[2:], index)
    assert check.verdict == Verdict.UNREADABLE and check.verdict.breaks
    assert "no ExecutionStarted" in check.format()
    assert not HubCheck("Hub", [check]).ok


def test_the_orchestrator_named_by_the_history_must_exist(index: AppIndex) -> None:
    events = waiter_history()
    events[1]["Name"] = "Gone"
    check = check_history(record("Waiter"), events, index)
    assert check.verdict == Verdict.MISSING_ORCHESTRATOR
    assert check.format().startswith("MISSING ORCHESTRATOR: 'Gone' (instance 'i-1', Running)")
