"""The seed app end to end: HTTP starter -> orchestrations -> activities -> Azurite, as a user drives it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from emulator.testing import BackgroundHost
from tests.support import request, wait_for_status


def _start(host: BackgroundHost, name: str, body: Any = None) -> dict[str, Any]:
    reply = request("POST", f"{host.base_url}/api/orchestrators/{name}", body)
    assert reply.status == 202, reply.body
    payload: dict[str, Any] = reply.json()
    assert reply.headers["Location"] == payload["statusQueryGetUri"]
    return payload


def _history_rows(connection: str, hub: str, instance_id: str) -> list[dict[str, Any]]:
    with TableServiceClient.from_connection_string(connection) as service:
        table = service.get_table_client(f"{hub}History")
        return [dict(e) for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": instance_id})]


def _instance_row(connection: str, hub: str, instance_id: str) -> dict[str, Any]:
    with TableServiceClient.from_connection_string(connection) as service:
        return dict(service.get_table_client(f"{hub}Instances").get_entity(instance_id, ""))


def test_process_customers_fans_out_concurrently_and_fans_in_in_order(
    seed_host: BackgroundHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCESS_CUSTOMER_DELAY_SECONDS", "1")
    started = _start(seed_host, "ProcessCustomers")
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == [f"Processed customer: cust{i}" for i in range(1, 6)]

    runs = [
        r
        for r in seed_host.host.invocations.records("ProcessCustomerActivity")
        if r.instance_id == started["id"]
    ]
    assert len(runs) == 5 and all(r.succeeded for r in runs)
    assert all(r.ended is not None and (r.ended - r.started).total_seconds() >= 0.99 for r in runs)
    # Every activity started before any of them ended: the five one-second waits overlapped.
    assert max(r.started for r in runs) < min(r.ended for r in runs if r.ended is not None)


def test_process_customers_dynamic_fans_out_over_a_list_from_an_activity(
    seed_host: BackgroundHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCESS_CUSTOMER_DELAY_SECONDS", "0.02")
    started = _start(seed_host, "ProcessCustomersDynamic", {"count": 50})
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == [f"Processed customer: cust{i}" for i in range(1, 51)]


def test_process_order_runs_its_steps_in_dependency_order(
    seed_host: BackgroundHost, storage_connection: str
) -> None:
    started = _start(seed_host, "ProcessOrder")
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"]["status"] == "Completed"

    rows = sorted(_history_rows(storage_connection, "SeedHub", started["id"]), key=lambda r: r["RowKey"])
    rows = [r for r in rows if r["RowKey"] != "sentinel"]
    position = {
        (r["EventType"], r.get("Name"), r.get("EventId"), r.get("TaskScheduledId")): i
        for i, r in enumerate(rows)
    }
    scheduled = {
        r["Name"]: (i, r["EventId"]) for i, r in enumerate(rows) if r["EventType"] == "TaskScheduled"
    }
    completed_at = {r["TaskScheduledId"]: i for i, r in enumerate(rows) if r["EventType"] == "TaskCompleted"}
    assert position  # the history is there
    details_done = completed_at[scheduled["GetOrderDetailsActivity"][1]]
    middle = ["NotifyCustomerActivity", "UpdateInventoryActivity", "ScheduleShippingActivity"]
    assert all(scheduled[name][0] > details_done for name in middle)
    assert scheduled["CompleteOrderActivity"][0] > max(completed_at[scheduled[name][1]] for name in middle)

    # The activities did their work in Azure Table storage.
    with TableServiceClient.from_connection_string(storage_connection) as service:
        order = service.get_table_client("orders").get_entity("orders", started["id"])
    assert order["Status"] == "Completed"


def test_history_and_instances_rows_follow_the_azure_storage_provider_schema(
    seed_host: BackgroundHost, storage_connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCESS_CUSTOMER_DELAY_SECONDS", "0")
    started = _start(seed_host, "ProcessCustomers", ["x", "y"])
    wait_for_status(started["statusQueryGetUri"])
    rows = _history_rows(storage_connection, "SeedHub", started["id"])
    sentinel = [r for r in rows if r["RowKey"] == "sentinel"]
    events = sorted((r for r in rows if r["RowKey"] != "sentinel"), key=lambda r: r["RowKey"])

    assert len(sentinel) == 1 and sentinel[0]["ExecutionId"] == events[0]["ExecutionId"]
    assert [r["RowKey"] for r in events] == [f"{i:016X}" for i in range(len(events))]
    assert all(re.fullmatch(r"[0-9A-F]{16}", r["RowKey"]) for r in events)
    kinds = [r["EventType"] for r in events]
    assert kinds[:2] == ["OrchestratorStarted", "ExecutionStarted"]
    assert kinds[-2:] == ["ExecutionCompleted", "OrchestratorCompleted"]
    assert all(r["ExecutionId"] == sentinel[0]["ExecutionId"] for r in events)
    scheduled_ids = sorted(r["EventId"] for r in events if r["EventType"] == "TaskScheduled")
    completed_links = sorted(r["TaskScheduledId"] for r in events if r["EventType"] == "TaskCompleted")
    assert scheduled_ids == completed_links == [0, 1]
    assert all(
        r["EventId"] == -1 for r in events if r["EventType"] in ("TaskCompleted", "OrchestratorStarted")
    )
    finished = next(r for r in events if r["EventType"] == "ExecutionCompleted")
    assert finished["OrchestrationStatus"] == "Completed" and finished["EventId"] == 2

    instance = _instance_row(storage_connection, "SeedHub", started["id"])
    assert instance["RuntimeStatus"] == "Completed"
    assert instance["Name"] == "ProcessCustomers"
    assert instance["Output"] == '["Processed customer: x","Processed customer: y"]'
    assert instance["ExecutionId"] == sentinel[0]["ExecutionId"]


def test_orchestrator_exception_fails_the_instance_with_the_hosts_output(errors_host: BackgroundHost) -> None:
    reply = request("POST", f"{errors_host.base_url}/api/start/RaisesAfterActivity")
    assert reply.status == 202
    status = wait_for_status(reply.json()["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Failed"
    assert (
        status["output"] == "Orchestrator function 'RaisesAfterActivity' failed: the order total is negative"
    )
    # returnInternalServerErrorOnFailure turns the same answer into a 500.
    failed = request("GET", reply.json()["statusQueryGetUri"] + "&returnInternalServerErrorOnFailure=true")
    assert failed.status == 500 and failed.json()["runtimeStatus"] == "Failed"


def test_activity_exception_can_be_caught_by_the_orchestrator(errors_host: BackgroundHost) -> None:
    reply = request("POST", f"{errors_host.base_url}/api/start/HandlesActivityFailure")
    status = wait_for_status(reply.json()["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"]["then"] == "recovered"
    assert status["output"]["caught"].startswith("Activity function 'Explode' failed: KeyError:")
    assert "cannot handle bad input" in status["output"]["caught"]


def test_starting_an_unknown_orchestrator_is_a_400_for_the_client_and_a_500_for_the_caller(
    seed_host: BackgroundHost,
) -> None:
    # The SDK client calls the host's RPC endpoint, which rejects the name with the real 400...
    rpc = request(
        "POST", f"http://127.0.0.1:{seed_host.host.options.port}/durabletask/orchestrators/NoSuchThing"
    )
    assert rpc.status == 400
    assert rpc.json()["ExceptionMessage"] == (
        "The function 'NoSuchThing' doesn't exist, is disabled, or is not an orchestrator function. "
        "Additional info: The following are the known orchestrator functions: "
        "'ProcessCustomers', 'ProcessCustomersDynamic', 'ProcessOrder'."
    )
    # ...the SDK raises it inside the starter, and the starter's caller gets an unhandled-error 500.
    reply = request("POST", f"{seed_host.base_url}/api/orchestrators/NoSuchThing")
    assert reply.status == 500
    assert reply.body == b""
    failures = [r for r in seed_host.host.invocations.records("http_start") if not r.succeeded]
    assert failures and "doesn't exist" in (failures[-1].error or "")
    # The host keeps serving.
    after = _start(seed_host, "ProcessCustomers", [])
    assert wait_for_status(after["statusQueryGetUri"])["output"] == []


def test_status_of_an_unknown_instance_is_404(seed_host: BackgroundHost) -> None:
    reply = request("GET", f"{seed_host.base_url}/runtime/webhooks/durabletask/instances/not-there")
    assert reply.status == 404


def test_large_inputs_and_results_are_offloaded_to_blobs_and_come_back_intact(
    seed_host: BackgroundHost, storage_connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCESS_CUSTOMER_DELAY_SECONDS", "0")
    # Each id makes a ~40,000-character activity input and result: over the 64 KB queue message
    # and table property limits, so both go through the large-message blob container.
    ids = ["a" * 40_000, "b" * 40_000]
    started = _start(seed_host, "ProcessCustomers", ids)
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == [f"Processed customer: {i}" for i in ids]
    rows = _history_rows(storage_connection, "SeedHub", started["id"])
    completed = [r for r in rows if r.get("EventType") == "TaskCompleted"]
    assert completed and all(r["Result"] == "" and r["ResultBlobName"] for r in completed)
    instance = _instance_row(storage_connection, "SeedHub", started["id"])
    assert instance["Output"] == "" and instance["OutputBlobName"]


def test_starter_rejects_a_body_that_is_not_json_and_starts_nothing(seed_host: BackgroundHost) -> None:
    reply = request("POST", f"{seed_host.base_url}/api/orchestrators/ProcessCustomers", raw=b"{not json")
    assert reply.status == 400
    assert "not valid JSON" in reply.body.decode()


@pytest.mark.parametrize(
    ("instance_id", "message"),
    [
        ("@entity", "instanceId (Parameter 'Orchestration instance ids must not start with @.')"),
        ("x" * 257, "Instance ID lengths must not exceed 256 characters."),
    ],
)
def test_start_with_an_invalid_instance_id_is_rejected_with_the_hosts_message(
    seed_host: BackgroundHost, instance_id: str, message: str
) -> None:
    url = f"{seed_host.base_url}/runtime/webhooks/durabletask/orchestrators/ProcessCustomers/{instance_id}"
    reply = request("POST", url)
    assert reply.status == 400
    assert reply.json()["ExceptionMessage"] == message
    assert reply.json()["Message"] == "One or more of the arguments submitted is incorrect"


def test_webhook_start_with_a_chosen_id_refuses_a_duplicate_while_running(
    seed_host: BackgroundHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCESS_CUSTOMER_DELAY_SECONDS", "1")
    url = f"{seed_host.base_url}/runtime/webhooks/durabletask/orchestrators/ProcessCustomers/fixed-id-1"
    first = request("POST", url, json.dumps(["p"]))  # what the Python client posts
    assert first.status == 202 and first.json()["id"] == "fixed-id-1"
    second = request("POST", url, json.dumps(["q"]))
    assert second.status == 500
    assert "already exists" in second.json()["ExceptionMessage"]
    status = wait_for_status(first.json()["statusQueryGetUri"])
    assert status["output"] == ["Processed customer: p"]
    assert status["input"] == json.dumps(["p"])  # a string for Python-started instances, as on Azure
