"""History appends against Azurite: new rows are inserted, rows that exist already are replaced,
and the sentinel's ETag still turns away a second writer (docs/durability.md invariant 1)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator.durable import _history as h
from emulator.durable._history import OrchestrationStatus
from emulator.taskhub import HistoryConflictError, InstanceUpdate
from emulator.taskhub.azure import AzureTaskHub
from emulator.taskhub.azure._history import history_row
from tests.support import with_task_hub

pytestmark = pytest.mark.timeout(60)


def _started(instance_id: str, execution_id: str) -> list[h.HistoryEvent]:
    now = h.utcnow()
    return [
        h.orchestrator_started(now),
        h.execution_started(
            instance_id=instance_id,
            execution_id=execution_id,
            name="Chain",
            input_text=json.dumps(1),
            timestamp=now,
        ),
        h.task_scheduled(0, "Step", now),
        h.orchestrator_completed(now),
    ]


def _results(values: list[int]) -> list[h.HistoryEvent]:
    now = h.utcnow()
    return [h.task_completed(n, json.dumps(v), now) for n, v in enumerate(values)]


def _types(events: list[h.HistoryEvent]) -> list[str]:
    return [h.event_type(e).name for e in events]


def test_appends_to_a_new_instance_are_read_back_in_order(storage_connection: str) -> None:
    async def scenario(storage: AzureTaskHub) -> Any:
        etag = await storage.append_history("i1", "e1", 0, _started("i1", "e1"), None)
        await storage.append_history("i1", "e1", 4, _results([7, 8]), etag)
        return await storage.read_history("i1")

    stored = with_task_hub(storage_connection, scenario)
    assert stored.execution_id == "e1"
    assert _types(stored.events)[:4] == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
        "OrchestratorCompleted",
    ]
    assert [e["Result"] for e in stored.events[4:]] == ["7", "8"]


def test_a_history_with_no_sentinel_is_read_without_a_query(
    storage_connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new instance's first read costs one point read: Azurite answers a query by testing every
    row of the table. Rows left without a sentinel (an execution purged part-way) read as no
    history, and the first append replaces them."""

    async def scenario(storage: AzureTaskHub) -> Any:
        await storage._history.table.upsert_entity(history_row("i5", 0, "gone", _results([666])[0]))
        queries: list[str] = []
        table = storage._history.table
        real_query = table.query_entities

        def counting_query(*args: Any, **kwargs: Any) -> Any:
            queries.append(str(args[0] if args else kwargs.get("query_filter")))
            return real_query(*args, **kwargs)

        monkeypatch.setattr(table, "query_entities", counting_query)
        empty = await storage.read_history("i5")
        queries_when_empty = len(queries)
        await storage.append_history("i5", "e1", 0, _started("i5", "e1"), empty.version)
        stored = await storage.read_history("i5")
        return empty, queries_when_empty, len(queries), stored

    empty, queries_when_empty, queries_after, stored = with_task_hub(storage_connection, scenario)
    assert (empty.events, empty.version, empty.execution_id) == ([], None, None)
    assert queries_when_empty == 0
    assert queries_after == 1  # a history that exists is read with one query
    assert stored.execution_id == "e1"
    assert _types(stored.events) == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
        "OrchestratorCompleted",
    ]


def test_a_row_left_past_the_committed_count_is_replaced(storage_connection: str) -> None:
    """A crash between two transactions of one append leaves rows the sentinel does not count."""

    async def scenario(storage: AzureTaskHub) -> Any:
        etag = await storage.append_history("i2", "e1", 0, _started("i2", "e1"), None)
        # The uncommitted first transaction of an append that crashed: row 4, sentinel unchanged.
        stale = history_row("i2", 4, "e1", _results([666])[0])
        await storage._history.table.upsert_entity(stale)
        # A host that never read the partition appends at the committed count (4): the insert
        # finds row 4, and the same transaction goes again as replaces.
        await storage.append_history("i2", "e1", 4, _results([1, 2]), etag)
        return await storage.read_history("i2")

    stored = with_task_hub(storage_connection, scenario)
    assert [e["Result"] for e in stored.events[4:]] == ["1", "2"]


def test_a_new_execution_replaces_the_rows_of_the_old_one(storage_connection: str) -> None:
    async def scenario(storage: AzureTaskHub) -> Any:
        etag = await storage.append_history("i3", "old", 0, _started("i3", "old"), None)
        etag = await storage.append_history("i3", "old", 4, _results([1, 2, 3]), etag)
        await storage.append_history("i3", "new", 0, _started("i3", "new"), etag)
        return await storage.read_history("i3")

    stored = with_task_hub(storage_connection, scenario)
    assert stored.execution_id == "new" and len(stored.events) == 4
    assert stored.events[1]["OrchestrationInstance"]["ExecutionId"] == "new"


