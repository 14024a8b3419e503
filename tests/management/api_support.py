"""Helpers for the management API tests: plain HTTP to the webhook and RPC routes, storage peeks."""

from __future__ import annotations

import time
import uuid
from typing import Any

from azure.data.tables import TableServiceClient

from emulator.durable._history import OrchestrationStatus
from emulator.taskhub import InstanceUpdate
from emulator.testing import BackgroundHost
from emulator.testing._memory_hubs import is_memory
from tests import support
from tests.support import Reply, request

HUB = "ClientHub"
WEBHOOK = "/runtime/webhooks/durabletask"


def api(host: BackgroundHost, path: str) -> str:
    return f"{host.base_url}{WEBHOOK}{path}"


def rpc(host: BackgroundHost, path: str) -> str:
    return f"http://127.0.0.1:{host.host.options.port}/durabletask{path}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def start(
    host: BackgroundHost, name: str, body: Any = None, instance_id: str | None = None
) -> dict[str, Any]:
    path = f"/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
    reply = request("POST", api(host, path), body)
    assert reply.status == 202, reply.body
    payload: dict[str, Any] = reply.json()
    return payload


def status(host: BackgroundHost, instance_id: str, query: str = "") -> Reply:
    return request("GET", api(host, f"/instances/{instance_id}{query}"))


def wait_for(host: BackgroundHost, instance_id: str, wanted: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the status until ``runtimeStatus`` is ``wanted``."""
    deadline = time.monotonic() + timeout
    while True:
        reply = status(host, instance_id)
        current = reply.json()["runtimeStatus"] if reply.status in (200, 202, 500) else None
        if current == wanted:
            found: dict[str, Any] = reply.json()
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"instance {instance_id} is {current}, not {wanted}, after {timeout} s")
        time.sleep(0.05)


def set_runtime_status(host: BackgroundHost, instance_id: str, runtime_status: str) -> None:
    """Put an instance in a state directly, to check the client's rules apart from the engine."""
    storage = host.host.storage
    assert storage is not None

    async def put() -> None:
        record = await storage.read_instance(instance_id)
        assert record is not None
        status = OrchestrationStatus[runtime_status]
        await storage.update_instance(
            instance_id, InstanceUpdate(record.last_updated_time, runtime_status=status)
        )

    host.run(put())


def history_rows(connection: str, instance_id: str, hub: str = HUB) -> list[dict[str, Any]]:
    if is_memory(connection):
        return support.history_rows(connection, hub, instance_id)
    with TableServiceClient.from_connection_string(connection) as service:
        table = service.get_table_client(f"{hub}History")
        rows = [dict(e) for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": instance_id})]
    return sorted((r for r in rows if r["RowKey"] != "sentinel"), key=lambda r: r["RowKey"])
