"""Extended sessions decide exactly as full replays do: the same episodes through both paths."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from emulator.durable import _history as h
from emulator.durable._episode import Episode
from emulator.durable._history import EventType, HistoryEvent
from tests.unit.episodes import EpisodeDriver
from tests.unit.test_replay import _seed

ACTIVITIES = [
    "A",
    "B",
    "Flaky",
    "ProcessCustomerActivity",
    "GetOrderDetailsActivity",
    "NotifyCustomerActivity",
    "UpdateInventoryActivity",
    "ScheduleShippingActivity",
    "CompleteOrderActivity",
    "GetCustomersActivity",
]


def _mixed(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Touches every kind of task, plus the values that depend on replay position."""
    ids = [str(context.new_uuid())]
    first = yield context.call_activity("A", 1)
    retry = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
    flaky = yield context.call_activity_with_retry("Flaky", retry, 2)
    timer = context.create_timer(context.current_utc_datetime + timedelta(minutes=1))
    event = context.wait_for_external_event("Go")
    winner = yield context.task_any([event, timer])
    if winner == event:
        timer.cancel()
    ids.append(str(context.new_uuid()))
    fan = yield context.task_all([context.call_activity("B", i) for i in range(3)])
    context.set_custom_status({"seen": len(fan)})
    child = (
        yield context.call_sub_orchestrator("Mixed", None) if False else context.call_activity("A", "last")
    )
    return {
        "first": first,
        "flaky": flaky,
        "fan": fan,
        "child": child,
        "ids": ids,
        "replaying": context.is_replaying,
        "now": context.current_utc_datetime.isoformat(),
    }


