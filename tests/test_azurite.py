"""The Azurite manager against a real Azurite on free ports."""

from __future__ import annotations

import logging
import os
import socket
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from emulator.host._azurite import (
    DEV_ACCOUNT_KEY,
    DEV_ACCOUNT_NAME,
    AzuriteEndpoints,
    AzuriteNotInstalledError,
    AzuriteServer,
    connect_storage,
    describe_storage,
    find_azurite_executable,
    free_port,
    is_development_storage,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    server = AzuriteServer.start(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        server.stop()


def _unused_endpoints() -> AzuriteEndpoints:
    ports = {free_port()}
    while len(ports) < 3:
        ports.add(free_port())
    blob, queue, table = sorted(ports)
    return AzuriteEndpoints(blob_port=blob, queue_port=queue, table_port=table)


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# --- connection strings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "UseDevelopmentStorage=true",
        "UseDevelopmentStorage=true;",
        "usedevelopmentstorage=TRUE",
        "  UseDevelopmentStorage = true ; ",
        ";UseDevelopmentStorage=True;;",
        "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://myProxyUri",
    ],
)
def test_development_storage_strings(value: str) -> None:
    assert is_development_storage(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "UseDevelopmentStorage=false",
        "UseDevelopmentStorage",
        "UseDevelopmentStorage=truefalse",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        AzuriteEndpoints().connection_string,
    ],
)
def test_other_connection_strings(value: str) -> None:
    assert not is_development_storage(value)


def test_explicit_connection_string() -> None:
    endpoints = AzuriteEndpoints(blob_port=1, queue_port=2, table_port=3)
    parts = dict(part.split("=", 1) for part in endpoints.connection_string.split(";"))
    assert parts == {
        "DefaultEndpointsProtocol": "http",
        "AccountName": DEV_ACCOUNT_NAME,
        "AccountKey": DEV_ACCOUNT_KEY,
        "BlobEndpoint": f"http://127.0.0.1:1/{DEV_ACCOUNT_NAME}",
        "QueueEndpoint": f"http://127.0.0.1:2/{DEV_ACCOUNT_NAME}",
        "TableEndpoint": f"http://127.0.0.1:3/{DEV_ACCOUNT_NAME}",
    }


def test_executable_is_installed() -> None:
    found = find_azurite_executable([])
    assert found is not None, "Azurite is not installed: run ./dev setup"
    assert os.access(found, os.X_OK)


# --- a running Azurite --------------------------------------------------------------------------


def test_server_answers_on_its_ports(azurite: AzuriteServer) -> None:
    assert azurite.running
    assert azurite.endpoints.all_listening()
    assert len(set(azurite.endpoints.ports)) == 3
    assert azurite.connection_string == azurite.endpoints.connection_string
    assert (azurite.location / "azurite.log").is_file()


def test_table_round_trip(azurite: AzuriteServer) -> None:
    name = "t" + uuid.uuid4().hex[:12]
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        table = service.create_table(name)
        table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "Value": 1})
        table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "Value": 2, "Extra": "x"})
        entity = table.get_entity("p", "r")
        assert entity["Value"] == 2
        assert entity["Extra"] == "x"


def test_queue_round_trip(azurite: AzuriteServer) -> None:
    name = "q" + uuid.uuid4().hex[:12]
    with QueueClient.from_connection_string(azurite.connection_string, name) as queue:
        queue.create_queue()
        queue.send_message("hello")
        messages = list(queue.receive_messages(max_messages=32, visibility_timeout=30))
        assert [message.content for message in messages] == ["hello"]
        queue.delete_message(messages[0])


def test_blob_round_trip(azurite: AzuriteServer) -> None:
    name = "c" + uuid.uuid4().hex[:12]
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.create_container(name)
        container.upload_blob("dir/data.bin", b"\x00payload\xff")
        assert container.download_blob("dir/data.bin").readall() == b"\x00payload\xff"


def test_connect_storage_reuses_a_running_azurite(
    azurite: AzuriteServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="emulator.azurite"):
        connection = connect_storage(
            "UseDevelopmentStorage=true", tmp_path / "data", endpoints=azurite.endpoints
        )
    blob = f"http://127.0.0.1:{azurite.endpoints.blob_port}/{DEV_ACCOUNT_NAME}"
    assert (
        f"Storage: the Azurite already running on 127.0.0.1, account '{DEV_ACCOUNT_NAME}' (blob {blob},"
        in (caplog.text)
    )
    assert DEV_ACCOUNT_KEY not in caplog.text
    assert connection.server is None
    assert connection.connection_string == azurite.connection_string
    connection.close()
    assert azurite.running
    assert not (tmp_path / "data").exists()


