"""Timer, queue and blob triggers and storage bindings, end to end against Azurite.

The app under test (tests/apps/triggers_app) is an ordinary Core Tools app; its host.json keeps
polling fast (maxPollingInterval 0.5 s) and retries few (maxDequeueCount 3).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from emulator.app._app_index import format_function_listing
from emulator.functions._invocations import InvocationRecord
from emulator.functions.triggers.hostid import host_id
from emulator.functions.triggers.timer import ScheduleStatus
from emulator.testing import BackgroundHost
from tests.conftest import TEST_APPS, start_host
from tests.support import request

TRIGGERS_APP = TEST_APPS / "triggers_app"
T = TypeVar("T")


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def _seed_past_due_daily_cleanup(connection: str) -> None:
    """A status blob as a host that last ran DailyCleanup (02:30 daily) three days ago leaves it."""
    now = datetime.now().astimezone()
    last = (now - timedelta(days=3)).replace(hour=2, minute=30, second=0, microsecond=0)
    status = {
        "Last": last.isoformat(),
        "Next": (last + timedelta(days=1)).isoformat(),
        "LastUpdated": last.isoformat(),
    }
    name = f"timers/{host_id(TRIGGERS_APP.resolve())}/Host.Functions.DailyCleanup/status"
    with BlobServiceClient.from_connection_string(connection) as service:
        container = service.get_container_client("azure-webjobs-hosts")
        if not container.exists():
            container.create_container()
        container.upload_blob(name, json.dumps(status), overwrite=True)


@pytest.fixture(scope="module")
def triggers_host(storage_connection: str) -> Iterator[BackgroundHost]:
    _seed_past_due_daily_cleanup(storage_connection)
    host = start_host(TRIGGERS_APP, storage_connection)
    try:
        yield host
    finally:
        host.stop()


def _queue(connection: str, name: str) -> QueueClient:
    return QueueClient.from_connection_string(connection, name)


def _send(connection: str, queue_name: str, *texts: str, encode: bool = True) -> None:
    with _queue(connection, queue_name) as queue:
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        for text in texts:
            queue.send_message(base64.b64encode(text.encode()).decode() if encode else text)


def _peek(connection: str, queue_name: str) -> list[str]:
    """The messages' text as stored, [] when the queue does not exist."""
    with _queue(connection, queue_name) as queue:
        try:
            return [str(m.content) for m in queue.peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []


def _entities(connection: str, table: str, partition: str) -> list[dict[str, Any]]:
    with TableServiceClient.from_connection_string(connection) as service:
        client = service.get_table_client(table)
        try:
            return [
                dict(e) for e in client.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
            ]
        except ResourceNotFoundError:
            return []


def _plain(value: Any) -> Any:
    """JSON integers are stored as Edm.Int64, which the SDK reads back wrapped."""
    return getattr(value, "value", value)


def _max_overlap(records: list[InvocationRecord]) -> int:
    events = []
    for record in records:
        assert record.ended is not None
        events += [(record.started, 1), (record.ended, -1)]
    running = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        running += delta
        peak = max(peak, running)
    return peak


def _instance_status(host: BackgroundHost, instance_id: str) -> dict[str, Any] | None:
    reply = request("GET", f"{host.base_url}/runtime/webhooks/durabletask/instances/{instance_id}")
    if reply.status != 200:
        return None
    status: dict[str, Any] = reply.json()
    return status if status["runtimeStatus"] not in ("Pending", "Running") else None


# -- timers --------------------------------------------------------------------------------------


def test_a_timer_fires_on_a_seconds_schedule(triggers_host: BackgroundHost) -> None:
    def two_runs() -> list[InvocationRecord] | None:
        runs = [r for r in triggers_host.host.invocations.records("Heartbeat") if r.ended is not None]
        return runs if len(runs) >= 2 else None

    runs = wait_until(two_runs, "two Heartbeat runs")
    assert all(r.succeeded for r in runs)
    assert all(r.reason.startswith("Timer fired at ") for r in runs)
    # A second run within the wait can only come from the seconds field of the schedule.
    assert len({r.reason for r in runs}) == len(runs)


def test_a_run_on_startup_timer_starts_an_orchestration_that_completes(triggers_host: BackgroundHost) -> None:
    status = wait_until(lambda: _instance_status(triggers_host, "nightly-report"), "nightly-report to finish")
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == "reports/nightly-report.json"
    # The activity wrote the report through its blob output binding ({report.id} from its input) ...
    reply = request("GET", f"{triggers_host.base_url}/api/reports/nightly-report")
    assert reply.status == 200
    assert reply.json() == {"id": "nightly-report", "source": "timer"}
    # ... and an HTTP function reads it back through a blob input binding with a route parameter.
    assert request("GET", f"{triggers_host.base_url}/api/reports/none-such").status == 404
    (startup_run,) = triggers_host.host.invocations.records("NightlyReport")
    assert startup_run.succeeded


def test_a_timer_that_missed_its_schedule_runs_past_due_at_startup(
    triggers_host: BackgroundHost, storage_connection: str
) -> None:
    rows = wait_until(
        lambda: _entities(storage_connection, "TimerRuns", "DailyCleanup"), "DailyCleanup's row"
    )
    assert len(rows) == 1 and rows[0]["PastDue"] is True
    # The status blob now records this run, so the next start is not past due again.
    name = f"timers/{host_id(TRIGGERS_APP.resolve())}/Host.Functions.DailyCleanup/status"
    with BlobServiceClient.from_connection_string(storage_connection) as service:
        blob = service.get_blob_client("azure-webjobs-hosts", name)
        status = json.loads(blob.download_blob().readall())
    # Newtonsoft trims the fraction's trailing zeros, which Python 3.10's fromisoformat refuses.
    recorded = ScheduleStatus.from_json(status)
    assert recorded.last is not None and recorded.last > datetime.now().astimezone() - timedelta(minutes=5)
    assert recorded.next is not None and recorded.next > datetime.now().astimezone()


# -- queues --------------------------------------------------------------------------------------


def test_a_queue_trigger_processes_200_messages_once_within_the_configured_concurrency(
    triggers_host: BackgroundHost, storage_connection: str
) -> None:
    ids = [f"bulk-{i:03d}" for i in range(200)]
    _send(storage_connection, "orders", *ids)
    rows = wait_until(
        lambda: (lambda rs: rs if len(rs) == 200 else None)(
            [r for r in _entities(storage_connection, "Orders", "orders") if r["RowKey"].startswith("bulk-")]
        ),
        "200 order rows",
        timeout=60,
    )
    # Each row is an insert: a second run of a message would have failed on the existing row.
    assert sorted(r["RowKey"] for r in rows) == ids
    assert {_plain(r["DequeueCount"]) for r in rows} == {1}
    runs = triggers_host.host.invocations.records("ProcessOrder")
    assert all(r.succeeded for r in runs)
    # batchSize 8 + newBatchThreshold 4 in host.json.
    assert 1 < _max_overlap(runs) <= 8 + 4
    assert _peek(storage_connection, "orders-poison") == []


def test_a_message_that_keeps_failing_moves_to_the_poison_queue(
    triggers_host: BackgroundHost, storage_connection: str
) -> None:
    _send(storage_connection, "fragile", "order-13")
    _send(storage_connection, "fragile", "not base64!", encode=False)

    def poisoned() -> list[str] | None:
        texts = _peek(storage_connection, "fragile-poison")
        return texts if len(texts) == 2 else None

    texts = wait_until(poisoned, "two messages in fragile-poison")
    assert sorted(texts) == sorted([base64.b64encode(b"order-13").decode(), "not base64!"])
    # maxDequeueCount 3: three failed runs; the undecodable message never reached the function.
    runs = triggers_host.host.invocations.records("FragileConsumer")
    assert len(runs) == 3 and not any(r.succeeded for r in runs)
    assert all("cannot process 'order-13'" in (r.error or "") for r in runs)
    assert _peek(storage_connection, "fragile") == []


def test_a_queue_trigger_starts_an_orchestration(
    triggers_host: BackgroundHost, storage_connection: str
) -> None:
    _send(storage_connection, "report-requests", json.dumps({"id": "queued-report-1"}))
    status = wait_until(
        lambda: _instance_status(triggers_host, "queued-report-1"), "queued-report-1 to finish"
    )
    assert status["runtimeStatus"] == "Completed"
    assert request("GET", f"{triggers_host.base_url}/api/reports/queued-report-1").json() == {
        "id": "queued-report-1",
        "source": "queue",
    }


def test_http_functions_write_queue_messages_and_read_table_rows(triggers_host: BackgroundHost) -> None:
    reply = request("POST", f"{triggers_host.base_url}/api/orders", {"ids": ["http-a", "http-b"]})
    assert reply.status == 202 and reply.json() == {"queued": 2}

    def order(order_id: str) -> dict[str, Any] | None:
        found = request("GET", f"{triggers_host.base_url}/api/orders/{order_id}")
        return found.json() if found.status == 200 else None

    # The list became two messages; ProcessOrder wrote a row for each; the table input reads it.
    for order_id in ("http-a", "http-b"):
        row = wait_until(functools.partial(order, order_id), f"order {order_id}")
        assert row["PartitionKey"] == "orders" and row["RowKey"] == order_id
        assert row["DequeueCount"] == 1 and "Timestamp" in row
    assert request("GET", f"{triggers_host.base_url}/api/orders/none-such").status == 404


# -- blobs ---------------------------------------------------------------------------------------


def test_a_blob_trigger_reads_the_blob_and_writes_a_table_row(
    triggers_host: BackgroundHost, storage_connection: str
) -> None:
    document = json.dumps({"items": [5, 10, 20]}).encode()
    with BlobServiceClient.from_connection_string(storage_connection) as service:
        container = service.get_container_client("uploads")
        if not container.exists():
            container.create_container()
        container.upload_blob("invoice-7.json", document, overwrite=True)
        container.upload_blob("notes.txt", b"not matched by uploads/{name}.json", overwrite=True)

    rows = wait_until(
        lambda: [
            r for r in _entities(storage_connection, "Uploads", "uploads") if r["RowKey"] == "invoice-7"
        ],
        "the Uploads row",
    )
    assert rows[0]["Blob"] == "uploads/invoice-7.json"
    assert _plain(rows[0]["Length"]) == len(document)
    assert _plain(rows[0]["Total"]) == 35
    # The row is written by the invocation's output binding, just before its record is kept.
    runs = wait_until(lambda: triggers_host.host.invocations.records("IndexUpload"), "the invocation record")
    assert (
        len(runs) == 1 and runs[0].reason == "New blob detected(LogsAndContainerScan): uploads/invoice-7.json"
    )
    # A receipt per blob version keeps it from triggering again, also after a restart.
    prefix = f"blobreceipts/{host_id(TRIGGERS_APP.resolve())}/Host.Functions.IndexUpload/"
    with BlobServiceClient.from_connection_string(storage_connection) as service:
        receipts = [b.name for b in service.get_container_client("azure-webjobs-hosts").list_blobs(prefix)]
    assert len(receipts) == 1 and receipts[0].endswith("/uploads/invoice-7.json")


# -- services that are not emulated --------------------------------------------------------------


def test_a_twilio_output_is_recorded_not_sent(triggers_host: BackgroundHost) -> None:
    reply = request(
        "POST", f"{triggers_host.base_url}/api/notify", {"order": "A-17", "phone": "+15557654321"}
    )
    assert reply.status == 202
    (record,) = [r for r in triggers_host.host.recorded_outputs if r.function_name == "NotifyCustomer"]
    assert record.binding_type == "twilioSms" and record.binding_name == "sms"
    assert record.json() == {"body": "Order A-17 has shipped.", "to": "+15557654321"}
    assert record.binding["fromNumber"] == "+15550001111"
    (run,) = triggers_host.host.invocations.records("NotifyCustomer")
    assert record.invocation_id == run.invocation_id


def test_an_unemulated_trigger_is_listed_and_the_rest_of_the_app_runs(triggers_host: BackgroundHost) -> None:
    host = triggers_host.host
    assert host.index is not None and host.triggers is not None
    listing = format_function_listing(host.index, host.base_url, "api")
    assert "\tInvoiceConsumer: serviceBusTrigger (not emulated)" in listing
    assert "\tHeartbeat: timerTrigger\n" in listing
    assert list(host.triggers.not_emulated) == ["InvoiceConsumer"]
    assert host.triggers.errors == {}
    assert host.invocations.records("InvoiceConsumer") == []