def _entities(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    counter = df.EntityId("Counter", "k")
    first = yield context.call_entity(counter, "add", 5)
    context.signal_entity(counter, "add", 1)
    second = yield context.call_entity(counter, "get")
    return [first, second]


def _chain_with_timers(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """A long chain with a timer every few steps and one cancelled timer in the middle."""
    total = 0
    for i in range(int(context.get_input())):
        if i % 7 == 3:
            yield context.create_timer(context.current_utc_datetime + timedelta(seconds=5))
        if i == 10:
            timer = context.create_timer(context.current_utc_datetime + timedelta(hours=1))
            winner = yield context.task_any([context.call_activity("A", i), timer])
            timer.cancel()
            total += winner.result
            continue
        total += yield context.call_activity("A", i)
    return total


Scenario = Callable[[EpisodeDriver], None]


def _run_chain(driver: EpisodeDriver, steps: int = 30) -> None:
    """Answers whatever the last episode scheduled: activity results and fired timers."""
    episode = driver.start("Chain", steps)
    while episode.decisions.status.name == "Running":
        events = [
            driver.completed(a.task_id, int(json.loads(a.input or "0"))) for a in episode.decisions.activities
        ]
        events += [
            h.timer_fired(t.timer_id, t.fire_at, driver.clock)
            for t in episode.decisions.timers
            if "T01:" not in t.fire_at
        ]
        episode = driver.run(*events)


def _run_entities(driver: EpisodeDriver) -> None:
    """Answer each entity call with an EventRaised named after its request id, as the host does."""
    episode = driver.start("Entities")
    for value in (5, 6):
        call = next(m for m in episode.decisions.entity_messages if not m.request.get("signal"))
        response = h.event_raised(call.request["id"], json.dumps({"result": json.dumps(value)}), driver.clock)
        episode = driver.run(response)


def _run_mixed(driver: EpisodeDriver) -> None:
    driver.start("Mixed")
    driver.run(driver.completed(0, "one"))
    driver.run(driver.failed(1, "Activity function 'Flaky' failed: E: no"))
    driver.run(driver.fired(2))
    driver.run(driver.completed(3, "flaky ok"))
    driver.run(driver.raised("Go", "yes"))
    driver.run(driver.completed(5, "b0"), driver.completed(7, "b2"))
    driver.run(driver.completed(6, "b1"))
    driver.run(driver.completed(8, "last"))


def _run_customers(driver: EpisodeDriver) -> None:
    driver.start("ProcessCustomers", [f"c{i}" for i in range(20)])
    for i in reversed(range(20)):
        driver.run(driver.completed(i, f"done {i}"))


def _run_order(driver: EpisodeDriver) -> None:
    driver.start("ProcessOrder")
    order = {"orderId": "o", "customerId": "c", "items": [{"sku": "S", "quantity": 1}], "status": "Received"}
    driver.run(driver.completed(0, order))
    driver.run(driver.completed(2, {"S": 1}))
    driver.run(driver.completed(1, "n"), driver.completed(3, {"t": 1}))
    driver.run(driver.completed(4, "Completed"))


SCENARIOS: dict[str, tuple[dict[str, Any], Scenario]] = {
    "every task kind": ({"Mixed": df.Orchestrator.create(_mixed)}, _run_mixed),
    "fan-out of 20 completed one by one": ({"ProcessCustomers": None}, _run_customers),
    "ProcessOrder": ({"ProcessOrder": None}, _run_order),
    "a chain of 30 with timers and a cancelled timer": (
        {"Chain": df.Orchestrator.create(_chain_with_timers)},
        _run_chain,
    ),
    # An entity call is re-keyed by the SDK when it sees the host's EventSent: a live
    # orchestration must be given the decisions appended after its last episode too.
    "entity calls and signals": ({"Entities": df.Orchestrator.create(_entities)}, _run_entities),
}


def _rows(driver: EpisodeDriver) -> list[list[dict[str, Any]]]:
    return [episode.rows for episode in driver.episodes]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_extended_sessions_make_the_same_decisions_as_full_replays(name: str) -> None:
    orchestrators, scenario = SCENARIOS[name]
    orchestrators = {k: v or _seed(k) for k, v in orchestrators.items()}
    replayed = EpisodeDriver(orchestrators, ACTIVITIES, sessions=False)
    kept = EpisodeDriver(orchestrators, ACTIVITIES, sessions=True)
    scenario(replayed)
    scenario(kept)
    assert _rows(kept) == _rows(replayed)
    assert [e.decisions.custom_status for e in kept.episodes] == [
        e.decisions.custom_status for e in replayed.episodes
    ]
    final = kept.episodes[-1].decisions
    assert final.status.name == "Completed", final.output
    # The session really was kept: every episode after the first continued the live orchestration.
    assert all(e.session is not None for e in kept.episodes[:-1])


def test_the_mixed_scenario_sees_replay_flags_and_time_as_a_full_replay_does() -> None:
    kept = EpisodeDriver({"Mixed": df.Orchestrator.create(_mixed)}, ACTIVITIES, sessions=True)
    _run_mixed(kept)
    output = json.loads(kept.episodes[-1].decisions.output or "{}")
    last_started = [e for e in kept.history if e["EventType"] == EventType.OrchestratorStarted][-1]
    assert output["now"] == h.parse_timestamp(last_started["Timestamp"]).isoformat()
    assert output["replaying"] is False
    assert len(set(output["ids"])) == 2


def test_a_live_orchestration_walks_only_its_new_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost of deciding does not grow with the chain: finished actions are not walked again."""
    from emulator.durable import _replay

    issued: list[int] = []
    original = _replay._Walk.issue

    def counting(walk: Any, action: dict[str, Any]) -> bool:
        issued.append(int(action["actionType"]))
        return original(walk, action)

    monkeypatch.setattr(_replay._Walk, "issue", counting)
    chain = {"Chain": df.Orchestrator.create(_chain_with_timers)}
    per_episode: dict[bool, list[int]] = {}
    for sessions in (False, True):
        driver = EpisodeDriver(chain, ACTIVITIES, sessions=sessions)
        counts: list[int] = []
        original_run = driver.run

        def run(*events: Any, _run: Any = original_run, _counts: list[int] = counts) -> Any:
            before = len(issued)
            episode = _run(*events)
            _counts.append(len(issued) - before)
            return episode

        driver.run = run  # type: ignore[method-assign]
        _run_chain(driver, steps=40)
        assert driver.episodes[-1].decisions.status.name == "Completed"
        per_episode[sessions] = counts
    # A full replay walks every action so far; a live one walks the new one (and the cancelled
    # timer's race, which never counts as finished) at the end as at the start.
    assert per_episode[False][-1] > 40
    assert max(per_episode[True][-10:]) <= 3


class _ReplayingDriver(EpisodeDriver):
    """Keeps a session, but has every episode after the first decided by a replay from the start."""

    def run(self, *events: HistoryEvent) -> Episode:
        if self.session is not None:
            self.session = self.session.replayed_from_start()
        return super().run(*events)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_replay_from_the_start_decides_as_a_full_replay(name: str) -> None:
    orchestrators, scenario = SCENARIOS[name]
    orchestrators = {k: v or _seed(k) for k, v in orchestrators.items()}
    replayed = EpisodeDriver(orchestrators, ACTIVITIES, sessions=False)
    rerun = _ReplayingDriver(orchestrators, ACTIVITIES, sessions=True)
    scenario(replayed)
    scenario(rerun)
    assert _rows(rerun) == _rows(replayed)
    assert rerun.episodes[-1].decisions.status.name == "Completed"
    # Each episode's session ran the code over the whole history it was given.
    lengths = [e.session.replayed_length for e in rerun.episodes[:-1] if e.session is not None]
    assert len(lengths) == len(rerun.episodes) - 1
    assert lengths == sorted(set(lengths))


def _replay_flags(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    flags = [context.is_replaying]
    for i in range(3):
        yield context.call_activity("A", i)
        flags.append(context.is_replaying)
    return flags


def test_a_replay_from_the_start_sees_the_replay_flags_of_a_full_replay() -> None:
    outputs = []
    for driver in (
        EpisodeDriver({"Flags": df.Orchestrator.create(_replay_flags)}, ACTIVITIES, sessions=False),
        _ReplayingDriver({"Flags": df.Orchestrator.create(_replay_flags)}, ACTIVITIES, sessions=True),
    ):
        driver.start("Flags")
        for task_id in range(3):
            episode = driver.run(driver.completed(task_id, task_id))
        outputs.append(json.loads(episode.decisions.output or "null"))
    # Old events are replayed, the last episode's are new: code guarded by is_replaying runs once.
    assert outputs[0] == [True, True, True, False]
    assert outputs[1] == outputs[0]


def _fan_out(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    results = yield context.task_all([context.call_activity("B", i) for i in range(int(context.get_input()))])
    return sum(results)


def test_a_live_fan_in_walks_its_tasks_once_not_at_every_episode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fan-in the walk stopped at is remembered: later episodes take only their completions."""
    from emulator.durable import _replay

    attempts: list[int] = []
    original = _replay._Walk._attempt_activity

    def counting(walk: Any, action: dict[str, Any], http: bool = False) -> Any:
        attempts.append(walk.next_id)
        return original(walk, action, http)

    monkeypatch.setattr(_replay._Walk, "_attempt_activity", counting)
    orchestrators = {"FanOut": df.Orchestrator.create(_fan_out)}
    rows: dict[bool, list[list[dict[str, Any]]]] = {}
    walked: dict[bool, int] = {}
    count = 60
    for sessions in (False, True):
        attempts.clear()
        driver = EpisodeDriver(orchestrators, ACTIVITIES, sessions=sessions)
        driver.start("FanOut", count)
        # Results come back out of order, a few at a time, one of them twice.
        order = [*range(count - 1, -1, -2), *range(0, count, 2), 7]
        for first in range(0, len(order), 7):
            driver.run(*(driver.completed(i, i) for i in order[first : first + 7]))
        assert driver.episodes[-1].decisions.output == str(count * (count - 1) // 2)
        rows[sessions], walked[sessions] = _rows(driver), len(attempts)
        if sessions:
            assert driver.session is None  # finished
    assert rows[True] == rows[False]
    episodes = len(rows[True])
    assert walked[False] == count * episodes
    # Scheduled by the first episode, walked once more by the second, then never again.
    assert walked[True] == 2 * count


def test_a_session_replaced_by_a_replay_from_the_start_lets_go_of_its_orchestration() -> None:
    driver = EpisodeDriver({"FanOut": df.Orchestrator.create(_fan_out)}, ACTIVITIES, sessions=True)
    driver.start("FanOut", 3)
    spent = driver.session
    replay = spent.replayed_from_start()
    assert spent.finished and spent._executor is None and spent._context is None and spent._actions is None
    driver.session = replay
    driver.run(*(driver.completed(i, i) for i in range(3)))
    assert driver.episodes[-1].decisions.output == "3"


def test_an_episode_history_joined_with_its_events_reads_as_one_list() -> None:
    from emulator.durable._episode import JoinedHistory

    head: list[HistoryEvent] = [{"EventId": n} for n in range(10)]
    tail: list[HistoryEvent] = [{"EventId": n} for n in range(10, 13)]
    joined, whole = JoinedHistory(head, tail), [*head, *tail]
    assert len(joined) == 13 and list(joined) == whole
    for part in (slice(None), slice(2), slice(5, 12), slice(11, None), slice(-3, None), slice(0, 13, 2)):
        assert joined[part] == whole[part], part
    assert [joined[i] for i in range(-13, 13)] == [whole[i] for i in range(-13, 13)]
    with pytest.raises(IndexError):
        joined[13]
