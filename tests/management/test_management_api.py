"""Every route of the Durable Functions HTTP management API, with plain HTTP as a script would use it.

These tests check the client side: routing, status codes, headers, payloads, messages and what is
written to storage. Where an operation's precondition is a state only the orchestration engine
produces (Suspended, Failed...), the state is put in the Instances row directly. The engine's side
of terminate, suspend, resume, rewind and events is in test_engine_operations.py.
"""

from __future__ import annotations

import base64
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from azure.storage.blob import ContainerClient

from emulator.testing import BackgroundHost
from tests.management.api_support import (
    api,
    history_rows,
    rpc,
    set_runtime_status,
    start,
    status,
    unique,
    wait_for,
)
from tests.support import request, wait_for_status

PAYLOAD_KEYS = {
    "id",
    "statusQueryGetUri",
    "sendEventPostUri",
    "terminatePostUri",
    "purgeHistoryDeleteUri",
    "restartPostUri",
    "suspendPostUri",
    "resumePostUri",
}
BAD_ARGUMENTS = "One or more of the arguments submitted is incorrect"
SERVER_ERROR = "Something went wrong while processing your request"


# -- start ---------------------------------------------------------------------------------------------


def test_start_without_an_id_answers_the_check_status_payload(client_host: BackgroundHost) -> None:
    reply = request("POST", api(client_host, "/orchestrators/Echo"), {"n": 1})
    assert reply.status == 202
    payload = reply.json()
    assert set(payload) == PAYLOAD_KEYS
    assert re.fullmatch(r"[0-9a-f]{32}", payload["id"])
    assert reply.headers["Location"] == payload["statusQueryGetUri"]
    assert reply.headers["Retry-After"] == "10"
    base = f"{client_host.base_url}/runtime/webhooks/durabletask/instances/{payload['id']}"
    query = "taskHub=ClientHub&connection=Storage"
    assert payload["statusQueryGetUri"] == f"{base}?{query}"
    assert payload["sendEventPostUri"] == f"{base}/raiseEvent/{{eventName}}?{query}"
    assert payload["terminatePostUri"] == f"{base}/terminate?reason={{text}}&{query}"
    assert payload["restartPostUri"] == f"{base}/restart?{query}"
    done = wait_for_status(payload["statusQueryGetUri"])
    assert (done["runtimeStatus"], done["input"], done["output"]) == ("Completed", {"n": 1}, {"n": 1})


def test_start_with_an_id_refuses_a_duplicate_while_it_runs(client_host: BackgroundHost) -> None:
    instance_id = unique("sleeper")
    assert start(client_host, "Sleeper", instance_id=instance_id)["id"] == instance_id
    again = request("POST", api(client_host, f"/orchestrators/Sleeper/{instance_id}"))
    assert again.status == 500
    body = again.json()
    assert body["Message"] == SERVER_ERROR
    assert body["ExceptionMessage"] in (
        "An Orchestration instance with the status Pending already exists.",
        "An Orchestration instance with the status Running already exists.",
    )
    assert body["ExceptionType"] == "DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException"


def test_start_rejects_bad_json_and_unknown_orchestrators(client_host: BackgroundHost) -> None:
    bad = request("POST", api(client_host, "/orchestrators/Echo"), raw=b'{"n": ')
    assert bad.status == 400
    assert bad.json()["Message"] == "Invalid JSON content"
    assert bad.json()["ExceptionType"] == "Newtonsoft.Json.JsonReaderException"
    unknown = request("POST", api(client_host, "/orchestrators/Nope"))
    assert unknown.status == 400
    assert unknown.json()["Message"] == BAD_ARGUMENTS
    assert unknown.json()["ExceptionMessage"].startswith(
        "The function 'Nope' doesn't exist, is disabled, or is not an orchestrator function."
    )


def test_routes_ignore_case_and_the_path_is_url_decoded_with_plus_as_space(
    client_host: BackgroundHost,
) -> None:
    reply = request(
        "POST", f"{client_host.base_url}/RUNTIME/Webhooks/DurableTask/Orchestrators/echo/a+b", {"v": 5}
    )
    assert reply.status == 202
    assert reply.json()["id"] == "a b"
    assert reply.json()["statusQueryGetUri"].startswith(f"{client_host.base_url}/runtime/webhooks/")
    assert wait_for_status(reply.json()["statusQueryGetUri"])["output"] == {"v": 5}


