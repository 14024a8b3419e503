"""Management operations end to end: the client sends the message, the orchestration engine applies it.

These need the engine's handling of ExecutionTerminated, ExecutionSuspended/Resumed, EventRaised
and of a rewound history (GenericEvent message, failure rows turned into GenericEvent rows).
"""

from __future__ import annotations

from emulator.testing import BackgroundHost
from tests.management.api_support import api, history_rows, start, unique, wait_for
from tests.support import request


def test_terminate_ends_a_running_instance_with_the_reason_as_output(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    instance_id = start(client_host, "Sleeper")["id"]
    wait_for(client_host, instance_id, "Running")
    assert (
        request("POST", api(client_host, f"/instances/{instance_id}/terminate?reason=enough")).status == 202
    )
    status = wait_for(client_host, instance_id, "Terminated")
    assert status["output"] == "enough"
    kinds = [r["EventType"] for r in history_rows(storage_connection, instance_id)]
    assert "ExecutionTerminated" in kinds
    finished = [
        r for r in history_rows(storage_connection, instance_id) if r["EventType"] == "ExecutionCompleted"
    ]
    assert [r["OrchestrationStatus"] for r in finished] == ["Terminated"]
    assert request("POST", api(client_host, f"/instances/{instance_id}/terminate")).status == 410


def test_suspend_holds_events_until_resume(client_host: BackgroundHost) -> None:
    instance_id = start(client_host, "WaitForApproval")["id"]
    wait_for(client_host, instance_id, "Running")
    assert request("POST", api(client_host, f"/instances/{instance_id}/suspend?reason=hold")).status == 202
    assert wait_for(client_host, instance_id, "Suspended")["output"] == "hold"
    raised = request("POST", api(client_host, f"/instances/{instance_id}/raiseEvent/Approval"), {"ok": 1})
    assert raised.status == 202  # Suspended instances still accept events
    assert request("POST", api(client_host, f"/instances/{instance_id}/resume?reason=go")).status == 202
    assert wait_for(client_host, instance_id, "Completed")["output"] == {"approval": {"ok": 1}}


def test_an_event_raised_over_http_completes_the_waiting_orchestration(client_host: BackgroundHost) -> None:
    instance_id = start(client_host, "WaitForApproval")["id"]
    wait_for(client_host, instance_id, "Running")
    url = api(client_host, f"/instances/{instance_id}/raiseEvent/Approval")
    assert request("POST", url, {"ok": True}).status == 202
    assert wait_for(client_host, instance_id, "Completed")["output"] == {"approval": {"ok": True}}


def test_rewind_replays_a_failed_instance_from_its_last_good_state(client_host: BackgroundHost) -> None:
    key = unique("key")
    instance_id = start(client_host, "FailsOnce", {"key": key})["id"]
    wait_for(client_host, instance_id, "Failed")
    assert request("POST", api(client_host, f"/instances/{instance_id}/rewind?reason=retry")).status == 202
    status = wait_for(client_host, instance_id, "Completed")
    assert status["output"] == ["before", f"attempt 2 for {key} worked"]
    # The activity that had succeeded is not run again.
    identity_runs = [
        r for r in client_host.host.invocations.records("Identity") if r.instance_id == instance_id
    ]
    assert len(identity_runs) == 1


def test_a_rewound_instance_that_fails_again_is_failed_again(client_host: BackgroundHost) -> None:
    instance_id = start(client_host, "AlwaysFails")["id"]
    wait_for(client_host, instance_id, "Failed")
    assert request("POST", api(client_host, f"/instances/{instance_id}/rewind")).status == 202
    again = wait_for(client_host, instance_id, "Failed")
    assert again["output"] == "Orchestrator function 'AlwaysFails' failed: this orchestration always fails"
