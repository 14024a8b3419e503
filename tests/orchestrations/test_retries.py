"""call_*_with_retry: attempts and durable timers scheduled by the host, as DTFx's RetryInterceptor does."""

from __future__ import annotations

from emulator.testing import BackgroundHost
from tests.support import decisions, history_rows, start_orchestration, wait_for_status


def test_activity_retried_with_timers_until_it_succeeds(
    features_host: BackgroundHost, storage_connection: str
) -> None:
    started = start_orchestration(
        features_host.base_url, "RetryActivity", {"key": "ok-after-2", "failures": 2}
    )
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["output"] == {"result": "ok-after-2 succeeded on attempt 3"}
    rows = history_rows(storage_connection, "FeaturesHub", started["id"])
    assert decisions(rows) == [
        ("TaskScheduled", 0, "Flaky"),
        ("TimerCreated", 1, None),
        ("TaskScheduled", 2, "Flaky"),
        ("TimerCreated", 3, None),
        ("TaskScheduled", 4, "Flaky"),
    ]
    failed = [r for r in rows if r["EventType"] == "TaskFailed"]
    assert [r["TaskScheduledId"] for r in failed] == [0, 2]
    timers = {r["EventId"]: r for r in rows if r["EventType"] == "TimerCreated"}
    # Each retry waits the first retry interval (200 ms) from the time the failure was handled.
    for timer_id in (1, 3):
        delay = (timers[timer_id]["FireAt"] - timers[timer_id]["_Timestamp"]).total_seconds()
        assert abs(delay - 0.2) < 0.01


def test_last_failure_waits_for_the_immediate_timer_then_surfaces(
    features_host: BackgroundHost, storage_connection: str
) -> None:
    started = start_orchestration(features_host.base_url, "RetryActivity", {"key": "never", "failures": 10})
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["output"] == {
        "error": "Activity function 'Flaky' failed: RuntimeError: attempt 3 of never failed "
    }
    rows = history_rows(storage_connection, "FeaturesHub", started["id"])
    assert [d[:2] for d in decisions(rows)] == [
        ("TaskScheduled", 0),
        ("TimerCreated", 1),
        ("TaskScheduled", 2),
        ("TimerCreated", 3),
        ("TaskScheduled", 4),
        ("TimerCreated", 5),
    ]
    last_timer = next(r for r in rows if r["EventType"] == "TimerCreated" and r["EventId"] == 5)
    # DTFx's "dummy timer for back-compat" fires at once: FireAt is the time it was created.
    assert last_timer["FireAt"] == last_timer["_Timestamp"]
    assert [r["TimerId"] for r in rows if r["EventType"] == "TimerFired"] == [1, 3, 5]


def test_sub_orchestration_retry_creates_a_new_child_per_attempt(
    features_host: BackgroundHost, storage_connection: str
) -> None:
    started = start_orchestration(features_host.base_url, "RetrySubOrchestration")
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["output"] == "Orchestrator function 'Child' failed: child 7 refuses "
    rows = history_rows(storage_connection, "FeaturesHub", started["id"])
    created = [r for r in rows if r["EventType"] == "SubOrchestrationInstanceCreated"]
    assert [r["EventId"] for r in created] == [0, 2]
    assert len({r["InstanceId"] for r in created}) == 2