def test_start_and_wait_answers_with_the_output_when_it_completes_in_time(
    client_host: BackgroundHost,
) -> None:
    reply = request(
        "POST", api(client_host, "/orchestrators/Echo?timeout=20&pollingInterval=0.1"), {"items": [1, "two"]}
    )
    assert reply.status == 200
    assert reply.json() == {"items": [1, "two"]}
    assert "Location" not in reply.headers


def test_start_and_wait_answers_with_the_status_when_it_fails(client_host: BackgroundHost) -> None:
    reply = request("POST", api(client_host, "/orchestrators/AlwaysFails?timeout=20&pollingInterval=0.1"))
    assert reply.status == 200
    assert reply.json()["runtimeStatus"] == "Failed"
    assert (
        reply.json()["output"]
        == "Orchestrator function 'AlwaysFails' failed: this orchestration always fails"
    )


def test_start_and_wait_falls_back_to_202_and_checks_its_arguments(client_host: BackgroundHost) -> None:
    started = time.monotonic()
    reply = request("POST", api(client_host, "/orchestrators/Sleeper?timeout=0.5&pollingInterval=0.1"))
    assert reply.status == 202
    assert time.monotonic() - started >= 0.5
    assert set(reply.json()) == PAYLOAD_KEYS
    assert reply.headers["Location"] == reply.json()["statusQueryGetUri"]
    wrong = request("POST", api(client_host, "/orchestrators/Echo?timeout=1&pollingInterval=2.5"))
    assert wrong.status == 400
    assert wrong.json()["ExceptionMessage"] == "Total timeout 1 should be bigger than retry timeout 2.5"


# -- status ----------------------------------------------------------------------------------------------


def test_status_of_a_running_instance_is_202_with_location_and_retry_after(
    client_host: BackgroundHost,
) -> None:
    instance_id = start(client_host, "Sleeper")["id"]
    wait_for(client_host, instance_id, "Running")
    url = api(client_host, f"/instances/{instance_id}?showInput=false")
    reply = request("GET", url)
    assert reply.status == 202
    assert reply.headers["Location"] == url
    assert reply.headers["Retry-After"] == "5"
    body = reply.json()
    assert set(body) == {
        "name",
        "instanceId",
        "runtimeStatus",
        "input",
        "customStatus",
        "output",
        "createdTime",
        "lastUpdatedTime",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["createdTime"])
    assert request("GET", api(client_host, "/instances/not-an-instance")).status == 404


def test_history_shapes_follow_show_history_output_and_input(client_host: BackgroundHost) -> None:
    # A JSON array input would break the SDK's get_input (docs/sdk-protocol.md 14.2): use an object.
    instance_id = start(client_host, "Echo", {"x": 1})["id"]
    wait_for(client_host, instance_id, "Completed")
    events = status(client_host, instance_id, "?showHistory=true").json()["historyEvents"]
    kinds = [e["EventType"] for e in events]
    assert kinds == ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]
    started, completed, finished = events
    assert started["FunctionName"] == "Echo" and started["Input"] == '{"x":1}'
    assert not {"Name", "OrchestrationInstance", "EventId", "IsPlayed", "Version"} & set(started)
    assert completed["FunctionName"] == "Identity"
    assert "ScheduledTime" in completed and "TaskScheduledId" not in completed and "Result" not in completed
    assert finished["OrchestrationStatus"] == "Completed" and "Result" not in finished

    with_output = status(client_host, instance_id, "?showHistory=true&showHistoryOutput=TRUE").json()
    assert with_output["historyEvents"][1]["Result"] == {"x": 1}
    assert with_output["historyEvents"][2]["Result"] == {"x": 1}

    without_input = status(client_host, instance_id, "?showHistory=true&showInput=False").json()
    assert without_input["input"] is None
    assert all("Input" not in e for e in without_input["historyEvents"])
    # bool.TryParse: anything but true/false leaves the default (input shown).
    assert status(client_host, instance_id, "?showInput=no").json()["input"] == {"x": 1}