def test_a_second_writer_is_turned_away_and_changes_nothing(storage_connection: str) -> None:
    async def scenario(storage: AzureTaskHub) -> tuple[int, int, Any]:
        etag = await storage.append_history("i4", "e1", 0, _started("i4", "e1"), None)
        await storage.append_history("i4", "e1", 4, _results([1]), etag)
        refused = 0
        # The same ETag again (a writer that read before the append above) ...
        try:
            await storage.append_history("i4", "e1", 4, _results([9, 9]), etag)
        except HistoryConflictError:
            refused += 1
        # ... and a writer that believes the instance new: its sentinel insert finds the sentinel,
        # also after the rows it would insert went again as replaces.
        try:
            await storage.append_history("i4", "e2", 0, _started("i4", "e2"), None)
        except HistoryConflictError:
            refused += 1
        rows = [e async for e in storage._history.table.query_entities("PartitionKey eq 'i4'")]
        return refused, len(rows), await storage.read_history("i4")

    refused, rows, stored = with_task_hub(storage_connection, scenario)
    assert refused == 2
    assert rows == 6  # five events and the sentinel
    assert stored.execution_id == "e1" and [e["Result"] for e in stored.events[4:]] == ["1"]


def test_an_instance_row_merge_creates_a_missing_row(storage_connection: str) -> None:
    async def scenario(storage: AzureTaskHub) -> tuple[Any, Any]:
        running = InstanceUpdate(h.utcnow(), runtime_status=OrchestrationStatus.Running, name="Chain")
        await storage.update_instance("i5", running)
        created = await storage._instances.table.get_entity("i5", "")
        await storage.update_instance(
            "i5", InstanceUpdate(h.utcnow(), runtime_status=OrchestrationStatus.Completed)
        )
        return created, await storage._instances.table.get_entity("i5", "")

    created, merged = with_task_hub(storage_connection, scenario)
    assert created["RuntimeStatus"] == "Running"
    assert merged["RuntimeStatus"] == "Completed" and merged["Name"] == "Chain"


def test_an_update_of_a_missing_instance_row_does_not_create_it(storage_connection: str) -> None:
    """Only a write that names the orchestration creates the row: any other update of a missing
    row is of an instance purged meanwhile."""

    async def scenario(storage: AzureTaskHub) -> tuple[bool, Any]:
        written = await storage.update_instance("gone", InstanceUpdate(h.utcnow(), execution_id="e1"))
        return written, await storage.read_instance("gone")

    written, record = with_task_hub(storage_connection, scenario)
    assert (written, record) == (False, None)


def test_replacing_events_rewrites_only_the_columns_that_changed(storage_connection: str) -> None:
    """As a rewind does: the new Reason replaces the old one and its blob, a long Details stays
    in its blob, and the replace moves the history's version on."""
    from emulator.taskhub.azure._large import MAX_INLINE_PROPERTY_CHARS

    long_text = "x" * (MAX_INLINE_PROPERTY_CHARS + 1)

    async def scenario(storage: AzureTaskHub) -> tuple[dict[str, Any], dict[str, Any], Any, bool]:
        now = h.utcnow()
        etag = await storage.append_history("i6", "e1", 0, _started("i6", "e1"), None)
        etag = await storage.append_history(
            "i6", "e1", 4, [h.task_failed(0, long_text, long_text, now)], etag
        )
        before = await storage._history.table.get_entity("i6", f"{4:016X}")
        stored = await storage.read_history("i6")
        rewound = {
            **stored.events[4],
            "Reason": "Rewound: TaskFailed",
            "EventType": int(h.EventType.GenericEvent),
        }
        version = await storage.replace_history_events("i6", {4: rewound}, stored.version)
        after = await storage._history.table.get_entity("i6", f"{4:016X}")
        refused = False
        try:
            await storage.replace_history_events("i6", {4: rewound}, stored.version)
        except HistoryConflictError:
            refused = True
        return dict(before), dict(after), (await storage.read_history("i6"), version), refused

    before, after, (stored, version), refused = with_task_hub(storage_connection, scenario)
    assert before["ReasonBlobName"] and before["DetailsBlobName"]
    assert after["EventType"] == "GenericEvent" and after["Reason"] == "Rewound: TaskFailed"
    assert "ReasonBlobName" not in after
    assert after["DetailsBlobName"] == before["DetailsBlobName"] and after["Details"] == ""
    assert {k: v for k, v in after.items() if k not in ("EventType", "Reason", "ReasonBlobName")} == {
        k: v for k, v in before.items() if k not in ("EventType", "Reason", "ReasonBlobName")
    }
    assert stored.version == version and stored.events[4]["Details"] == long_text
    assert refused
