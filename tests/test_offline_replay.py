"""Offline replay: golden histories of the seed app against its code, and changed code against them.

The golden histories in tests/golden were recorded from real runs (``python -m tests.golden.record``).
Changed orchestrators are test-local variants of the seed app's, written to a temp folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.testing import DurableHost, DurableHosts, assert_replays, replay_history
from emulator.tools._history_files import load_history
from emulator.tools._recorded_episodes import HistoryFileError
from tests.conftest import REPO_ROOT
from tests.support import request

GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_FILES = sorted(GOLDEN.glob("*.json"))

_ACTIVITIES = (
    "ProcessCustomerActivity",
    "AuditActivity",
    "GetOrderDetailsActivity",
    "NotifyCustomerActivity",
    "UpdateInventoryActivity",
    "ScheduleShippingActivity",
    "CompleteOrderActivity",
)


def variant_app(folder: Path, orchestrator: str) -> Path:
    """An app with the seed app's activities (stubs) and one changed orchestrator."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "host.json").write_text('{"version": "2.0"}')
    stubs = "\n".join(
        f'@app.activity_trigger(input_name="value")\ndef {name}(value):\n    return value\n\n'
        for name in _ACTIVITIES
    )
    source = "from datetime import timedelta\n\nimport azure.durable_functions as df\n\napp = df.DFApp()\n\n"
    source += stubs + textwrap.dedent(orchestrator)
    (folder / "function_app.py").write_text(source)
    return folder


def _replay_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "emulator", "replay", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)


# -- the golden histories ------------------------------------------------------------------------


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.name)
def test_golden_histories_replay_against_the_seed_app(path: Path) -> None:
    report = assert_replays(path, script_root=REPO_ROOT)
    assert report.replayed == report.episodes >= 2
    assert report.orchestrator in ("ProcessCustomers", "ProcessOrder")


def test_the_golden_set_covers_every_input_shape() -> None:
    sources = {replay_history(p, script_root=REPO_ROOT).source for p in GOLDEN_FILES}
    assert sources == {"history events", "History table rows", "status API historyEvents"}