def test_rpc_base_serves_the_same_api(client_host: BackgroundHost) -> None:
    instance_id = start(client_host, "Echo", {"v": 1})["id"]
    wait_for(client_host, instance_id, "Completed")
    reply = request("GET", rpc(client_host, f"/instances/{instance_id}"))
    assert reply.status == 200 and reply.json()["output"] == {"v": 1}
    started = request("POST", rpc(client_host, "/orchestrators/Echo"), {"v": 2})
    # Links handed out on the RPC port keep the public webhook path.
    assert started.json()["statusQueryGetUri"].startswith(
        f"http://127.0.0.1:{client_host.host.options.port}/runtime/webhooks/durabletask/instances/"
    )


# -- list ------------------------------------------------------------------------------------------------


def test_list_filters_by_prefix_status_and_time_and_pages_with_the_continuation_header(
    client_host: BackgroundHost,
) -> None:
    prefix = unique("list")
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    ids = [start(client_host, "Echo", {"i": i}, instance_id=f"{prefix}-{i}")["id"] for i in range(5)]
    sleeper = start(client_host, "Sleeper", instance_id=f"{prefix}-sleeper")["id"]
    for instance_id in ids:
        wait_for(client_host, instance_id, "Completed")
    wait_for(client_host, sleeper, "Running")

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        reply = request(
            "GET", api(client_host, f"/instances?instanceIdPrefix={prefix}&top=2"), headers=headers
        )
        assert reply.status == 200
        page = reply.json()
        assert len(page) <= 2 and all("historyEvents" not in s for s in page)
        seen += [s["instanceId"] for s in page]
        pages += 1
        token = reply.headers["x-ms-continuation-token"]
        # The provider's token is opaque base64; after the last page it encodes "null".
        if base64.b64decode(token) == b"null":
            break
    assert sorted(seen) == sorted([*ids, sleeper]) and pages >= 3

    def listed(query: str) -> list[str]:
        reply = request("GET", api(client_host, f"/instances?instanceIdPrefix={prefix}&{query}"))
        assert reply.status == 200
        return sorted(s["instanceId"] for s in reply.json())

    assert listed("runtimeStatus=Completed") == sorted(ids)
    assert listed("runtimeStatus=Running,Completed") == sorted([*ids, sleeper])
    assert listed("runtimeStatus=Running&runtimeStatus=Completed") == sorted([*ids, sleeper])
    assert listed("runtimeStatus=Running,Bogus") == [sleeper]
    # Enum.TryParse is case-sensitive: "completed" is ignored, so no status filter applies.
    assert listed("runtimeStatus=completed") == sorted([*ids, sleeper])
    # Statuses may be given by number too (1 = Completed).
    assert listed("runtimeStatus=1") == sorted(ids)
    from_time = before.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert listed(f"createdTimeFrom={from_time}") == sorted([*ids, sleeper])
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listed(f"createdTimeFrom={future}") == []
    assert listed(f"createdTimeTo={before.strftime('%Y-%m-%dT%H:%M:%SZ')}") == []
    no_input = request(
        "GET", api(client_host, f"/instances?instanceIdPrefix={prefix}&showInput=false")
    ).json()
    assert {s["input"] for s in no_input} == {None}
    assert sorted(s["output"]["i"] for s in no_input if s["instanceId"] != sleeper) == [0, 1, 2, 3, 4]


def test_list_rejects_a_continuation_token_that_is_not_base64(client_host: BackgroundHost) -> None:
    reply = request("GET", api(client_host, "/instances"), headers={"x-ms-continuation-token": "%%%"})
    assert reply.status == 500
    assert reply.json()["ExceptionType"] == "System.FormatException"


# -- raise event ------------------------------------------------------------------------------------------


