"""Plain HTTP helpers for tests: what a user's script or curl does, nothing more."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from emulator.testing._memory_hubs import is_memory, memory_task_hub

if TYPE_CHECKING:
    from emulator.taskhub import InstanceRecord, TaskHub
    from emulator.taskhub.azure import AzureTaskHub

T = TypeVar("T")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    all_headers = {"Content-Type": "application/json"} if data is not None else {}
    all_headers.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return Reply(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, dict(err.headers), err.read())


def wait_for_status(status_url: str, timeout: float = 60.0) -> dict[str, Any]:
    """Follow ``statusQueryGetUri`` like a client would: 202 while running, 200 when done."""
    deadline = time.monotonic() + timeout
    while True:
        reply = request("GET", status_url)
        if reply.status == 200:
            result: dict[str, Any] = reply.json()
            return result
        if reply.status != 202:
            raise AssertionError(f"status query answered {reply.status}: {reply.body!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"instance still {reply.json()['runtimeStatus']} after {timeout} s")
        time.sleep(0.05)


def start_orchestration(
    base_url: str, name: str, body: Any = None, instance_id: str | None = None
) -> dict[str, Any]:
    """Start through a test app's ``start/{name}/{instance_id?}`` HTTP starter."""
    url = f"{base_url}/api/start/{name}" + (f"/{instance_id}" if instance_id else "")
    reply = request("POST", url, body)
    assert reply.status == 202, reply.body
    payload: dict[str, Any] = reply.json()
    return payload


def get_status(payload: dict[str, Any], **flags: bool) -> Reply:
    query = "".join(f"&{k}={'true' if v else 'false'}" for k, v in flags.items())
    return request("GET", payload["statusQueryGetUri"] + query)


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def history_rows(connection: str, hub: str, instance_id: str) -> list[dict[str, Any]]:
    """The instance's History table rows in order (sentinel left out), as a tool would read them.

    On an in-memory task hub, the rows its history would be in Azure Storage.
    """
    if is_memory(connection):
        return _memory_history_rows(hub, instance_id)
    from azure.data.tables import TableServiceClient

    with TableServiceClient.from_connection_string(connection) as service:
        table = service.get_table_client(f"{hub}History")
        rows = [dict(e) for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": instance_id})]
    sentinel = next((r for r in rows if r["RowKey"] == "sentinel"), None)
    events = sorted((r for r in rows if r["RowKey"] != "sentinel"), key=lambda r: r["RowKey"])
    if sentinel is not None:
        # Rows past the committed count or of an older execution are not history.
        events = [r for r in events if r.get("ExecutionId") == sentinel.get("ExecutionId")]
        events = events[: int(sentinel.get("HistoryEventCount", len(events)))]
    return events


def _memory_history_rows(hub: str, instance_id: str) -> list[dict[str, Any]]:
    from emulator.taskhub.azure._history import history_row

    stored = asyncio.run(memory_task_hub(hub).read_history(instance_id))
    execution_id = stored.execution_id or ""
    return [history_row(instance_id, n, execution_id, event) for n, event in enumerate(stored.events)]


def open_task_hub(connection: str, hub: str) -> TaskHub:
    """The task hub ``hub`` as another client of it sees it: in Azure Storage, or in this process's
    memory on an in-memory test session (close it when done)."""
    if is_memory(connection):
        return memory_task_hub(hub)
    from emulator.taskhub.azure import AzureTaskHub

    return AzureTaskHub(connection, hub)


def read_instance(connection: str, hub: str, instance_id: str) -> InstanceRecord | None:
    """The instance's record as the task hub stores it (None: there is none)."""

    async def read() -> InstanceRecord | None:
        task_hub = open_task_hub(connection, hub)
        try:
            return await task_hub.read_instance(instance_id)
        finally:
            await task_hub.close()

    return asyncio.run(read())


def decisions(rows: list[dict[str, Any]]) -> list[tuple[str, int, str | None]]:
    """(EventType, EventId, Name) of every scheduling event, in order."""
    kinds = {"TaskScheduled", "TimerCreated", "SubOrchestrationInstanceCreated", "EventSent"}
    return [(r["EventType"], r["EventId"], r.get("Name")) for r in rows if r["EventType"] in kinds]


def with_task_hub(connection: str, scenario: Callable[[AzureTaskHub], Awaitable[T]]) -> T:
    """Run ``scenario`` against a new task hub in Azurite (``AzureTaskHub`` itself)."""
    from emulator.taskhub.azure import AzureTaskHub

    async def main() -> T:
        storage = AzureTaskHub(connection, f"Hub{uuid.uuid4().hex[:12]}")
        try:
            await storage.create()
            return await scenario(storage)
        finally:
            await storage.close()

    return asyncio.run(main())