def test_the_command_line_agrees_with_exit_status_0() -> None:
    done = _replay_cli(
        GOLDEN / "ProcessCustomers.json", GOLDEN / "ProcessOrder.rows.json", "--script-root", REPO_ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("OK: ") == 2


# -- changed code --------------------------------------------------------------------------------

RENAMED_ACTIVITY = """
@app.orchestration_trigger(context_name="context")
def ProcessCustomers(context):
    ids = context.get_input()
    names = ["AuditActivity" if i == 1 else "ProcessCustomerActivity" for i in range(len(ids))]
    return (yield context.task_all([context.call_activity(n, c) for n, c in zip(names, ids)]))
"""

ONE_AT_A_TIME = """
@app.orchestration_trigger(context_name="context")
def ProcessCustomers(context):
    results = []
    for customer in context.get_input():
        results.append((yield context.call_activity("ProcessCustomerActivity", customer)))
    return results
"""

TIMER_FIRST = """
@app.orchestration_trigger(context_name="context")
def ProcessCustomers(context):
    yield context.create_timer(context.current_utc_datetime + timedelta(minutes=1))
    tasks = [context.call_activity("ProcessCustomerActivity", c) for c in context.get_input()]
    return (yield context.task_all(tasks))
"""

NEW_OUTPUT = """
@app.orchestration_trigger(context_name="context")
def ProcessCustomers(context):
    tasks = [context.call_activity("ProcessCustomerActivity", c) for c in context.get_input()]
    results = yield context.task_all(tasks)
    return [r.upper() for r in results]
"""

RAISES = """
@app.orchestration_trigger(context_name="context")
def ProcessCustomers(context):
    raise RuntimeError("no customers today")
"""


@pytest.mark.parametrize(
    ("variant", "episode", "lines"),
    [
        pytest.param(
            RENAMED_ACTIVITY,
            1,
            [
                "    seq 1  history: TaskScheduled 'ProcessCustomerActivity'",
                "           code:    TaskScheduled 'AuditActivity'",
                "    (2 other decisions of this episode agree)",
                "    status: Running in both",
            ],
            id="renamed-activity",
        ),
        pytest.param(
            ONE_AT_A_TIME,
            1,
            [
                "    seq 1  history: TaskScheduled 'ProcessCustomerActivity'",
                "           code:    (nothing)",
                "    seq 2  history: TaskScheduled 'ProcessCustomerActivity'",
            ],
            id="sequential-instead-of-fan-out",
        ),
        pytest.param(
            TIMER_FIRST,
            1,
            [
                "    seq 0  history: TaskScheduled 'ProcessCustomerActivity'",
                "           code:    TimerCreated (fires at 2026-11-28T14:07:49.2283060Z)",
            ],
            id="timer-added",
        ),
        pytest.param(
            NEW_OUTPUT,
            3,
            [
                '    status   history: Completed: ["Processed customer: alice","Processed customer: bob",'
                '"Processed customer: carol"]',
                '             code:    Completed: ["PROCESSED CUSTOMER: ALICE","PROCESSED CUSTOMER: BOB",'
                '"PROCESSED CUSTOMER: CAROL"]',
            ],
            id="different-output",
        ),
        pytest.param(
            RAISES,
            1,
            [
                "           code:    (nothing)",
                "    status   history: Running",
                "             code:    Failed: Orchestrator function 'ProcessCustomers' failed: "
                "no customers today",
            ],
            id="orchestrator-raises",
        ),
    ],
)
def test_a_changed_orchestrator_is_reported_where_it_first_differs(
    variant: str, episode: int, lines: list[str], tmp_path: Path
) -> None:
    app = variant_app(tmp_path / "app", variant)
    report = replay_history(GOLDEN / "ProcessCustomers.json", script_root=app)
    assert not report.ok
    assert report.mismatch is not None and report.mismatch.number == episode
    text = report.format()
    assert text.startswith("NONDETERMINISM in 'ProcessCustomers' (instance '")
    assert f"  episode {episode} of 3, orchestration time " in text
    body = text.splitlines()
    for line in lines:
        assert line in body, f"{line!r} not in\n{text}"
    with pytest.raises(AssertionError, match="NONDETERMINISM"):
        assert_replays(GOLDEN / "ProcessCustomers.json", script_root=app)


def test_the_command_line_prints_the_diff_with_exit_status_1(tmp_path: Path) -> None:
    app = variant_app(tmp_path / "app", RENAMED_ACTIVITY)
    done = _replay_cli(GOLDEN / "ProcessCustomers.json", "--script-root", app)
    assert done.returncode == 1, done.stderr
    assert "code:    TaskScheduled 'AuditActivity'" in done.stdout
    assert "episodes 2-3 were not replayed" in done.stdout


SWAPPED_STEPS = """
@app.orchestration_trigger(context_name="context")
def ProcessOrder(context):
    order = yield context.call_activity("GetOrderDetailsActivity", context.instance_id)
    yield context.task_all([
        context.call_activity("UpdateInventoryActivity", order),
        context.call_activity("NotifyCustomerActivity", order),
        context.call_activity("ScheduleShippingActivity", order),
    ])
    status = yield context.call_activity("CompleteOrderActivity", context.instance_id)
    return {"orderId": context.instance_id, "status": status}
"""


def test_reordered_parallel_steps_show_in_full_histories_only(tmp_path: Path) -> None:
    app = variant_app(tmp_path / "app", SWAPPED_STEPS)
    for full in ("ProcessOrder.json", "ProcessOrder.rows.json"):
        report = replay_history(GOLDEN / full, script_root=app)
        assert report.mismatch is not None and report.mismatch.differing_ids() == [1, 2], full
    # The status API's history does not say in which order tasks were scheduled together.
    status_report = replay_history(GOLDEN / "ProcessOrder.status.json", script_root=app)
    assert status_report.mismatch is not None
    assert status_report.mismatch.differing_ids() == []
    assert status_report.mismatch.outcome_differs  # the variant returns a smaller object


def test_a_status_api_history_reports_reconstructed_ids(tmp_path: Path) -> None:
    app = variant_app(tmp_path / "app", RENAMED_ACTIVITY)
    report = replay_history(GOLDEN / "ProcessCustomers.status.json", script_root=app)
    assert report.mismatch is not None and report.mismatch.ids_reconstructed
    assert "code:    TaskScheduled 'AuditActivity'" in report.format()
    assert "sequence ids" in report.format()


# -- input shapes --------------------------------------------------------------------------------


def _golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


def test_event_types_may_be_numbers() -> None:
    from emulator.durable._history import EventType

    events = _golden("ProcessOrder.json")
    for event in events:
        event["EventType"] = int(EventType[event["EventType"]])
    assert replay_history(events, script_root=REPO_ROOT).ok


def test_a_full_history_in_an_object_keeps_its_sequence_ids() -> None:
    report = replay_history({"historyEvents": _golden("ProcessOrder.json")}, script_root=REPO_ROOT)
    assert report.ok and report.source == "history events"


def test_table_exports_may_carry_odata_annotations_and_a_wrapper() -> None:
    rows = _golden("ProcessOrder.rows.json")
    for row in rows:
        row["odata.etag"] = "W/\"datetime'2024-01-01T00%3A00%3A00Z'\""
        row["Timestamp"] = "2024-01-01T00:00:00Z"
        row["_Timestamp@odata.type"] = "Edm.DateTime"
    assert replay_history({"value": rows}, script_root=REPO_ROOT).ok


def test_a_table_export_of_several_instances_needs_an_instance_id(tmp_path: Path) -> None:
    rows = _golden("ProcessOrder.rows.json")
    other = [{**row, "PartitionKey": "order-2"} for row in rows]
    with pytest.raises(HistoryFileError, match="instance-id"):
        load_history(rows + other)
    assert load_history(rows + other, instance_id="order-1001").instance_id == "order-1001"
    export = tmp_path / "export.json"
    export.write_text(json.dumps(rows + other))
    assert _replay_cli(export, "--script-root", REPO_ROOT).returncode == 2
    assert _replay_cli(export, "--script-root", REPO_ROOT, "--instance-id", "order-2").returncode == 0


def test_rows_past_the_committed_count_are_not_history() -> None:
    rows = _golden("ProcessOrder.rows.json")
    sentinel = next(r for r in rows if r["RowKey"] == "sentinel")
    sentinel["HistoryEventCount"] = 4  # the first episode only
    saved = load_history(rows)
    assert len(saved.episodes) == 1
    assert replay_history(rows, script_root=REPO_ROOT).ok


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"something": []}, "Expected a list of history events"),
        ([{"EventType": "Nonsense", "Timestamp": "2024-01-01T00:00:00Z", "EventId": 1}], "Unknown EventType"),
        (
            [{"EventType": "TaskScheduled", "EventId": 0, "Timestamp": "2024-01-01T00:00:00Z"}],
            "no ExecutionStarted",
        ),
        ("text", "Expected a JSON list"),
    ],
)
def test_inputs_that_are_not_histories_are_refused(data: Any, message: str) -> None:
    with pytest.raises(HistoryFileError, match=message):
        load_history(data)


