"""Management requests that name a task hub (``taskHub``) and a storage connection (``connection``).

The real host builds a client for the named hub on the named connection: requests for another hub
act on that hub's tables and queues, never on the host's own. Nothing runs the other hub's
instances here (no host of that hub), so what a test starts there stays Pending, as on Azure.
"""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from emulator.testing import BackgroundHost
from tests.management.api_support import HUB, api, start, status, unique, wait_for
from tests.management.test_client_sdk import call
from tests.support import request

# Other task hubs are opened in the storage account of a connection.
pytestmark = pytest.mark.azure_storage


def _other_hub() -> str:
    return f"Other{uuid.uuid4().hex[:8]}"


def _instance_row(connection: str, hub: str, instance_id: str) -> dict | None:
    with TableServiceClient.from_connection_string(connection) as service:
        rows = list(
            service.get_table_client(f"{hub}Instances").query_entities(
                "PartitionKey eq @pk", parameters={"pk": instance_id}
            )
        )
    return dict(rows[0]) if rows else None


def _queued(connection: str, hub: str) -> int:
    """Messages waiting in the hub's control queues."""
    with QueueServiceClient.from_connection_string(connection) as service:
        total = 0
        for queue in service.list_queues(name_starts_with=f"{hub.lower()}-control-"):
            total += len(service.get_queue_client(queue.name).peek_messages(max_messages=32))
        return total


def _tables(connection: str) -> set[str]:
    with TableServiceClient.from_connection_string(connection) as service:
        return {t.name for t in service.list_tables()}


