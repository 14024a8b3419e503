"""continue_as_new: new executions with a fresh history, carried-over events, Running in between."""

from __future__ import annotations

import json

from emulator.testing import BackgroundHost
from tests.support import get_status, history_rows, request, start_orchestration, wait_for_status, wait_until


def test_eternal_counter_runs_100_generations_without_growing_its_history(
    features_host: BackgroundHost, storage_connection: str
) -> None:
    started = start_orchestration(features_host.base_url, "Counter", {"n": 0, "until": 100})
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == 100
    rows = history_rows(storage_connection, "FeaturesHub", started["id"])
    # Only the last generation's rows count: a start and a completion, never 100 generations.
    assert [r["EventType"] for r in rows] == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "ExecutionCompleted",
        "OrchestratorCompleted",
    ]
    # The new input is stored the way a client start stores it: a JSON string holding JSON text.
    assert json.loads(json.loads(rows[1]["Input"])) == {"n": 100, "until": 100}


def test_generations_that_wait_for_events_stay_running_and_get_new_execution_ids(
    features_host: BackgroundHost, storage_connection: str
) -> None:
    started = start_orchestration(features_host.base_url, "Counter", {"n": 0, "until": 6, "wait_event": True})
    execution_ids = set()
    for step in (1, 2, 3):
        wait_until(lambda: get_status(started).json()["runtimeStatus"] == "Running")
        rows = wait_until(lambda: history_rows(storage_connection, "FeaturesHub", started["id"]))
        execution_ids.add(rows[0]["ExecutionId"])
        url = started["sendEventPostUri"].replace("{eventName}", "Add")
        assert request("POST", url, step).status == 202
        wait_until(
            lambda: (
                history_rows(storage_connection, "FeaturesHub", started["id"])[0]["ExecutionId"]
                not in execution_ids
                or get_status(started).json()["runtimeStatus"] == "Completed"
            )
        )
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["output"] == 6
    assert len(execution_ids) == 3


def test_events_not_consumed_by_a_generation_carry_over(features_host: BackgroundHost) -> None:
    instance = "carry-over-1"
    started = start_orchestration(
        features_host.base_url, "Counter", {"n": 0, "until": 3, "wait_event": True}, instance_id=instance
    )
    url = started["sendEventPostUri"].replace("{eventName}", "Add")
    # Three events while the first generation waits for one: the others move to later generations.
    for _ in range(3):
        assert request("POST", url, 1).status == 202
    assert wait_for_status(started["statusQueryGetUri"])["output"] == 3
