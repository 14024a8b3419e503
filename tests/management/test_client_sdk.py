"""Every ``DurableOrchestrationClient`` method, called from inside a function of the client_app.

The app's ``client/{operation}`` function runs one SDK call and answers with its result, or 409 and
the text of the exception the SDK raised, which is what a user's function would see.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from emulator.testing import BackgroundHost
from tests.management.api_support import set_runtime_status, unique, wait_for
from tests.support import Reply, request


def call(host: BackgroundHost, operation: str, **args: Any) -> Reply:
    return request("POST", f"{host.base_url}/api/client/{operation}", args)


def result(host: BackgroundHost, operation: str, **args: Any) -> Any:
    reply = call(host, operation, **args)
    assert reply.status == 200, reply.body
    return reply.json()


def error(host: BackgroundHost, operation: str, **args: Any) -> str:
    reply = call(host, operation, **args)
    assert reply.status == 409, reply.body
    message: str = reply.json()["error"]
    return message


def sdk_start(
    host: BackgroundHost, name: str, client_input: Any = None, instance_id: str | None = None
) -> str:
    started: str = result(host, "start_new", name=name, input=client_input, instance_id=instance_id)["id"]
    return started


def test_start_new_with_and_without_an_instance_id(client_host: BackgroundHost) -> None:
    generated = sdk_start(client_host, "Echo", {"a": 1})
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    chosen = unique("sdk")
    assert sdk_start(client_host, "Echo", [1, 2], instance_id=chosen) == chosen
    # The SDK sends its input JSON-encoded once more: the status input is a string holding the JSON.
    done = wait_for(client_host, chosen, "Completed")
    assert done["input"] == "[1, 2]" and done["output"] == [1, 2]
    assert error(client_host, "start_new", name="Missing").startswith(
        "The function 'Missing' doesn't exist, is disabled, or is not an orchestrator function."
    )


def test_get_status_with_each_flag(client_host: BackgroundHost) -> None:
    instance_id = sdk_start(client_host, "Echo", {"b": 2})
    wait_for(client_host, instance_id, "Completed")
    plain = result(client_host, "get_status", id=instance_id)
    assert plain["runtimeStatus"] == "Completed" and plain["output"] == {"b": 2}
    # show_input=False is left out of the URL, and the host's default shows the input.
    assert plain["input"] == '{"b": 2}'
    assert plain["historyEvents"] is None

    history = result(client_host, "get_status", id=instance_id, show_history=True)["historyEvents"]
    assert [e["EventType"] for e in history] == ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]
    assert "Result" not in history[1]
    with_output = result(
        client_host, "get_status", id=instance_id, show_history=True, show_history_output=True
    )
    assert with_output["historyEvents"][1]["Result"] == {"b": 2}
    with_input = result(client_host, "get_status", id=instance_id, show_input=True)
    assert with_input["input"] == '{"b": 2}'
    # An unknown instance: the SDK turns the 404 into an empty (falsy) status.
    assert result(client_host, "get_status", id="nobody-here") is None


def test_get_status_all_and_get_status_by(client_host: BackgroundHost) -> None:
    prefix = unique("by")
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    finished = sdk_start(client_host, "Echo", {"c": 3}, instance_id=f"{prefix}-done")
    sleeping = sdk_start(client_host, "Sleeper", instance_id=f"{prefix}-sleeping")
    wait_for(client_host, finished, "Completed")
    wait_for(client_host, sleeping, "Running")

    everything = {s["instanceId"] for s in result(client_host, "get_status_all")}
    assert {finished, sleeping} <= everything

    def by(**args: Any) -> set[str]:
        return {s["instanceId"] for s in result(client_host, "get_status_by", **args)}

    assert by(prefix=prefix) == {finished, sleeping}
    assert by(prefix=prefix, runtime_status=["Completed"]) == {finished}
    assert by(prefix=prefix, runtime_status=["Running", "Pending"]) == {sleeping}
    assert by(prefix=prefix, created_from=since.isoformat()) == {finished, sleeping}
    assert by(prefix=prefix, created_to=since.isoformat()) == set()


def test_raise_event_delivers_the_double_encoded_data(client_host: BackgroundHost) -> None:
    instance_id = sdk_start(client_host, "WaitForApproval")
    wait_for(client_host, instance_id, "Running")
    assert result(client_host, "raise_event", id=instance_id, event="Approval", data={"ok": True}) == {
        "raised": True
    }
    # raise_event JSON-encodes the data twice: the orchestrator receives the JSON text (SDK issue #295).
    assert wait_for(client_host, instance_id, "Completed")["output"] == {"approval": '{"ok": true}'}
    gone = error(client_host, "raise_event", id=instance_id, event="Approval", data=1)
    assert gone == f"Instance with ID {instance_id} is gone: either completed or failed"
    assert error(client_host, "raise_event", id="nobody", event="E") == "No instance with ID nobody found."


def test_terminate_suspend_and_resume_report_what_the_host_answers(client_host: BackgroundHost) -> None:
    instance_id = sdk_start(client_host, "Sleeper")
    wait_for(client_host, instance_id, "Running")
    assert result(client_host, "suspend", id=instance_id, reason="pause") == {"suspended": True}
    # Resume checks the stored status; do not wait for the engine to apply the suspension.
    set_runtime_status(client_host, instance_id, "Suspended")
    assert result(client_host, "resume", id=instance_id, reason="go on") == {"resumed": True}
    assert result(client_host, "terminate", id=instance_id, reason="stop") == {"terminated": True}
    for operation in ("terminate", "suspend", "resume"):
        assert error(client_host, operation, id="nobody") == "No instance with ID 'nobody' found."
    # 410 for a finished instance is not an error to the SDK.
    done = sdk_start(client_host, "Echo", {})
    wait_for(client_host, done, "Completed")
    assert result(client_host, "terminate", id=done) == {"terminated": True}
    # The host's InvalidOperationException (500) surfaces as an unexpected status code.
    running = sdk_start(client_host, "Sleeper")
    wait_for(client_host, running, "Running")
    set_runtime_status(client_host, running, "Suspended")
    assert (
        error(client_host, "suspend", id=running) == "The operation failed with an unexpected status code 500"
    )


def test_rewind_and_its_failures(client_host: BackgroundHost) -> None:
    key = unique("rewind")
    instance_id = sdk_start(client_host, "FailsOnce", {"key": key})
    wait_for(client_host, instance_id, "Failed")
    assert result(client_host, "rewind", id=instance_id, reason="again") == {"rewound": True}
    assert error(client_host, "rewind", id="nobody") == "No instance with ID nobody found."
    done = sdk_start(client_host, "Echo", {})
    wait_for(client_host, done, "Completed")
    assert error(client_host, "rewind", id=done) == (
        "The rewind operation is only supported on failed orchestration instances."
    )
    running = sdk_start(client_host, "Sleeper")
    wait_for(client_host, running, "Running")
    message = error(client_host, "rewind", id=running)
    assert message.startswith("Received unexpected payload from the durable-extension: [500, ")
    assert "The rewind operation is only supported on failed orchestration instances." in message


def test_restart_returns_the_hosts_check_status_payload(client_host: BackgroundHost) -> None:
    original = sdk_start(client_host, "Echo", {"d": 4})
    wait_for(client_host, original, "Completed")
    restarted = result(client_host, "restart", id=original)["result"]
    # The real host answers 202 with the payload, which restart() hands back as is.
    assert isinstance(restarted, dict) and restarted["id"] != original
    assert wait_for(client_host, restarted["id"], "Completed")["output"] == {"d": 4}
    same = result(client_host, "restart", id=original, new_id=False)["result"]
    assert same["id"] == original
    assert (
        error(client_host, "restart", id="nobody")
        == "The operation failed with an unexpected status code 400"
    )


def test_purge_instance_history_and_purge_by(client_host: BackgroundHost) -> None:
    instance_id = sdk_start(client_host, "Echo", {})
    wait_for(client_host, instance_id, "Completed")
    assert result(client_host, "purge_instance_history", id=instance_id) == {"deleted": 1}
    assert result(client_host, "purge_instance_history", id=instance_id) == {"deleted": 0}
    assert result(client_host, "get_status", id=instance_id) is None

    window_start = datetime.now(timezone.utc) - timedelta(milliseconds=1)
    purgeable = sdk_start(client_host, "Echo", {})
    window_end = datetime.now(timezone.utc) + timedelta(milliseconds=1)
    wait_for(client_host, purgeable, "Completed")
    purged = result(
        client_host,
        "purge_instance_history_by",
        created_from=window_start.isoformat(),
        created_to=window_end.isoformat(),
        runtime_status=["Completed"],
    )
    assert purged == {"deleted": 1}
    assert error(client_host, "purge_instance_history_by") == (
        "created_time_from is required when purging instance history"
    )


def test_wait_for_completion_or_create_check_status_response(client_host: BackgroundHost) -> None:
    completed = call(
        client_host, "wait_for_completion_or_create_check_status_response", name="Echo", input=[5]
    )
    assert completed.status == 200 and completed.json() == [5]
    failed = call(client_host, "wait_for_completion_or_create_check_status_response", name="AlwaysFails")
    assert failed.status == 500 and failed.json()["runtimeStatus"] == "Failed"
    waiting = call(
        client_host,
        "wait_for_completion_or_create_check_status_response",
        name="Sleeper",
        timeout_ms=300,
        interval_ms=100,
    )
    assert waiting.status == 202
    assert waiting.headers["Location"] == waiting.json()["statusQueryGetUri"]


def test_management_payload_and_check_status_response(client_host: BackgroundHost) -> None:
    payload = result(client_host, "create_http_management_payload", id="some-id")
    base = f"http://localhost:{client_host.host.options.port}/runtime/webhooks/durabletask/instances/some-id"
    assert payload["id"] == "some-id"
    assert payload["rewindPostUri"] == f"{base}/rewind?reason={{text}}&taskHub=ClientHub&connection=Storage"
    # The check-status response takes the origin of the request the function received.
    origin = f"http://127.0.0.1:{client_host.host.options.port}"
    reply = request("POST", f"{origin}/api/client/create_check_status_response", {"id": "other-id"})
    assert reply.status == 202
    body = reply.json()
    assert body["statusQueryGetUri"].startswith(f"{origin}/runtime/webhooks/durabletask/instances/other-id?")
    assert reply.headers["Location"] == body["statusQueryGetUri"]
    assert reply.headers["Retry-After"] == "10"
    assert json.loads(reply.body)["id"] == "other-id"


def test_signal_entity_is_refused_for_a_bad_key_or_a_missing_entity_function(
    client_host: BackgroundHost,
) -> None:
    # The app has no entity function: the real client refuses the signal (400), which the SDK
    # raises, rather than queueing an operation no function will ever run.
    refused = "The operation failed with an unexpected status code 400"
    assert error(client_host, "signal_entity", name="Missing", key="k1", op="add") == refused
    assert error(client_host, "signal_entity", name="Missing", key="a\x01b", op="add") == refused
    missing = request(
        "POST", f"{client_host.base_url}/runtime/webhooks/durabletask/entities/Missing/k1?op=add"
    )
    assert missing.status == 400
    assert missing.json()["Message"].endswith("No entity functions are currently registered!")