def test_a_start_for_another_hub_creates_its_instance_there(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    hub, instance_id = _other_hub(), unique("elsewhere")
    reply = request("POST", api(client_host, f"/orchestrators/Echo/{instance_id}?taskHub={hub}"), {"v": 1})
    assert reply.status == 202, reply.body
    payload = reply.json()
    # The links it hands out name that hub, so following them stays there.
    assert f"taskHub={hub}&connection=Storage" in payload["statusQueryGetUri"]
    row = _instance_row(storage_connection, hub, instance_id)
    assert row is not None and row["RuntimeStatus"] == "Pending" and row["Name"] == "Echo"
    assert _queued(storage_connection, hub) == 1  # for a host of that hub to run
    assert _instance_row(storage_connection, HUB, instance_id) is None
    assert status(client_host, instance_id).status == 404
    there = request("GET", payload["statusQueryGetUri"])
    assert there.status == 202 and there.json()["runtimeStatus"] == "Pending"
    # The app's orchestrators are not checked for another hub (the real client checks its own only).
    assert request("POST", api(client_host, f"/orchestrators/NotInThisApp?taskHub={hub}")).status == 202


def test_terminate_raise_list_and_purge_for_another_hub_leave_this_hub_alone(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    hub, instance_id = _other_hub(), unique("twin")
    # The same instance id in both hubs: Completed here, Pending there.
    start(client_host, "Echo", {"v": 1}, instance_id)
    wait_for(client_host, instance_id, "Completed")
    there = request("POST", api(client_host, f"/orchestrators/Echo/{instance_id}?taskHub={hub}"), {"v": 2})
    assert there.status == 202
    query = f"?taskHub={hub}&connection=Storage"

    # Pending there: both are accepted (here, Completed, they would be 410 Gone).
    raised = request("POST", api(client_host, f"/instances/{instance_id}/raiseEvent/Go{query}"), {"x": 1})
    assert raised.status == 202, raised.body
    terminated = request("POST", api(client_host, f"/instances/{instance_id}/terminate{query}&reason=r"))
    assert terminated.status == 202, terminated.body
    assert _queued(storage_connection, hub) == 3  # the start, the event, the terminate

    listed = request("GET", api(client_host, f"/instances{query}&instanceIdPrefix={instance_id}"))
    assert [(s["instanceId"], s["input"]) for s in listed.json()] == [(instance_id, {"v": 2})]

    purged = request("DELETE", api(client_host, f"/instances/{instance_id}{query}"))
    assert purged.status == 200 and purged.json() == {"instancesDeleted": 1}
    assert _instance_row(storage_connection, hub, instance_id) is None
    assert request("GET", api(client_host, f"/instances/{instance_id}{query}")).status == 404
    # This hub's instance is untouched.
    mine = status(client_host, instance_id)
    assert mine.status == 200 and mine.json()["input"] == {"v": 1}


def test_the_hosts_own_hub_and_connection_by_name_are_the_host_itself(client_host: BackgroundHost) -> None:
    instance_id = unique("own")
    reply = request(
        "POST", api(client_host, f"/orchestrators/Echo/{instance_id}?taskHub={HUB}&connection=Storage")
    )
    assert reply.status == 202
    assert wait_for(client_host, instance_id, "Completed")["name"] == "Echo"  # run by this host
    # Blank values are no values: the host's own hub.
    assert status(client_host, instance_id, "?taskHub=%20&connection=").status == 200
    # Unknown orchestrators are still refused for the host's own hub.
    missing = request("POST", api(client_host, f"/orchestrators/Missing?taskHub={HUB}"))
    assert missing.status == 400


def test_a_connection_names_an_app_setting_of_a_storage_account(
    client_host: BackgroundHost, storage_connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another setting for the same account: the host's own hub through it is the host itself...
    monkeypatch.setenv("AltStorage", storage_connection)
    instance_id = unique("alt")
    start(client_host, "Echo", {"v": 1}, instance_id)
    wait_for(client_host, instance_id, "Completed")
    assert status(client_host, instance_id, "?connection=AltStorage").status == 200
    # ...and another hub through it is that hub, with links that keep naming the connection.
    hub = _other_hub()
    reply = request(
        "POST", api(client_host, f"/orchestrators/Echo/{instance_id}?taskHub={hub}&connection=AltStorage")
    )
    assert reply.status == 202, reply.body
    assert f"taskHub={hub}&connection=AltStorage" in reply.json()["statusQueryGetUri"]
    assert _instance_row(storage_connection, hub, instance_id) is not None


def test_an_invalid_hub_name_gets_400(client_host: BackgroundHost, storage_connection: str) -> None:
    for name in ("bad!hub", "ab", "1abc", "x" * 46):
        for method, path in (
            ("GET", "/instances/any"),
            ("POST", "/orchestrators/Echo"),
            ("DELETE", "/instances/any"),
        ):
            reply = request(method, api(client_host, f"{path}?taskHub={name}"))
            assert reply.status == 400, (name, method, path, reply.body)
            assert reply.json()["ExceptionMessage"] == (
                f"Task hub name '{name}' should contain only alphanumeric characters, start with a letter, "
                "and have length between 3 and 45."
            )
    assert not any(t.lower().startswith("bad") for t in _tables(storage_connection))


def test_an_unknown_connection_is_an_error_not_the_hosts_own(client_host: BackgroundHost) -> None:
    instance_id = unique("conn")
    start(client_host, "Echo", {"v": 1}, instance_id)
    wait_for(client_host, instance_id, "Completed")
    reply = status(client_host, instance_id, "?connection=NoSuchSetting")
    assert reply.status == 500, reply.body
    assert (
        reply.json()["ExceptionMessage"]
        == "Unable to resolve the Azure Storage connection named 'NoSuchSetting'."
    )
    purge = request("DELETE", api(client_host, f"/instances/{instance_id}?connection=NoSuchSetting"))
    assert purge.status == 500
    assert status(client_host, instance_id).status == 200  # nothing was purged


def test_a_hub_that_does_not_exist_is_not_created_by_reads(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    hub = _other_hub()
    for method, path in (
        ("GET", "/instances/any"),
        ("GET", "/instances"),
        ("DELETE", "/instances/any"),
        ("POST", "/instances/any/terminate"),
        ("POST", "/entities/Counter/k?op=add"),
    ):
        reply = request(
            method, api(client_host, f"{path}?taskHub={hub}" if "?" not in path else f"{path}&taskHub={hub}")
        )
        assert reply.status == 404, (method, path, reply.body)
        assert reply.json()["Message"].startswith(
            f"The task hub '{hub}' does not exist in this storage account."
        )
    assert f"{hub}Instances" not in _tables(storage_connection)


def test_the_sdk_client_signals_an_entity_of_another_hub(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    hub = _other_hub()
    assert request("POST", api(client_host, f"/orchestrators/Echo?taskHub={hub}")).status == 202
    # The app has no entity function, but the check is for its own hub only.
    reply = call(client_host, "signal_entity", name="Tally", key="k1", op="add", input=2, task_hub=hub)
    assert reply.status == 200, reply.body
    assert _queued(storage_connection, hub) == 2  # the start and the signal
    refused = call(client_host, "signal_entity", name="Tally", key="k1", op="add", input=2)
    assert refused.status == 409  # the host's own hub: no such entity function