def test_refuses_ports_in_use(azurite: AzuriteServer, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=str(azurite.endpoints.blob_port)):
        AzuriteServer.start(tmp_path, azurite.endpoints)


def test_storage_is_described_without_keys_or_signatures() -> None:
    custom = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0;"
        "BlobEndpoint=http://127.0.0.1:20000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:20001/devstoreaccount1;"
        "TableEndpoint=http://127.0.0.1:20002/devstoreaccount1"
    )
    assert describe_storage(custom) == (
        "account 'devstoreaccount1' (blob http://127.0.0.1:20000/devstoreaccount1, "
        "queue http://127.0.0.1:20001/devstoreaccount1, table http://127.0.0.1:20002/devstoreaccount1)"
    )
    sas = (
        "BlobEndpoint=https://a.blob.core.windows.net/?sv=2024&sig=c2lnbmF0dXJl;SharedAccessSignature=sv=2024"
    )
    assert describe_storage(sas) == "account '(none named)' (blob https://a.blob.core.windows.net/)"


# --- starting and stopping ----------------------------------------------------------------------


def test_stop_frees_the_ports(tmp_path: Path) -> None:
    with AzuriteServer.start(tmp_path) as server:
        assert server.endpoints.all_listening()
    assert server.process.returncode is not None
    assert not server.endpoints.any_listening()
    server.stop()  # idempotent
    server.kill()


def test_connect_storage_starts_azurite_when_nothing_listens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    endpoints = _unused_endpoints()
    data_dir = tmp_path / "data"
    with caplog.at_level(logging.INFO, logger="emulator.azurite"):
        connection = connect_storage(" usedevelopmentstorage=true; ", data_dir, endpoints=endpoints)
    try:
        assert connection.server is not None
        assert connection.connection_string == endpoints.connection_string
        assert endpoints.all_listening()
        assert f"Starting Azurite ({endpoints.describe()}) in {data_dir}" in caplog.text
        table = f"table http://127.0.0.1:{endpoints.table_port}/{DEV_ACCOUNT_NAME})"
        assert f"Storage: Azurite started by the emulator, account '{DEV_ACCOUNT_NAME}' (" in caplog.text
        assert f"{table}; its data in {data_dir}, its log {data_dir / 'azurite.log'}" in caplog.text
        assert DEV_ACCOUNT_KEY not in caplog.text
        assert (data_dir / "azurite.log").is_file()
        # Killed like a crash: the ports are released at once.
        connection.server.kill()
        assert not endpoints.any_listening()
    finally:
        connection.close()


def test_connect_storage_names_the_busy_ports(tmp_path: Path) -> None:
    endpoints = _unused_endpoints()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", endpoints.queue_port))
        busy.listen()
        with pytest.raises(RuntimeError) as raised:
            connect_storage("UseDevelopmentStorage=true", tmp_path, endpoints=endpoints)
    message = str(raised.value)
    assert f"port(s) {endpoints.queue_port} are in use" in message
    assert "AzureWebJobsStorage" in message
    assert not list(tmp_path.iterdir())


def test_connect_storage_leaves_other_strings_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    value = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net"
    with caplog.at_level(logging.INFO, logger="emulator.azurite"):
        connection = connect_storage(value, tmp_path / "data")
    assert (
        "Storage: account 'acct' (blob https://acct.blob.core.windows.net, queue https://acct.queue.core"
        ".windows.net, table https://acct.table.core.windows.net), from the connection string"
    ) in caplog.text
    assert "a2V5" not in caplog.text
    assert connection.connection_string == value
    assert connection.server is None
    connection.close()
    assert not (tmp_path / "data").exists()


# --- errors -------------------------------------------------------------------------------------


def test_missing_executable(tmp_path: Path) -> None:
    with pytest.raises(AzuriteNotInstalledError, match=r"npm install azurite@3\.37\.0") as raised:
        AzuriteServer.start(tmp_path, executable=tmp_path / "no-such-azurite")
    assert "./dev setup" in str(raised.value)
    assert "Node.js 18+" in str(raised.value)


def test_executable_that_exits(tmp_path: Path) -> None:
    bogus = _script(tmp_path / "azurite", 'echo "bogus azurite: cannot start" >&2; exit 3')
    with pytest.raises(RuntimeError, match="exited with code 3") as raised:
        AzuriteServer.start(tmp_path / "data", executable=bogus)
    assert "bogus azurite: cannot start" in str(raised.value)


def test_executable_that_never_answers(tmp_path: Path) -> None:
    bogus = _script(tmp_path / "azurite", 'echo "waiting forever"; exec sleep 60')
    with pytest.raises(RuntimeError, match="did not answer") as raised:
        AzuriteServer.start(tmp_path / "data", executable=bogus, ready_timeout=1.0)
    assert "waiting forever" in str(raised.value)
