"""The replay core alone, table-driven: history in, decisions out, for each action type and each
nondeterminism case. No SDK, no storage: the states are the JSON the SDK sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from emulator.durable import _history as h
from emulator.durable._history import HistoryEvent, OrchestrationStatus
from emulator.durable._replay import KnownFunctions, OrchestratorState, decide

T0 = h.parse_timestamp("2024-01-01T00:00:00Z")
NOW = T0 + timedelta(minutes=1)
KNOWN = KnownFunctions(activities=("A", "B"), orchestrators=("Child", "Main"))


def act(name: str = "A", value: str = '"x"') -> dict[str, Any]:
    return {"actionType": 0, "functionName": name, "input": value}


def timer(at: str, cancelled: bool = False) -> dict[str, Any]:
    return {"actionType": 5, "fireAt": at, "isCanceled": cancelled}


def wait(name: str) -> dict[str, Any]:
    return {"actionType": 6, "externalEventName": name, "reason": "ExternalEvent"}


def all_of(*children: dict[str, Any]) -> dict[str, Any]:
    return {"actionType": 12, "compoundActions": list(children)}


def any_of(*children: dict[str, Any]) -> dict[str, Any]:
    return {"actionType": 11, "compoundActions": list(children)}


def retry(first_ms: int, attempts: int, **extra: float) -> dict[str, Any]:
    options: dict[str, Any] = {"firstRetryIntervalInMilliseconds": first_ms, "maxNumberOfAttempts": attempts}
    options.update(extra)
    return all_of({"actionType": 1, "functionName": "A", "input": "1", "retryOptions": options})


def sub(name: str = "Child", instance_id: str | None = None) -> dict[str, Any]:
    return {"actionType": 2, "functionName": name, "input": "1", "instanceId": instance_id, "version": None}


def scheduled(task_id: int, name: str = "A", at: Any = T0) -> HistoryEvent:
    return h.task_scheduled(task_id, name, at)


def done(task_id: int, at: Any = T0) -> HistoryEvent:
    return h.task_completed(task_id, '"ok"', at)


def failed(task_id: int, at: Any = T0) -> HistoryEvent:
    return h.task_failed(task_id, "boom", None, at)


@dataclass
class Case:
    name: str
    actions: list[dict[str, Any]]
    history: list[HistoryEvent] = field(default_factory=list)
    is_done: bool = False
    schema: int = 2
    custom_status: Any = None
    expect_status: OrchestrationStatus = OrchestrationStatus.Running
    #: (EventType name, EventId, Name) of the new decision events, in order.
    expect_events: list[tuple[str, int, str | None]] = field(default_factory=list)
    expect_output_prefix: str | None = None
    expect_timer_fire_at: list[Any] = field(default_factory=list)


def _start() -> list[HistoryEvent]:
    return [
        h.orchestrator_started(T0),
        h.execution_started(instance_id="i", execution_id="e1", name="Main", input_text=None, timestamp=T0),
    ]


CASES = [
    Case("activity is scheduled with id 0", [act()], expect_events=[("TaskScheduled", 0, "A")]),
    Case("scheduled activity is not scheduled twice", [act()], [scheduled(0)]),
    Case(
        "completed activity lets the orchestration complete; completion takes the next id",
        [act()],
        [scheduled(0), done(0)],
        is_done=True,
        expect_status=OrchestrationStatus.Completed,
        expect_events=[("ExecutionCompleted", 1, None)],
    ),
    Case(
        "fan-out numbers children in list order",
        [all_of(act("A"), act("B"), act("A"))],
        expect_events=[("TaskScheduled", 0, "A"), ("TaskScheduled", 1, "B"), ("TaskScheduled", 2, "A")],
    ),
    Case(
        "nothing after an unfinished top-level action is issued",
        [act("A"), act("B")],
        [scheduled(0)],
    ),
    Case(
        "task_any of an activity and a timer issues both",
        [any_of(act(), timer("2024-01-01T00:10:00.000000Z"))],
        expect_events=[("TaskScheduled", 0, "A"), ("TimerCreated", 1, None)],
        expect_timer_fire_at=[T0 + timedelta(minutes=10)],
    ),
    Case(
        "a returned orchestrator stays Running while its timer is open",
        [any_of(act(), timer("2024-01-01T00:10:00.000000Z"))],
        [scheduled(0), h.timer_created(1, "2024-01-01T00:10:00.0000000Z", T0), done(0)],
        is_done=True,
    ),
    Case(
        "a cancelled timer does not hold the instance open",
        [any_of(act(), timer("2024-01-01T00:10:00.000000Z", cancelled=True))],
        [scheduled(0), h.timer_created(1, "2024-01-01T00:10:00.0000000Z", T0), done(0)],
        is_done=True,
        expect_status=OrchestrationStatus.Completed,
        expect_events=[("ExecutionCompleted", 2, None)],
    ),
    Case(
        "external event waits take no id and block what follows until raised",
        [wait("Go"), act()],
    ),
    Case(
        "a raised event (any case) releases the wait",
        [wait("Go"), act()],
        [h.event_raised("GO", '"x"', T0)],
        expect_events=[("TaskScheduled", 0, "A")],
    ),
    Case(
        "sub-orchestration without an id gets <execution id>:<sequence id>",
        [sub()],
        expect_events=[("SubOrchestrationInstanceCreated", 0, "Child")],
    ),
    Case(
        "retry: a failure schedules a timer at now + first interval",
        [retry(5000, 3)],
        [scheduled(0), failed(0)],
        expect_events=[("TimerCreated", 1, None)],
        expect_timer_fire_at=[NOW + timedelta(seconds=5)],
    ),
    Case(
        "retry: the fired timer reschedules the activity",
        [retry(5000, 3)],
        [scheduled(0), failed(0), h.timer_created(1, "x", T0), h.timer_fired(1, "x", T0)],
        expect_events=[("TaskScheduled", 2, "A")],
    ),
    Case(
        "retry: backoff coefficient and max interval shape the second delay",
        [retry(1000, 5, backoffCoefficient=10, maxRetryIntervalInMilliseconds=4000)],
        [
            scheduled(0),
            failed(0),
            h.timer_created(1, "x", T0),
            h.timer_fired(1, "x", T0),
            scheduled(2),
            failed(2),
        ],
        expect_events=[("TimerCreated", 3, None)],
        expect_timer_fire_at=[NOW + timedelta(seconds=4)],
    ),
    Case(
        "retry: the last failure gets an immediate timer",
        [retry(1000, 1)],
        [scheduled(0), failed(0)],
        expect_events=[("TimerCreated", 1, None)],
        expect_timer_fire_at=[NOW],
    ),
    Case(
        "continue_as_new ends the generation with a ContinueAsNew event",
        [{"actionType": 4, "input": '{"n": 2}'}],
        is_done=True,
        expect_status=OrchestrationStatus.ContinuedAsNew,
        expect_events=[("ContinueAsNew", 0, None)],
    ),
    Case(
        "call_http runs the built-in HTTP activity",
        [{"actionType": 8, "httpRequest": {"method": "GET", "uri": "http://127.0.0.1:1/x"}}],
        expect_events=[("TaskScheduled", 0, "BuiltIn::HttpActivity")],
    ),
    Case(
        "unknown activity fails the orchestration",
        [act("Nope")],
        expect_status=OrchestrationStatus.Failed,
        expect_output_prefix="Orchestrator function 'Main' failed: The function 'Nope' doesn't exist",
    ),
    Case(
        "unknown sub-orchestrator fails the orchestration",
        [sub("Nope")],
        expect_status=OrchestrationStatus.Failed,
        expect_output_prefix="Orchestrator function 'Main' failed: The function 'Nope' doesn't exist, is "
        "disabled, or is not an orchestrator function. Additional info: The following are the known "
        "orchestrator functions: 'Child', 'Main'.",
    ),
    Case(
        "nondeterminism: another activity name at the same id",
        [act("B")],
        [scheduled(0, "A")],
        expect_status=OrchestrationStatus.Failed,
        expect_output_prefix="Orchestrator function 'Main' failed: Non-Deterministic workflow detected: A "
        "previous execution of this orchestration scheduled an activity task with sequence ID 0 named 'A'",
    ),
    Case(
        "nondeterminism: another action type at the same id",
        [timer("2024-01-01T00:10:00.000000Z")],
        [scheduled(0, "A")],
        expect_status=OrchestrationStatus.Failed,
        expect_output_prefix="Orchestrator function 'Main' failed: Non-Deterministic workflow detected: A "
        "previous execution of this orchestration scheduled a TaskScheduled event with sequence ID 0",
    ),
    Case(
        "nondeterminism: an action missing from the replay",
        [act("A")],
        [scheduled(0, "A"), done(0), scheduled(1, "B")],
        is_done=True,
        expect_status=OrchestrationStatus.Failed,
        expect_output_prefix="Orchestrator function 'Main' failed: Non-Deterministic workflow detected: A "
        "previous execution of this orchestration scheduled a TaskScheduled event with sequence ID 1 and "
        "name 'B' (version ''), but the current replay execution hasn't (yet?) scheduled this task.",
    ),
    Case(
        "schema V2 rejects a timer over 6 days",
        [timer("2024-01-09T00:00:00.000000Z")],
        schema=1,
        expect_status=OrchestrationStatus.Failed,
        expect_output_prefix="Orchestrator function 'Main' failed: The Azure Storage provider supports a "
        "maximum of 6 days for time-based delays",
    ),
    Case(
        "schema V3 leaves long timers to the SDK, which splits them",
        [timer("2024-01-09T00:00:00.000000Z")],
        expect_events=[("TimerCreated", 0, None)],
    ),
    Case(
        "custom status over 16 KB fails the orchestration",
        [act()],
        custom_status="s" * 9000,
        expect_status=OrchestrationStatus.Failed,
        expect_output_prefix="Orchestrator function 'Main' failed: The UTF-16 size of the JSON-serialized "
        "payload must not exceed 16 KB.",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_replay_core(case: Case) -> None:
    history = [*_start(), *case.history, h.orchestrator_started(NOW)]
    state = OrchestratorState(
        is_done=case.is_done,
        actions=case.actions,
        custom_status=case.custom_status,
        schema_version=case.schema,
    )
    decisions = decide(
        history=history, orchestrator_name="Main", state=state, now=NOW, known=KNOWN, execution_id="e1"
    )
    assert decisions.status == case.expect_status
    events = [(h.event_type(e).name, e["EventId"], e.get("Name")) for e in decisions.new_events]
    if case.expect_output_prefix is None:
        assert events == case.expect_events
    else:
        assert (decisions.output or "").startswith(case.expect_output_prefix), decisions.output
        # A failed episode sends nothing out.
        assert decisions.activities == [] and decisions.timers == []
    if case.expect_timer_fire_at:
        assert [h.parse_timestamp(t.fire_at) for t in decisions.timers] == case.expect_timer_fire_at


def test_sub_orchestration_default_instance_id() -> None:
    state = OrchestratorState(is_done=False, actions=[sub()], schema_version=2)
    decisions = decide(
        history=_start(), orchestrator_name="Main", state=state, now=NOW, known=KNOWN, execution_id="e1"
    )
    assert [(w.task_id, w.instance_id) for w in decisions.sub_orchestrations] == [(0, "e1:0")]
    explicit = OrchestratorState(is_done=False, actions=[sub(instance_id="kid")], schema_version=2)
    decisions = decide(
        history=_start(), orchestrator_name="Main", state=explicit, now=NOW, known=KNOWN, execution_id="e1"
    )
    assert decisions.sub_orchestrations[0].instance_id == "kid"


def test_retry_timeout_stops_retrying_without_a_timer() -> None:
    state = OrchestratorState(is_done=False, actions=[retry(1000, 5, retryTimeoutInMilliseconds=30_000)])
    history = [*_start(), scheduled(0, at=T0), failed(0), h.orchestrator_started(NOW)]
    decisions = decide(history=history, orchestrator_name="Main", state=state, now=NOW, known=KNOWN)
    # A minute after the first attempt the 30 s budget is spent: the SDK is left to see the failure.
    assert decisions.timers == [] and decisions.activities == []