def test_raise_event_checks_the_instance_the_content_type_and_the_json(client_host: BackgroundHost) -> None:
    instance_id = start(client_host, "WaitForApproval")["id"]
    url = api(client_host, f"/instances/{instance_id}/raiseEvent/Approval")
    text = request("POST", url, raw=b'"yes"', headers={"Content-Type": "text/plain"})
    assert text.status == 400
    assert text.json() == {"Message": "Only application/json request content is supported"}
    bad = request("POST", url, raw=b"{nope")
    assert bad.status == 400 and bad.json()["Message"] == "Invalid JSON content"
    assert request("POST", api(client_host, "/instances/nobody/raiseEvent/Approval"), {}).status == 404
    wrong_method = request("GET", url)
    assert (wrong_method.status, wrong_method.body) == (404, b"")

    set_runtime_status(client_host, instance_id, "Completed")
    gone = request("POST", url, {"ok": True})
    assert (gone.status, gone.body) == (410, b"")


def test_raise_event_is_accepted_with_an_empty_body_and_stored_as_compact_json(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    instance_id = start(client_host, "WaitForApproval")["id"]
    wait_for(client_host, instance_id, "Running")
    # JToken.Load reads the first value and ignores what follows it.
    reply = request(
        "POST",
        api(client_host, f"/instances/{instance_id}/raiseEvent/Approval"),
        raw=b'{ "ok" : true, "who": "\xc3\xa9" } trailing',
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert (reply.status, reply.body) == (202, b"")
    raised = _wait_for_row(storage_connection, instance_id, "EventRaised")
    assert raised["Name"] == "Approval"
    assert raised["Input"] == '{"ok":true,"who":"é"}'


def _wait_for_row(connection: str, instance_id: str, event_type: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        rows = [r for r in history_rows(connection, instance_id) if r["EventType"] == event_type]
        if rows:
            return rows[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {event_type} row for {instance_id}")
        time.sleep(0.05)


# -- terminate, suspend, resume ------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["terminate", "suspend", "resume"])
def test_operations_on_unknown_or_finished_instances_are_404_and_410(
    client_host: BackgroundHost, operation: str
) -> None:
    missing = request("POST", api(client_host, f"/instances/nobody/{operation}?reason=x"))
    assert (missing.status, missing.body) == (404, b"")
    instance_id = start(client_host, "Echo", {"v": 1})["id"]
    wait_for(client_host, instance_id, "Completed")
    gone = request("POST", api(client_host, f"/instances/{instance_id}/{operation.upper()}?reason=x"))
    assert (gone.status, gone.body) == (410, b"")
    set_runtime_status(client_host, instance_id, "Failed")
    assert request("POST", api(client_host, f"/instances/{instance_id}/{operation}")).status == 410


def test_terminate_sends_the_reason_in_an_execution_terminated_message(client_host: BackgroundHost) -> None:
    instance_id = start(client_host, "Sleeper")["id"]
    wait_for(client_host, instance_id, "Running")
    reply = request("POST", api(client_host, f"/instances/{instance_id}/terminate?reason=enough"))
    assert (reply.status, reply.body) == (202, b"")


def test_suspend_twice_and_resume_while_running_are_invalid_operations(client_host: BackgroundHost) -> None:
    instance_id = start(client_host, "Sleeper")["id"]
    wait_for(client_host, instance_id, "Running")
    set_runtime_status(client_host, instance_id, "Suspended")
    again = request("POST", api(client_host, f"/instances/{instance_id}/suspend?reason=again"))
    assert again.status == 500
    assert again.json() == {
        "Message": SERVER_ERROR,
        "ExceptionMessage": f"Cannot suspend the orchestration instance {instance_id} because instance is in "
        "the Suspended state.",
        "ExceptionType": "System.InvalidOperationException",
        "StackTrace": None,
    }
    set_runtime_status(client_host, instance_id, "Running")
    resume = request("POST", api(client_host, f"/instances/{instance_id}/resume"))
    assert resume.status == 500
    assert resume.json()["ExceptionMessage"] == (
        f"Cannot resume the orchestration instance {instance_id} because instance is in the Running state."
    )


# -- rewind --------------------------------------------------------------------------------------------


def test_rewind_only_applies_to_failed_instances(client_host: BackgroundHost) -> None:
    assert request("POST", api(client_host, "/instances/nobody/rewind")).status == 404
    running = start(client_host, "Sleeper")["id"]
    wait_for(client_host, running, "Running")
    reply = request("POST", api(client_host, f"/instances/{running}/rewind?reason=why"))
    assert reply.status == 500
    assert reply.json()["ExceptionMessage"] == (
        "The rewind operation is only supported on failed orchestration instances."
    )
    assert reply.json()["ExceptionType"] == "System.InvalidOperationException"
    completed = start(client_host, "Echo", {"v": 1})["id"]
    wait_for(client_host, completed, "Completed")
    assert request("POST", api(client_host, f"/instances/{completed}/rewind")).status == 410


def test_rewind_rewrites_the_failed_rows_like_the_azure_storage_provider(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    instance_id = start(client_host, "AlwaysFails")["id"]
    wait_for(client_host, instance_id, "Failed")
    before = history_rows(storage_connection, instance_id)
    failed_at = next(r["RowKey"] for r in before if r["EventType"] == "ExecutionCompleted")
    reply = request("POST", api(client_host, f"/instances/{instance_id}/rewind?reason=try%20again"))
    assert (reply.status, reply.body) == (202, b"")
    rows = {r["RowKey"]: r for r in history_rows(storage_connection, instance_id)}
    rewound = rows[failed_at]
    assert rewound["EventType"] == "GenericEvent"
    assert rewound["Reason"] == "Rewound: ExecutionCompleted"
    assert rewound["OrchestrationStatus"] == "Failed"  # the other columns stay as they were
    assert all(r["EventType"] != "ExecutionCompleted" for r in rows.values() if r["RowKey"] <= failed_at)


def test_rewind_turns_a_failed_activity_and_its_schedule_into_generic_events(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    instance_id = start(client_host, "FailsOnce", {"key": unique("key")})["id"]
    wait_for(client_host, instance_id, "Failed")
    before = {r["RowKey"]: r for r in history_rows(storage_connection, instance_id)}
    failed = next(r for r in before.values() if r["EventType"] == "TaskFailed")
    scheduled = next(
        r
        for r in before.values()
        if r["EventType"] == "TaskScheduled" and r["EventId"] == failed["TaskScheduledId"]
    )
    assert request("POST", api(client_host, f"/instances/{instance_id}/rewind?reason=retry")).status == 202
    after = {r["RowKey"]: r for r in history_rows(storage_connection, instance_id)}
    assert after[failed["RowKey"]]["EventType"] == "GenericEvent"
    assert after[failed["RowKey"]]["Reason"] == "Rewound: TaskFailed"
    assert after[scheduled["RowKey"]]["EventType"] == "GenericEvent"
    assert after[scheduled["RowKey"]]["Reason"] == "Rewound: TaskScheduled"
    assert after[scheduled["RowKey"]]["Name"] == "FailsFirstTime"
    # The activity that succeeded before the failure keeps its rows.
    kept = [r for r in after.values() if r["EventType"] == "TaskScheduled" and r["Name"] == "Identity"]
    assert len(kept) == 1


# -- restart ---------------------------------------------------------------------------------------------


def test_restart_starts_the_same_orchestrator_with_the_same_input(client_host: BackgroundHost) -> None:
    original = start(client_host, "Echo", {"again": True})["id"]
    wait_for(client_host, original, "Completed")
    reply = request("POST", api(client_host, f"/instances/{original}/restart"))
    assert reply.status == 202 and set(reply.json()) == PAYLOAD_KEYS
    restarted = reply.json()["id"]
    assert restarted != original and re.fullmatch(r"[0-9a-f]{32}", restarted)
    assert wait_for(client_host, restarted, "Completed")["output"] == {"again": True}

    same = request("POST", api(client_host, f"/instances/{original}/restart?restartWithNewInstanceId=false"))
    assert same.status == 202 and same.json()["id"] == original
    wait_for(client_host, original, "Completed")
    waited = request(
        "POST",
        api(
            client_host,
            f"/instances/{original}/restart?restartWithNewInstanceId=false&timeout=20&pollingInterval=0.1",
        ),
    )
    assert (waited.status, waited.json()) == (200, {"again": True})


def test_restart_of_an_unknown_or_running_instance(client_host: BackgroundHost) -> None:
    unknown = request("POST", api(client_host, "/instances/nobody/restart"))
    assert unknown.status == 400
    assert unknown.json()["Message"] == "InstanceId does not match a valid orchestration instance."
    assert unknown.json()["ExceptionMessage"] == "An orchestrastion with the instanceId nobody was not found."
    running = start(client_host, "Sleeper")["id"]
    wait_for(client_host, running, "Running")
    same = request("POST", api(client_host, f"/instances/{running}/restart?restartWithNewInstanceId=false"))
    assert same.status == 500
    assert (
        same.json()["ExceptionMessage"] == "An Orchestration instance with the status Running already exists."
    )


# -- purge ------------------------------------------------------------------------------------------------


@pytest.mark.azure_storage
def test_purge_one_deletes_the_instance_its_history_and_its_blobs(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    big = "x" * 40_000  # over the table property limit: the input goes to a blob
    instance_id = start(client_host, "Echo", {"big": big})["id"]
    wait_for(client_host, instance_id, "Completed")
    container = ContainerClient.from_connection_string(storage_connection, "clienthub-largemessages")
    with container:
        assert list(container.list_blobs(name_starts_with=f"{instance_id}/"))
        reply = request("DELETE", api(client_host, f"/instances/{instance_id}"))
        assert (reply.status, reply.json()) == (200, {"instancesDeleted": 1})
        assert not list(container.list_blobs(name_starts_with=f"{instance_id}/"))
    assert status(client_host, instance_id).status == 404
    assert history_rows(storage_connection, instance_id) == []
    again = request("DELETE", api(client_host, f"/instances/{instance_id}"))
    assert (again.status, again.body) == (404, b"")


def test_purge_by_filter_needs_created_time_from_and_keeps_running_instances(
    client_host: BackgroundHost,
) -> None:
    missing = request("DELETE", api(client_host, "/instances"))
    assert missing.status == 400
    assert missing.json() == "Please provide value for 'createdTimeFrom' parameter."
    assert missing.headers["Content-Type"].startswith("application/json")

    window_start = datetime.now(timezone.utc) - timedelta(milliseconds=1)
    done = [start(client_host, "Echo", {"i": i})["id"] for i in range(2)]
    sleeping = start(client_host, "Sleeper")["id"]
    window_end = datetime.now(timezone.utc) + timedelta(milliseconds=1)
    for instance_id in done:
        wait_for(client_host, instance_id, "Completed")
    window = f"createdTimeFrom={window_start.isoformat()}&createdTimeTo={window_end.isoformat()}".replace(
        "+", "%2B"
    )
    reply = request("DELETE", api(client_host, f"/instances?{window}&runtimeStatus=Completed,Running"))
    # Running is dropped from the filter: only finished instances are purged by filter.
    assert (reply.status, reply.json()) == (200, {"instancesDeleted": 2})
    assert [status(client_host, i).status for i in done] == [404, 404]
    assert status(client_host, sleeping).status == 202
    long_ago = "createdTimeFrom=2001-01-01T00:00:00Z&createdTimeTo=2001-01-02T00:00:00Z"
    nothing = request("DELETE", api(client_host, f"/instances?{long_ago}"))
    assert (nothing.status, nothing.body) == (404, b"")


# -- no route ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/entities/Counter/never-signalled"),
        ("PUT", "/entities/Counter/one"),
        ("GET", "/orchestrators/Echo"),
        ("PUT", "/instances/x"),
        ("GET", "/instances/x/terminate"),
        ("POST", "/instances/x/bogus"),
        ("POST", "/instances/x/raiseEvent"),
        ("GET", "/nothing/here"),
        ("GET", ""),
    ],
)
def test_unknown_routes_and_methods_are_404_with_an_empty_body(
    client_host: BackgroundHost, method: str, path: str
) -> None:
    reply = request(method, api(client_host, path))
    assert (reply.status, reply.body) == (404, b"")
