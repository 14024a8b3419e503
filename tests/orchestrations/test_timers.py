"""Durable timers: firing, cancelling, holding the instance open, surviving a restart, time control."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from emulator.testing import BackgroundHost
from tests.conftest import TEST_APPS, start_host
from tests.support import get_status, history_rows, start_orchestration, wait_for_status, wait_until


def _count(connection: str, instance_id: str, kind: str) -> int:
    return sum(1 for r in history_rows(connection, "FeaturesHub", instance_id) if r["EventType"] == kind)


def test_timers_fire_when_durable_time_reaches_them(
    features_host: BackgroundHost, storage_connection: str
) -> None:
    started = start_orchestration(features_host.base_url, "Sleeper", {"count": 5, "minutes": 1})
    for created in range(1, 6):
        # Each timer is created once the previous one fired; moving time a minute releases it.
        wait_until(lambda n=created: _count(storage_connection, started["id"], "TimerCreated") == n)
        features_host.advance_time(timedelta(minutes=1))
    status = wait_for_status(started["statusQueryGetUri"])
    seen = [datetime.fromisoformat(t) for t in status["output"]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(seen)]
    # Orchestration time moved a minute per timer, though the test took well under a minute.
    assert len(gaps) == 5 and all(g >= 60 for g in gaps)


def test_orchestration_stays_running_until_its_uncancelled_timer_fires(
    features_host: BackgroundHost, storage_connection: str
) -> None:
    started = start_orchestration(features_host.base_url, "RaceActivityAndTimer")
    wait_until(
        lambda: any(
            r["EventType"] == "TaskCompleted"
            for r in history_rows(storage_connection, "FeaturesHub", started["id"])
        )
    )
    # The orchestrator has returned, but the 10-minute timer is still open: the host keeps it Running.
    assert get_status(started).json()["runtimeStatus"] == "Running"
    features_host.advance_time(timedelta(minutes=10))
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["output"] == "activity"


def test_a_timer_survives_a_host_restart(storage_connection: str) -> None:
    first = start_host(TEST_APPS / "orchestration_features", storage_connection)
    try:
        started = start_orchestration(first.base_url, "Sleeper", {"count": 1, "minutes": 0.03})
        wait_until(
            lambda: any(
                r["EventType"] == "TimerCreated"
                for r in history_rows(storage_connection, "FeaturesHub", started["id"])
            )
        )
    finally:
        first.stop()
    second = start_host(TEST_APPS / "orchestration_features", storage_connection)
    try:
        url = started["statusQueryGetUri"].replace(first.base_url, second.base_url)
        status = wait_for_status(url)
        assert status["runtimeStatus"] == "Completed"
        assert len(status["output"]) == 2
    finally:
        second.stop()
