"""External events: raised through the client and the HTTP API, buffered, matched without case."""

from __future__ import annotations

from datetime import timedelta

from emulator.testing import BackgroundHost
from tests.support import get_status, history_rows, request, start_orchestration, wait_for_status, wait_until


def _raise_http(payload: dict, event: str, data: object) -> int:
    url = payload["sendEventPostUri"].replace("{eventName}", event)
    return request("POST", url, data).status


def test_approval_event_wins_the_race_and_the_timer_is_cancelled(
    features_host: BackgroundHost, storage_connection: str
) -> None:
    started = start_orchestration(features_host.base_url, "Approval", {"minutes": 60})
    wait_until(lambda: get_status(started).json()["runtimeStatus"] == "Running")
    assert _raise_http(started, "Approval", {"by": "ann"}) == 202
    status = wait_for_status(started["statusQueryGetUri"])
    # Completed at once: the cancelled one-hour timer does not hold the instance open.
    assert status["output"] == {"approved": {"by": "ann"}}
    rows = history_rows(storage_connection, "FeaturesHub", started["id"])
    assert [r["Name"] for r in rows if r["EventType"] == "EventRaised"] == ["Approval"]


def test_deadline_wins_when_no_event_comes(features_host: BackgroundHost) -> None:
    started = start_orchestration(features_host.base_url, "Approval", {"minutes": 5})
    wait_until(lambda: get_status(started).json()["runtimeStatus"] == "Running")
    features_host.advance_time(timedelta(minutes=5))
    assert wait_for_status(started["statusQueryGetUri"])["output"] == {"approved": None, "timed_out": True}


def test_events_through_the_sdk_client_arrive_double_encoded_as_on_azure(
    features_host: BackgroundHost,
) -> None:
    started = start_orchestration(features_host.base_url, "WaitTwice")
    wait_until(lambda: get_status(started).json()["customStatus"] == {"stage": "waiting"})
    reply = request("POST", f"{features_host.base_url}/api/raise/{started['id']}/Step", {"a": 1})
    assert reply.status == 202
    wait_until(lambda: (get_status(started).json()["customStatus"] or {}).get("stage") == "halfway")
    assert _raise_http(started, "Other", [1, 2]) == 202
    status = wait_for_status(started["statusQueryGetUri"])
    # raise_event json.dumps the data and posts it as JSON: the orchestrator gets the text (issue #295).
    assert status["output"] == ['{"a": 1}', [1, 2]]
    assert status["customStatus"] == {"stage": "done"}


def test_event_names_match_as_the_sdk_matches_them_and_early_events_are_kept(
    features_host: BackgroundHost,
) -> None:
    started = start_orchestration(features_host.base_url, "WaitTwice")
    wait_until(lambda: get_status(started).json()["customStatus"] == {"stage": "waiting"})
    # The host matches names without case, but the Python SDK replays events itself and compares
    # names exactly: "STEP" does not end a wait for "Step", on Azure as here.
    assert _raise_http(started, "STEP", "ignored") == 202
    # An event raised before anyone waits for it is kept until the orchestrator asks for it.
    assert _raise_http(started, "Other", "second") == 202
    assert _raise_http(started, "Step", "first") == 202
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["output"] == ["first", "second"]


def test_an_event_for_a_pending_instance_is_delivered_once_it_runs(features_host: BackgroundHost) -> None:
    instance_id = "pending-event-1"
    started = start_orchestration(features_host.base_url, "WaitTwice", instance_id=instance_id)
    assert _raise_http(started, "Step", 1) == 202
    assert _raise_http(started, "Other", 2) == 202
    assert wait_for_status(started["statusQueryGetUri"])["output"] == [1, 2]