def test_the_command_line_refuses_unreadable_files_with_exit_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    done = _replay_cli(bad, "--script-root", REPO_ROOT)
    assert done.returncode == 2
    assert "is not JSON" in done.stderr


# -- fresh histories of every orchestration feature ----------------------------------------------

FEATURES_APP = REPO_ROOT / "tests" / "apps" / "orchestration_features"


@pytest.fixture(scope="module")
def features_on_own_hub(durable_hosts: DurableHosts) -> Iterator[DurableHost]:
    # A task hub of its own: other tests start and stop hosts on the app's hub.
    host = durable_hosts.start(FEATURES_APP)
    try:
        yield host
    finally:
        durable_hosts.stop(host)


@pytest.mark.parametrize(
    ("name", "value", "event"),
    [
        ("RetryActivity", {"key": "replay-retry", "failures": 1}, None),
        ("Parent", 2, None),
        ("Sleeper", {"count": 2, "minutes": 1}, None),
        ("Counter", {"n": 0, "until": 3}, None),
        ("AnyAndAll", None, None),
        ("CustomTypes", None, None),
        ("Approval", {"minutes": 60}, "Approval"),
    ],
)
def test_fresh_histories_replay_in_every_shape(
    name: str, value: Any, event: str | None, features_on_own_hub: DurableHost
) -> None:
    host = features_on_own_hub
    instance_id = host.start_orchestration(name, value)
    if event is not None:
        host.raise_event(instance_id, event, "yes")
    status = host.wait_for(instance_id, skip_timers=True)
    assert status.runtime_status.value == "Completed", status.output
    assert_replays(host.history(instance_id), script_root=FEATURES_APP)
    query = "showHistory=true&showHistoryOutput=true&showInput=true"
    reply = request("GET", f"{host.base_url}/runtime/webhooks/durabletask/instances/{instance_id}?{query}")
    assert_replays(reply.json(), script_root=FEATURES_APP)
