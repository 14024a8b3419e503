"""History in, decisions out: the replay core driven through the real SDK, no host or storage."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import pytest

from emulator.app._app_index import load_app
from emulator.durable._history import EventType, OrchestrationStatus
from emulator.durable._replay import KnownFunctions, OrchestratorState, decide
from tests.unit.episodes import T0, EpisodeDriver

ACTIVITIES = [
    "ProcessCustomerActivity",
    "GetCustomersActivity",
    "GetOrderDetailsActivity",
    "NotifyCustomerActivity",
    "UpdateInventoryActivity",
    "ScheduleShippingActivity",
    "CompleteOrderActivity",
    "Flaky",
]


def _handle(fn: Any) -> Any:
    return df.Orchestrator.create(fn)


@functools.cache
def _seed_functions() -> dict[str, Any]:
    # The SDK indexes an app object once; load_app imports the app afresh, as a host does.
    index = load_app(Path(__file__).resolve().parents[2])
    return {f.name: f.user_function for f in index.functions}


def _seed(name: str) -> Any:
    return _seed_functions()[name]


def _events(episode_rows: list[dict[str, Any]], kind: EventType) -> list[dict[str, Any]]:
    return [e for e in episode_rows if e["EventType"] == kind]


def test_fan_out_schedules_one_activity_per_customer_with_sequential_ids() -> None:
    driver = EpisodeDriver({"ProcessCustomers": _seed("ProcessCustomers")}, ACTIVITIES)
    episode = driver.start("ProcessCustomers", ["a", "b", "c"])
    scheduled = _events(episode.rows, EventType.TaskScheduled)
    assert [e["EventId"] for e in scheduled] == [0, 1, 2]
    assert {e["Name"] for e in scheduled} == {"ProcessCustomerActivity"}
    assert [w.input for w in episode.decisions.activities] == ['"a"', '"b"', '"c"']
    assert episode.decisions.status == OrchestrationStatus.Running
    kinds = [EventType(e["EventType"]) for e in episode.rows]
    assert kinds[0] == EventType.OrchestratorStarted and kinds[-1] == EventType.OrchestratorCompleted


def test_fan_in_in_any_completion_order_returns_results_in_input_order() -> None:
    driver = EpisodeDriver({"ProcessCustomers": _seed("ProcessCustomers")}, ACTIVITIES)
    driver.start("ProcessCustomers", ["a", "b", "c"])
    second = driver.run(driver.completed(2, "C"), driver.completed(0, "A"))
    assert second.decisions.status == OrchestrationStatus.Running
    assert second.decisions.activities == []  # nothing is scheduled twice
    last = driver.run(driver.completed(1, "B"))
    assert last.decisions.status == OrchestrationStatus.Completed
    assert json.loads(last.decisions.output or "") == ["A", "B", "C"]
    completed = _events(last.rows, EventType.ExecutionCompleted)
    assert completed[0]["EventId"] == 3  # the completion takes the next sequence id, as in DTFx


def test_process_order_schedules_the_parallel_steps_only_after_order_details() -> None:
    driver = EpisodeDriver({"ProcessOrder": _seed("ProcessOrder")}, ACTIVITIES, instance_id="order-1")
    first = driver.start("ProcessOrder")
    assert [a.name for a in first.decisions.activities] == ["GetOrderDetailsActivity"]
    assert first.decisions.activities[0].input == '"order-1"'
    order = {
        "orderId": "order-1",
        "customerId": "c",
        "items": [{"sku": "S", "quantity": 1}],
        "status": "Received",
    }
    second = driver.run(driver.completed(0, order))
    assert [(a.task_id, a.name) for a in second.decisions.activities] == [
        (1, "NotifyCustomerActivity"),
        (2, "UpdateInventoryActivity"),
        (3, "ScheduleShippingActivity"),
    ]
    third = driver.run(driver.completed(1, "n"), driver.completed(3, {"trackingId": "T"}))
    assert third.decisions.activities == []
    fourth = driver.run(driver.completed(2, {"S": 999}))
    assert [(a.task_id, a.name) for a in fourth.decisions.activities] == [(4, "CompleteOrderActivity")]
    fifth = driver.run(driver.completed(4, "Completed"))
    assert fifth.decisions.status == OrchestrationStatus.Completed


def _catches_activity_failure(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    try:
        yield context.call_activity("Flaky", 1)
    except Exception as exc:
        return f"handled: {str(exc).splitlines()[0]}"
    return "no error"


def test_activity_failure_reaches_the_orchestrator_as_a_catchable_exception() -> None:
    driver = EpisodeDriver({"Catch": _handle(_catches_activity_failure)}, ACTIVITIES)
    driver.start("Catch")
    done = driver.run(driver.failed(0, "Activity function 'Flaky' failed: ValueError: nope"))
    assert done.decisions.status == OrchestrationStatus.Completed
    assert (
        json.loads(done.decisions.output or "")
        == "handled: Activity function 'Flaky' failed: ValueError: nope "
    )


def _raises(context: df.DurableOrchestrationContext) -> Generator[Any, Any, None]:
    yield context.call_activity("Flaky", 1)
    raise RuntimeError("kaboom")


def test_orchestrator_exception_fails_the_instance_with_the_hosts_message() -> None:
    driver = EpisodeDriver({"Boom": _handle(_raises)}, ACTIVITIES)
    driver.start("Boom")
    done = driver.run(driver.completed(0, None))
    assert done.decisions.status == OrchestrationStatus.Failed
    assert done.decisions.output == "Orchestrator function 'Boom' failed: kaboom"
    completed = _events(done.rows, EventType.ExecutionCompleted)[0]
    assert completed["OrchestrationStatus"] == OrchestrationStatus.Failed


def _calls_missing(context: df.DurableOrchestrationContext) -> Generator[Any, Any, None]:
    yield context.call_activity("NoSuchActivity", 1)


def test_unknown_activity_fails_the_orchestration_listing_the_known_ones() -> None:
    driver = EpisodeDriver({"Missing": _handle(_calls_missing)}, ["Alpha", "Beta"])
    done = driver.start("Missing")
    assert done.decisions.status == OrchestrationStatus.Failed
    assert done.decisions.output == (
        "Orchestrator function 'Missing' failed: The function 'NoSuchActivity' doesn't exist, is disabled, "
        "or is not an activity function. Additional info: The following are the known activity functions: "
        "'Alpha', 'Beta'."
    )
    assert done.decisions.activities == []


def _first_version(context: df.DurableOrchestrationContext) -> Generator[Any, Any, None]:
    yield context.call_activity("Alpha", 1)


def _renamed_version(context: df.DurableOrchestrationContext) -> Generator[Any, Any, None]:
    yield context.call_activity("Beta", 1)


def test_changed_orchestrator_code_is_detected_as_non_determinism() -> None:
    driver = EpisodeDriver({"Evolving": _handle(_first_version)}, ["Alpha", "Beta"])
    driver.start("Evolving")
    driver.orchestrators["evolving"] = _handle(_renamed_version)
    done = driver.run(driver.completed(0, None))
    assert done.decisions.status == OrchestrationStatus.Failed
    assert (done.decisions.output or "").startswith(
        "Orchestrator function 'Evolving' failed: Non-Deterministic workflow detected: "
    )
    assert "'Alpha'" in (done.decisions.output or "") and "'Beta'" in (done.decisions.output or "")


def _fail_fast_then_more(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    with contextlib.suppress(Exception):
        yield context.task_all([context.call_activity("Alpha", 1), context.call_activity("Beta", 2)])
    yield context.call_activity("Alpha", 3)
    return "done"


def test_shim_issues_nothing_after_a_top_level_action_until_it_has_finished() -> None:
    # task_all fails fast in the SDK, but the real shim awaits WhenAll until every child is
    # done, so the next activity is scheduled only once the slow sibling completes.
    driver = EpisodeDriver({"FailFast": _handle(_fail_fast_then_more)}, ["Alpha", "Beta"])
    driver.start("FailFast")
    after_failure = driver.run(driver.failed(0, "Activity function 'Alpha' failed: E: x"))
    assert after_failure.decisions.activities == []
    after_sibling = driver.run(driver.completed(1, None))
    assert [(a.task_id, a.name) for a in after_sibling.decisions.activities] == [(2, "Alpha")]
    done = driver.run(driver.completed(2, None))
    assert done.decisions.status == OrchestrationStatus.Completed


def _race_with_timer(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    deadline = context.current_utc_datetime + timedelta(minutes=5)
    timer = context.create_timer(deadline)
    winner = yield context.task_any([context.call_activity("Alpha", 1), timer])
    return "activity" if winner is not timer else "timer"


def test_instance_stays_running_while_an_uncancelled_timer_is_open() -> None:
    driver = EpisodeDriver({"Race": _handle(_race_with_timer)}, ["Alpha"])
    first = driver.start("Race")
    assert [t.timer_id for t in first.decisions.timers] == [1]
    assert first.decisions.timers[0].fire_at.startswith(
        (T0 + timedelta(seconds=1, minutes=5)).strftime("%Y-%m-%dT%H:%M")
    )
    won = driver.run(driver.completed(0, None))
    assert won.state is not None and won.state.is_done
    assert won.decisions.status == OrchestrationStatus.Running  # the timer still holds it open
    done = driver.run(driver.fired(1))
    assert done.decisions.status == OrchestrationStatus.Completed
    assert json.loads(done.decisions.output or "") == "activity"


def test_current_utc_datetime_follows_the_orchestrator_started_timestamps() -> None:
    seen: list[str] = []

    def clock(context: df.DurableOrchestrationContext) -> Generator[Any, Any, None]:
        seen.append(context.current_utc_datetime.isoformat())
        yield context.call_activity("Alpha", 1)
        seen.append(context.current_utc_datetime.isoformat())

    driver = EpisodeDriver({"Clock": _handle(clock)}, ["Alpha"])
    driver.start("Clock")
    driver.run(driver.completed(0, None))
    # Episode 2 replays from the first OrchestratorStarted, then moves to its own.
    assert seen == [
        "2024-01-01T00:00:01+00:00",
        "2024-01-01T00:00:01+00:00",
        "2024-01-01T00:00:02+00:00",
    ]


def test_decide_waits_for_unfinished_work_before_completing() -> None:
    state = OrchestratorState(
        is_done=True, actions=[{"actionType": 0, "functionName": "Alpha", "input": "1"}]
    )
    decisions = decide(
        history=[],
        orchestrator_name="X",
        state=state,
        now=T0,
        known=KnownFunctions(activities=("Alpha",)),
    )
    assert decisions.status == OrchestrationStatus.Running
    assert [a.task_id for a in decisions.activities] == [0]


@pytest.mark.parametrize("value", [None, 0, "", [], {"a": [1, 2]}])
def test_outputs_of_any_json_type_survive_the_round_trip(value: Any) -> None:
    def returns(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        result = yield context.call_activity("Alpha", value)
        return result

    driver = EpisodeDriver({"Echo": _handle(returns)}, ["Alpha"])
    first = driver.start("Echo")
    assert json.loads(first.decisions.activities[0].input or "null") == value
    done = driver.run(driver.completed(0, value))
    assert json.loads(done.decisions.output or "null") == value
