"""Durable entities: the counter driven from orchestrations, many concurrent signals, state in the hub."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from emulator.testing import BackgroundHost
from tests.conftest import TEST_APPS, start_host
from tests.support import read_instance, request, start_orchestration, wait_for_status, wait_until


@pytest.fixture(scope="module")
def entities_host(storage_connection: str) -> Iterator[BackgroundHost]:
    host = start_host(TEST_APPS / "entities_app", storage_connection)
    try:
        yield host
    finally:
        host.stop()


def test_orchestration_calls_and_signals_the_counter_in_order(
    entities_host: BackgroundHost, storage_connection: str
) -> None:
    started = start_orchestration(entities_host.base_url, "UseCounter", "orch-1")
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed", status
    output = status["output"]
    assert output["first"] == 5
    assert output["after_signal"] == 15  # the signal was applied before the later call
    assert output["failure"] == "cannot fail at 15"  # the operation's exception reaches the caller
    assert output["reset"] == 0
    # The entity is an instance of the task hub, as with the real provider: @<name>@<key>.
    record = read_instance(storage_connection, "EntitiesHub", "@counter@orch-1")
    assert record is not None and record.name == "@counter"
    assert json.loads(json.loads(record.input or "null")["state"]) == 0


def test_a_thousand_signals_from_fifty_orchestrations_are_summed_exactly(
    entities_host: BackgroundHost,
) -> None:
    starts = [
        start_orchestration(entities_host.base_url, "SignalMany", {"key": "busy", "count": 20})
        for _ in range(50)
    ]
    for started in starts:
        assert wait_for_status(started["statusQueryGetUri"], timeout=120)["runtimeStatus"] == "Completed"
    reader = start_orchestration(entities_host.base_url, "ReadCounter", "busy")
    # The read is queued behind every signal sent before it, so it sees all 1,000.
    assert wait_for_status(reader["statusQueryGetUri"], timeout=120)["output"] == 1000


def test_the_client_signals_and_reads_the_entity(entities_host: BackgroundHost) -> None:
    base = entities_host.base_url
    assert request("POST", f"{base}/api/counter/client-1/add", 7).status == 202
    reader = start_orchestration(base, "ReadCounter", "client-1")
    assert wait_for_status(reader["statusQueryGetUri"])["output"] == 7
    reply = request("GET", f"{base}/api/counter/client-1")
    assert reply.json() == {"exists": True, "state": 7}
    assert request("POST", f"{base}/api/counter/client-1/delete").status == 202
    # destruct_on_exit deletes the entity: reading it then finds nothing.
    wait_until(lambda: request("GET", f"{base}/api/counter/client-1").json()["exists"] is False)


def test_entity_routes_of_the_http_api(entities_host: BackgroundHost) -> None:
    api = f"{entities_host.base_url}/runtime/webhooks/durabletask/entities"
    assert request("POST", f"{api}/Counter/http-1?op=add", 3).status == 202
    assert request("POST", f"{api}/Counter/http-1?op=add", 4).status == 202
    wait_until(lambda: request("GET", f"{api}/Counter/http-1").status == 200)
    assert wait_until(lambda: request("GET", f"{api}/Counter/http-1").json() == 7)
    assert request("GET", f"{api}/Counter/never-used").status == 404
    listed = request("GET", f"{api}/Counter?fetchState=true").json()
    assert {"entityId": {"name": "counter", "key": "http-1"}}.items() <= next(
        e for e in listed if e["entityId"]["key"] == "http-1"
    ).items()
    assert next(e for e in listed if e["entityId"]["key"] == "http-1")["state"] == 7
    assert request("DELETE", f"{api}/Counter/http-1").status == 202
    wait_until(lambda: request("GET", f"{api}/Counter/http-1").status == 404)


INVALID_KEY = "entityKey (Parameter 'Entity keys must not contain /, \\, #, ?, or control characters.')"


@pytest.mark.parametrize("key", ["a%3Fb", "a%23b", "a%5Cb", "a%0Ab", "a%01b", "a%7Fb"])
def test_a_signal_with_a_key_the_client_refuses_answers_400(entities_host: BackgroundHost, key: str) -> None:
    api = f"{entities_host.base_url}/runtime/webhooks/durabletask/entities"
    for method, path in (("POST", f"/Counter/{key}?op=add"), ("DELETE", f"/Counter/{key}")):
        reply = request(method, api + path, 1)
        assert reply.status == 400, (method, path, reply.body)
        assert reply.json() == {"Message": INVALID_KEY}


def test_a_signal_to_an_entity_function_the_app_lacks_answers_400(entities_host: BackgroundHost) -> None:
    api = f"{entities_host.base_url}/runtime/webhooks/durabletask/entities"
    reply = request("POST", f"{api}/Missing/k1?op=add", 1)
    assert reply.status == 400, reply.body
    assert reply.json() == {
        "Message": "The function 'Missing' doesn't exist, is disabled, or is not an entity function. "
        "Additional info: The following are the known entity functions: 'Counter'."
    }
    # The function name is matched without regard to case, as the host's function names are.
    assert request("POST", f"{api}/cOUNTER/k1?op=add", 1).status == 202


@pytest.mark.azure_storage  # hosts in other processes
def test_no_signal_is_lost_or_applied_twice_when_the_host_is_killed(
    storage_connection: str, tmp_path
) -> None:
    from emulator.testing import SubprocessHost

    app = TEST_APPS / "entities_app"
    # A task hub of their own: the two hosts of this story are the only ones sharing it.
    hub = {"AzureFunctionsJobHost__extensions__durableTask__hubName": "EntitiesCrashHub"}
    first = SubprocessHost(
        app, connection_string=storage_connection, lease_seconds=4, env=hub, log_path=tmp_path / "a.log"
    )
    second = SubprocessHost(
        app, connection_string=storage_connection, lease_seconds=4, env=hub, log_path=tmp_path / "b.log"
    )
    try:
        first.start()
        starts = [
            start_orchestration(first.base_url, "SignalMany", {"key": "crashy", "count": 20})
            for _ in range(25)
        ]
        first.kill()  # part-way: some signals applied, some sent, some not yet sent
        second.start()
        for started in starts:
            url = started["statusQueryGetUri"].replace(first.base_url, second.base_url)
            assert wait_for_status(url, timeout=120)["runtimeStatus"] == "Completed"

        def counter() -> int:
            reader = start_orchestration(second.base_url, "ReadCounter", "crashy")
            return int(wait_for_status(reader["statusQueryGetUri"], timeout=120)["output"])

        # Signals are one-way: an orchestration completes once they are sent, and a message the
        # killed host had received comes back only when its lease (4 s) lapses.
        values = [counter()]

        def all_applied() -> bool:
            values.append(counter())
            return values[-1] >= 500

        wait_until(all_applied, timeout=60, interval=0.5)
        time.sleep(5)  # past every lease: nothing is applied a second time later either
        assert values[-1] == counter() == 500
    finally:
        first.kill()
        second.kill()
