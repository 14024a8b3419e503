"""A user's app and its 20 orchestration tests, written into pytester projects as a user has them."""

from __future__ import annotations

APP = '''
import json
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df

app = df.DFApp()


@app.activity_trigger(input_name="name")
def Hello(name: str) -> str:
    return f"Hello {name}"


@app.activity_trigger(input_name="request")
def Flaky(request: dict) -> str:
    """Fails until its attempt number (counted in a file) reaches request["succeed_at"]."""
    counter = Path(request["dir"]) / f"{request['key']}.count"
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    if attempt < request["succeed_at"]:
        raise RuntimeError(f"attempt {attempt} failed")
    return f"ok at attempt {attempt}"


@app.orchestration_trigger(context_name="context")
def FanOut(context):
    names = context.get_input()
    return (yield context.task_all([context.call_activity("Hello", n) for n in names]))


@app.orchestration_trigger(context_name="context")
def Reminders(context):
    """Waits on `count` timers of `minutes` each; returns the durable seconds that took."""
    request = context.get_input()
    began = context.current_utc_datetime
    for _ in range(request["count"]):
        yield context.create_timer(context.current_utc_datetime + timedelta(minutes=request["minutes"]))
    return (context.current_utc_datetime - began).total_seconds()


@app.orchestration_trigger(context_name="context")
def Approval(context):
    answer = yield context.wait_for_external_event("Approval")
    return f"answer: {answer}"


@app.orchestration_trigger(context_name="context")
def ApprovalOrTimeout(context):
    deadline = context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    answer = context.wait_for_external_event("Approval")
    winner = yield context.task_any([answer, deadline])
    if winner == answer:
        deadline.cancel()
        return f"answer: {answer.result}"
    return "timed out"


@app.entity_trigger(context_name="context")
def Counter(context):
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
    context.set_state(value)
    context.set_result(value)


@app.orchestration_trigger(context_name="context")
def Count(context):
    entity = df.EntityId("Counter", context.get_input())
    yield context.call_entity(entity, "add", 5)
    return (yield context.call_entity(entity, "add", 10))


@app.orchestration_trigger(context_name="context")
def Retry(context):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=60_000, max_number_of_attempts=3)
    return (yield context.call_activity_with_retry("Flaky", options, context.get_input()))


@app.orchestration_trigger(context_name="context")
def Parent(context):
    return (yield context.call_sub_orchestrator("FanOut", context.get_input()))


@app.orchestration_trigger(context_name="context")
def Countdown(context):
    n = context.get_input()
    if n > 0:
        context.continue_as_new(n - 1)
        return None
    return "liftoff"
'''

TESTS = """
import time
from datetime import timedelta

import azure.durable_functions as df
import pytest

from emulator.testing import assert_replays

COMPLETED = df.OrchestrationRuntimeStatus.Completed


def _wait_for_event(host, instance_id, kind):
    deadline = time.monotonic() + 30
    while not any(e["EventType"] == kind for e in host.history(instance_id)):
        assert time.monotonic() < deadline, f"no {kind} yet"
        time.sleep(0.02)


@pytest.mark.parametrize("size", [3, 10, 25, 50])
def test_fan_out(durable_host, size):
    names = [f"n{i}" for i in range(size)]
    status = durable_host.run_orchestration("FanOut", names)
    assert status.output == [f"Hello {n}" for n in names]


@pytest.mark.parametrize("minutes", [5, 60, 1440])
def test_timers_are_skipped(durable_host, minutes):
    status = durable_host.run_orchestration("Reminders", {"count": 2, "minutes": minutes}, skip_timers=True)
    assert status.output >= 2 * minutes * 60


def test_advance_time_fires_a_timer(durable_host):
    instance_id = durable_host.start_orchestration("Reminders", {"count": 1, "minutes": 30})
    _wait_for_event(durable_host, instance_id, "TimerCreated")
    durable_host.advance_time(timedelta(minutes=30))
    assert durable_host.wait_for(instance_id, timeout=15).runtime_status == COMPLETED


@pytest.mark.parametrize("answer", ["yes", "no"])
def test_an_external_event(durable_host, answer):
    instance_id = durable_host.start_orchestration("Approval")
    durable_host.raise_event(instance_id, "Approval", answer)
    assert durable_host.wait_for(instance_id).output == f"answer: {answer}"


def test_an_event_before_the_deadline(durable_host):
    instance_id = durable_host.start_orchestration("ApprovalOrTimeout")
    _wait_for_event(durable_host, instance_id, "TimerCreated")
    durable_host.raise_event(instance_id, "Approval", "quick")
    assert durable_host.wait_for(instance_id).output == "answer: quick"


def test_the_deadline_without_an_event(durable_host):
    status = durable_host.run_orchestration("ApprovalOrTimeout", skip_timers=True)
    assert status.output == "timed out"


def test_an_entity_called_from_an_orchestration(durable_host):
    assert durable_host.run_orchestration("Count", "from-orchestration").output == 15


def test_an_entity_signalled_by_the_client(durable_host, durable_client):
    entity = df.EntityId("Counter", "from-client")
    durable_host.call(durable_client.signal_entity(entity, "add", 7))
    deadline = time.monotonic() + 30
    while not durable_host.call(durable_client.read_entity_state(entity)).entity_exists:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert durable_host.call(durable_client.read_entity_state(entity)).entity_state == 7


def test_retries_until_the_activity_succeeds(durable_host, tmp_path):
    request = {"dir": str(tmp_path), "key": "ok", "succeed_at": 3}
    status = durable_host.run_orchestration("Retry", request, skip_timers=True)
    assert status.output == "ok at attempt 3"


def test_retries_give_up(durable_host, tmp_path):
    request = {"dir": str(tmp_path), "key": "never", "succeed_at": 99}
    status = durable_host.run_orchestration("Retry", request, skip_timers=True)
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Failed
    assert (tmp_path / "never.count").read_text() == "3"


def test_a_sub_orchestration(durable_host):
    assert durable_host.run_orchestration("Parent", ["x", "y"]).output == ["Hello x", "Hello y"]


def test_continue_as_new(durable_host):
    assert durable_host.run_orchestration("Countdown", 3).output == "liftoff"


def test_terminate(durable_host, durable_client):
    instance_id = durable_host.start_orchestration("Approval")
    durable_host.call(durable_client.terminate(instance_id, "not needed"))
    status = durable_host.wait_for(instance_id)
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Terminated


def test_the_history_replays(durable_host, tmp_path):
    instance_id = durable_host.run_orchestration("FanOut", ["r"]).instance_id
    saved = durable_host.save_history(instance_id, tmp_path / "fan_out.json")
    assert_replays(saved, script_root=durable_host.config.script_root)
"""

#: Records every process the session starts (asyncio's subprocesses go through Popen too).
PROCESS_LOG_CONFTEST = """
import os
import subprocess

_popen_init = subprocess.Popen.__init__


def _recording_init(self, args, *more, **options):
    with open(os.environ["PROCESS_LOG"], "a", encoding="utf-8") as log:
        log.write(repr(args) + "\\n")
    _popen_init(self, args, *more, **options)


subprocess.Popen.__init__ = _recording_init
"""
