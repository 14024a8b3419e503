"""``replay --task-hub``: instances in flight checked against changed code, the hub left untouched.

Instances of tests/apps/hub_replay_app are left waiting; a copy of the app with a changed
orchestrator (and one orchestrator removed) is "the new code" of a deploy. A second hub is made
of History and Instances rows as the real host writes them (tests/golden/*.rows.json).
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import pytest

from emulator.testing import DurableHost, DurableHosts, assert_hub_replays
from emulator.tools._hub_replay import Verdict
from tests.conftest import REPO_ROOT, TEST_APPS
from tests.test_offline_replay import SWAPPED_STEPS, variant_app

APP = TEST_APPS / "hub_replay_app"
GOLDEN = Path(__file__).resolve().parent / "golden"
CHANGED_STEP = 'request = yield context.call_activity("Prepare", context.get_input())  # CHANGED-STEP'
NEW_STEP = (
    'yield context.call_activity("Validate", context.get_input())\n'
    '    request = yield context.call_activity("Prepare", context.get_input())'
)
#: The instances the changed code breaks: Approvals (a sub-orchestration too) and the retired one.
BROKEN = {"approval-1", "approval-2", "parent-1-child", "retired-1"}


def changed_app(folder: Path) -> Path:
    """A copy of the app whose Approval validates first and without the Retired orchestrator."""
    shutil.copytree(APP, folder)
    source = (folder / "function_app.py").read_text()
    assert CHANGED_STEP in source
    source = source.replace(CHANGED_STEP, NEW_STEP)
    source = source[: source.index("# RETIRED-START")] + source[source.index("# RETIRED-END") :]
    (folder / "function_app.py").write_text(source)
    return folder


def replay_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "emulator", "replay", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=REPO_ROOT)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def snapshot(connection: str, hub: str) -> dict[str, Any]:
    """Every row (with its ETag), queue message (peeked) and blob (with its ETag) of the hub."""
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    state: dict[str, Any] = {}
    with TableServiceClient.from_connection_string(connection) as tables:
        for table in tables.list_tables():
            if table.name.lower().startswith(hub.lower()):
                client = tables.get_table_client(table.name)
                state[f"table {table.name}"] = sorted(
                    (json.dumps(dict(e), default=str, sort_keys=True), e.metadata["etag"])
                    for e in client.list_entities()
                )
    with QueueServiceClient.from_connection_string(connection) as queues:
        for queue in queues.list_queues(name_starts_with=hub.lower()):
            queue_client = queues.get_queue_client(queue.name)
            state[f"queue {queue.name}"] = sorted(
                (m.id, m.content, m.dequeue_count) for m in queue_client.peek_messages(max_messages=32)
            )
    with BlobServiceClient.from_connection_string(connection) as blobs:
        for container in blobs.list_containers(name_starts_with=hub.lower()):
            container_client = blobs.get_container_client(container.name)
            state[f"container {container.name}"] = sorted(
                (b.name, b.etag) for b in container_client.list_blobs()
            )
    assert any(key.startswith("table ") for key in state), f"no tables of {hub}"
    return state


# -- a hub written by the emulator ----------------------------------------------------------------


@pytest.fixture(scope="module")
def waiting_hub(durable_hosts: DurableHosts, storage_connection: str) -> Iterator[str]:
    """A task hub with instances left waiting for events, one completed, one entity; no host runs."""
    host: DurableHost = durable_hosts.start(APP)
    try:
        for instance_id in ("approval-1", "approval-2"):
            host.start_orchestration("Approval", instance_id, instance_id=instance_id)
        host.start_orchestration("Waiter", instance_id="waiter-1")
        host.start_orchestration("Waiter", instance_id="waiter-suspended")
        host.start_orchestration("Parent", "p", instance_id="parent-1")
        host.start_orchestration("Retired", instance_id="retired-1")
        host.start_orchestration("Quick", "q", instance_id="quick-1")
        host.call(host.client.signal_entity(df.EntityId("Counter", "tally"), "add", 1))
        assert host.wait_for("quick-1").runtime_status.value == "Completed"

        def waiting(instance_id: str, events: int) -> bool:
            return len(host.history(instance_id)) >= events

        for instance_id in ("approval-1", "approval-2", "parent-1-child"):
            # [OS ES TS OC] [OS TC OC]: the activity done, the event awaited.
            wait_until(lambda i=instance_id: waiting(i, 7), f"{instance_id} to wait")  # type: ignore[misc]
        for instance_id in ("waiter-1", "waiter-suspended", "retired-1", "parent-1"):
            wait_until(lambda i=instance_id: waiting(i, 3), f"{instance_id} to wait")  # type: ignore[misc]
        host.call(host.client.suspend("waiter-suspended", "for the test"))
        wait_until(
            lambda: host.get_status("waiter-suspended").runtime_status.value == "Suspended", "the suspension"
        )
        entity = df.EntityId("Counter", "tally")
        wait_until(lambda: host.call(host.client.read_entity_state(entity)).entity_exists, "the entity")
        time.sleep(0.5)  # the last episodes' Instances updates
    finally:
        durable_hosts.stop(host)
    yield host.hub_name


def test_the_original_code_replays_every_waiting_instance(waiting_hub: str, storage_connection: str) -> None:
    done = replay_cli("--task-hub", waiting_hub, "--script-root", APP, "--connection", storage_connection)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("OK: ") for line in lines) == 7, done.stdout
    assert (
        "OK: 'Waiter' (instance 'waiter-suspended'): all 2 episodes agree with the code (Suspended)." in lines
    )
    assert "NOT CHECKED: entity '@counter@tally'" in done.stdout
    assert "quick-1" not in done.stdout
    assert lines[-1].startswith(f"8 instances not finished in task hub '{waiting_hub}': 7 OK, 0 would break")


def test_changed_code_reports_exactly_the_instances_it_breaks(
    waiting_hub: str, storage_connection: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = changed_app(tmp_path / "app")
    before = snapshot(storage_connection, waiting_hub)
    # The connection as the host reads it: the app's AzureWebJobsStorage (here the test's variable).
    done = replay_cli("--task-hub", waiting_hub, "--script-root", app, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads(done.stdout)
    by_id = {item["instanceId"]: item for item in result["instances"]}
    assert {i for i, item in by_id.items() if item["result"] != "ok"} - {"@counter@tally"} == BROKEN
    assert by_id["@counter@tally"]["result"] == "entity"
    assert "quick-1" not in by_id
    approval = by_id["approval-1"]
    assert approval["result"] == "nondeterminism"
    assert approval["mismatch"]["episode"] == 1 and approval["mismatch"]["sequenceIds"] == [0]
    assert "    seq 0  history: TaskScheduled 'Prepare'" in approval["diff"]
    assert "           code:    TaskScheduled 'Validate'" in approval["diff"]
    assert by_id["retired-1"]["result"] == "missing-orchestrator"
    assert by_id["parent-1"]["result"] == by_id["waiter-1"]["result"] == "ok"
    assert by_id["waiter-suspended"]["runtimeStatus"] == "Suspended"
    assert result["counts"]["nondeterminism"] == 3 and result["counts"]["missing-orchestrator"] == 1

    text = replay_cli("--task-hub", waiting_hub, "--script-root", app, "--connection", storage_connection)
    assert text.returncode == 1
    assert "NONDETERMINISM in 'Approval' (instance 'approval-2') (Running, 2 episodes):" in text.stdout
    assert "MISSING ORCHESTRATOR: 'Retired' (instance 'retired-1', Running)" in text.stdout
    assert "4 would break (3 nondeterministic, 1 with the orchestrator missing" in text.stdout

    # The pytest helper says the same, and filters.
    with pytest.raises(AssertionError, match="NONDETERMINISM in 'Approval'"):
        assert_hub_replays(waiting_hub, script_root=app)
    assert assert_hub_replays(waiting_hub, script_root=app, instance_id_prefix="waiter").ok
    suspended = assert_hub_replays(waiting_hub, script_root=app, statuses=["Suspended"])
    assert [c.instance_id for c in suspended.instances] == ["waiter-suspended"]
    only_pending = replay_cli("--task-hub", waiting_hub, "--script-root", app, "--runtime-status", "Pending")
    assert only_pending.returncode == 0 and "0 instances not finished" in only_pending.stdout
    assert snapshot(storage_connection, waiting_hub) == before


def test_the_helper_passes_on_the_original_code(waiting_hub: str) -> None:
    check = assert_hub_replays(waiting_hub, script_root=APP)
    assert check.counts()["ok"] == 7 and check.counts()["entity"] == 1
    assert {c.instance_id for c in check.instances if c.verdict == Verdict.OK} >= {
        "parent-1-child",
        "waiter-1",
    }


def test_a_read_only_connection_is_enough(waiting_hub: str, storage_connection: str) -> None:
    """An account SAS that may only read and list tables and blobs: any write would be refused."""
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    from emulator.host._azurite import _parse_connection_string

    parts = _parse_connection_string(storage_connection)
    sas = generate_account_sas(
        parts["accountname"],
        parts["accountkey"],
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, list=True),
        datetime.now(timezone.utc) + timedelta(hours=1),
        services="bt",
    )
    read_only = (
        f"BlobEndpoint={parts['blobendpoint']};QueueEndpoint={parts['queueendpoint']};"
        f"TableEndpoint={parts['tableendpoint']};SharedAccessSignature={sas}"
    )
    done = replay_cli("--task-hub", waiting_hub, "--script-root", APP, "--connection", read_only)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 OK, 0 would break" in done.stdout


# -- a hub written by the real host ---------------------------------------------------------------


def _real_host_rows(instance_id: str, count: int | None) -> list[dict[str, Any]]:
    """The golden ProcessOrder rows as instance ``instance_id``, cut after ``count`` events."""
    from emulator.durable._history import parse_timestamp

    rows = json.loads((GOLDEN / "ProcessOrder.rows.json").read_text())
    events = [r for r in rows if r["RowKey"] != "sentinel"][:count]
    sentinel = next(r for r in rows if r["RowKey"] == "sentinel")
    cut = [*events, {k: v for k, v in sentinel.items() if k != "HistoryEventCount"}]
    for row in cut:
        row["PartitionKey"] = instance_id
        for key in ("_Timestamp", "CheckpointCompletedTimestamp"):
            if key in row:
                row[key] = parse_timestamp(row[key])
        if "OrchestrationInstance" in row:
            row["OrchestrationInstance"] = json.dumps(
                {"InstanceId": instance_id, "ExecutionId": row["ExecutionId"]}
            )
    return cut


@pytest.fixture(scope="module")
def real_host_hub(storage_connection: str) -> str:
    """ProcessOrder instances as the real Azure Storage provider leaves them: one completed, two in
    flight, one of them with an activity result in a large-message blob."""
    from datetime import datetime, timezone

    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient

    hub = f"RealHost{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)
    with TableServiceClient.from_connection_string(storage_connection) as tables:
        history = tables.create_table(f"{hub}History")
        instances = tables.create_table(f"{hub}Instances")
        for instance_id, count, status in (
            ("order-1001", None, "Completed"),
            ("order-2001", 13, "Running"),
            ("order-3001", 10, "Running"),
        ):
            rows = _real_host_rows(instance_id, count)
            if instance_id == "order-2001":
                result = next(r for r in rows if r.get("EventType") == "TaskCompleted")
                blob = f"{instance_id}/history-{result['RowKey']}-TaskCompleted-Result.json.gz"
                with BlobServiceClient.from_connection_string(storage_connection) as blobs:
                    container = blobs.create_container(f"{hub.lower()}-largemessages")
                    container.upload_blob(blob, gzip.compress(result["Result"].encode()))
                result["Result"] = ""
                result["ResultBlobName"] = blob
            history.submit_transaction([("upsert", row) for row in rows])
            instances.create_entity(
                {
                    "PartitionKey": instance_id,
                    "RowKey": "",
                    "Name": "ProcessOrder",
                    "Version": "",
                    "RuntimeStatus": status,
                    "CreatedTime": now,
                    "LastUpdatedTime": now,
                    "ExecutionId": rows[0]["ExecutionId"],
                    "TaskHubName": hub,
                    "Generation": 0,
                    **({"CompletedTime": now, "Output": "{}"} if status == "Completed" else {}),
                }
            )
    return hub


def test_a_hub_of_real_host_rows_is_checked(
    real_host_hub: str, storage_connection: str, tmp_path: Path
) -> None:
    before = snapshot(storage_connection, real_host_hub)
    done = replay_cli(
        "--task-hub", real_host_hub, "--script-root", REPO_ROOT, "--connection", storage_connection
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: 'ProcessOrder' (instance 'order-2001'): all 3 episodes agree" in done.stdout
    assert "OK: 'ProcessOrder' (instance 'order-3001'): all 2 episodes agree" in done.stdout
    assert "order-1001" not in done.stdout

    app = variant_app(tmp_path / "swapped", SWAPPED_STEPS)
    swapped = replay_cli(
        "--task-hub", real_host_hub, "--script-root", app, "--connection", storage_connection
    )
    assert swapped.returncode == 1, swapped.stdout + swapped.stderr
    assert swapped.stdout.count("NONDETERMINISM in 'ProcessOrder'") == 2
    assert "    seq 1  history: TaskScheduled 'NotifyCustomerActivity'" in swapped.stdout
    assert snapshot(storage_connection, real_host_hub) == before


# -- usage and connection errors ------------------------------------------------------------------

UNREACHABLE = ";".join(
    [
        "DefaultEndpointsProtocol=http",
        "AccountName=devstoreaccount1",
        "AccountKey=" + "A" * 86 + "==",
        *(f"{kind}Endpoint=http://127.0.0.1:1/devstoreaccount1" for kind in ("Blob", "Queue", "Table")),
    ]
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task-hub", "NoSuchHub0"], "does not exist in this storage account"),
        (["--task-hub", "bad-name!"], "should contain only alphanumeric characters"),
        (["--task-hub", "X1", "--connection", "NoSuchSetting"], "'NoSuchSetting' is not defined"),
        (["--task-hub", "XHub", "--connection", UNREACHABLE], "A storage request failed"),
        (["--task-hub", "XHub", "--connection", "Nonsense=1"], "connection string is not valid"),
        ([str(GOLDEN / "ProcessOrder.json"), "--task-hub", "X1"], "name saved histories"),
        ([], "name saved histories"),
    ],
)
def test_usage_and_connection_errors_exit_2_on_one_line(
    args: list[str], message: str, storage_connection: str
) -> None:
    done = replay_cli(*args, "--script-root", APP)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    # One line of ours (the app's own import may warn before it).
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        done.stderr.strip().splitlines()[-1]
    ], done.stderr
    assert "Traceback" not in done.stderr
