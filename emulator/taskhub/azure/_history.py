"""The ``{hub}History`` table: one partition per instance, one row per event, and the sentinel.

RowKey is the event's 16-digit hex position; the ``sentinel`` row's ETag guards every append
(docs/durability.md invariant 1) and its ``HistoryEventCount`` says how many rows are committed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from emulator.durable import _history as h
from emulator.durable._crash import crash_point
from emulator.durable._history import EventType, HistoryEvent, OrchestrationStatus
from emulator.taskhub._interface import HistoryConflictError, StoredHistory
from emulator.taskhub.azure._keys import escape_partition_key
from emulator.taskhub.azure._large import LargeValues
from emulator.taskhub.azure._table_batch import Operation, TransactionFailed, submit_transaction

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

SENTINEL_ROW_KEY = "sentinel"
#: Table transactions hold at most 100 operations (Azurite stores nothing beyond that).
MAX_BATCH_OPERATIONS = 100
#: Columns that hold nested objects: the real provider stores them as JSON text.
_NESTED_COLUMNS = frozenset({"OrchestrationInstance", "ParentInstance", "Tags", "FailureDetails"})
_DATETIME_COLUMNS = frozenset({"FireAt", "ScheduledStartTime"})


def history_row(partition_key: str, index: int, execution_id: str, event: HistoryEvent) -> dict[str, Any]:
    """A History table row: enum names, ``_Timestamp``, nested objects as JSON text."""
    row: dict[str, Any] = {
        "PartitionKey": partition_key,
        "RowKey": f"{index:016X}",
        "ExecutionId": execution_id,
    }
    for key, value in event.items():
        if key == "EventType":
            row[key] = EventType(value).name
        elif key == "Timestamp":
            row["_Timestamp"] = h.parse_timestamp(value)
        elif key == "OrchestrationStatus":
            row[key] = OrchestrationStatus(value).name
        elif key in _NESTED_COLUMNS:
            if value is not None:
                row[key] = json.dumps(value)
        elif key in _DATETIME_COLUMNS:
            if value is not None:
                row[key] = h.parse_timestamp(value)
        elif value is not None:
            row[key] = value
    return row


def event_from_row(row: dict[str, Any], blobs: dict[str, str]) -> HistoryEvent:
    """Inverse of :func:`history_row`; ``blobs`` holds already downloaded large columns."""
    kind = EventType[row["EventType"]]
    event: HistoryEvent = {
        "EventType": int(kind),
        "EventId": int(row.get("EventId", -1)),
        "IsPlayed": bool(row.get("IsPlayed", False)),
        "Timestamp": h.format_timestamp(row["_Timestamp"]),
    }
    for key, value in row.items():
        if key in ("PartitionKey", "RowKey", "ExecutionId", "EventType", "EventId", "IsPlayed", "_Timestamp"):
            continue
        if key.endswith("BlobName"):
            continue
        if key in blobs:
            value = blobs[key]
        if key == "OrchestrationStatus":
            event[key] = int(OrchestrationStatus[value])
        elif key in _NESTED_COLUMNS:
            event[key] = json.loads(value) if value else None
        elif key in _DATETIME_COLUMNS:
            event[key] = h.format_timestamp(value)
        else:
            event[key] = value
    # The SDK reads these unconditionally: restore the nulls the table dropped.
    if kind == EventType.ExecutionStarted:
        event.setdefault("Version", "")
        event.setdefault("Input", None)
        event.setdefault("ParentInstance", None)
        event.setdefault("Name", None)
    elif kind in (EventType.TaskCompleted, EventType.SubOrchestrationInstanceCompleted):
        event.setdefault("Result", None)
    elif kind in (EventType.TaskScheduled, EventType.SubOrchestrationInstanceCreated):
        event.setdefault("Version", "")
        event.setdefault("Input", None)
    elif kind in (EventType.TaskFailed, EventType.SubOrchestrationInstanceFailed):
        event.setdefault("Reason", None)
        event.setdefault("Details", None)
    elif kind == EventType.EventRaised:
        event.setdefault("Input", None)
    return event


class HistoryTable:
    """The History table of one task hub; the version of a history is its sentinel's ETag."""

    def __init__(self, table: TableClient, large: LargeValues) -> None:
        self.table = table
        self._large = large
        #: History partitions that may hold rows past the committed count (an earlier execution's,
        #: or a crashed multi-transaction append's): their appends replace rows instead of inserting.
        self._overwritten: set[str] = set()

    async def read(self, instance_id: str) -> StoredHistory:
        """Read the committed events of the current execution (rows up to the sentinel's count).

        The sentinel is read on its own first: with none, the history is empty, and the query
        of the partition is spared. Azurite answers a query by testing every row of the table
        (tens of milliseconds once a hub holds a few thousand instances), a point read by the
        rows that share its RowKey; every new instance's first episode reads a history that is
        not there yet. Rows without a sentinel (an earlier execution's, purged part-way) need
        no query either: the first append finds them and replaces them.
        """
        pk = escape_partition_key(instance_id)
        try:
            await self.table.get_entity(pk, SENTINEL_ROW_KEY, select=["RowKey"])
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "TableNotFound":
                raise
            return StoredHistory(events=[], version=None, execution_id=None)
        rows: list[dict[str, Any]] = []
        sentinel: dict[str, Any] | None = None
        async for entity in self.table.query_entities("PartitionKey eq @pk", parameters={"pk": pk}):
            if entity["RowKey"] == SENTINEL_ROW_KEY:
                sentinel = dict(entity)
                sentinel["__etag"] = entity.metadata["etag"]
            else:
                rows.append(dict(entity))
        if rows and (sentinel is None or len(rows) > int(sentinel.get("HistoryEventCount", 0))):
            self._overwritten.add(pk)
        if sentinel is None:
            return StoredHistory(events=[], version=None, execution_id=None)
        execution_id = sentinel.get("ExecutionId")
        count = int(sentinel.get("HistoryEventCount", len(rows)))
        rows.sort(key=lambda r: r["RowKey"])
        events: list[HistoryEvent] = []
        for row in rows[:count]:
            if row.get("ExecutionId") != execution_id:
                break
            events.append(event_from_row(row, await self._large.restore_columns(row)))
        return StoredHistory(events=events, version=sentinel["__etag"], execution_id=execution_id)

    async def append(
        self,
        instance_id: str,
        execution_id: str,
        committed_count: int,
        new_events: Sequence[HistoryEvent],
        etag: str | None,
    ) -> str:
        """Append ``new_events`` after ``committed_count`` rows; return the sentinel's new ETag.

        Each transaction also writes the sentinel with the ETag read before (invariant 1). When
        an episode needs more than one transaction, only the last one moves the sentinel's
        ``HistoryEventCount``, so a crash part-way leaves the committed history unchanged.

        New rows are inserted rather than upserted (the real provider's InsertOrReplace): Azurite
        then looks each row up once instead of twice, about a fifth of its CPU in a burst of
        orchestrations. Where rows may exist already (a new execution over an old one, a row
        found past the committed count) the rows are replaced, and a transaction that finds a
        row anyway is sent again with replaces.
        """
        pk = escape_partition_key(instance_id)
        if committed_count == 0 and etag is not None:
            self._overwritten.add(pk)  # a new execution: the old one's rows are still there
        size = MAX_BATCH_OPERATIONS - 1
        # A transaction's rows are made just before it is sent: a big fan-out's first episode
        # appends 100,000 rows, whose table entities would otherwise all be in memory at once.
        starts = range(0, len(new_events), size) or range(1)  # no rows: the sentinel alone
        for number, first in enumerate(starts):
            last = number == len(starts) - 1
            chunk = []
            for position in range(first, min(first + size, len(new_events))):
                row = history_row(pk, committed_count + position, execution_id, new_events[position])
                await self._large.offload_columns(row, f"{pk}/history-{row['RowKey']}-{row['EventType']}")
                chunk.append(row)
            sentinel: dict[str, Any] = {
                "PartitionKey": pk,
                "RowKey": SENTINEL_ROW_KEY,
                "ExecutionId": execution_id,
                "IsCheckpointComplete": last,
                "CheckpointCompletedTimestamp": h.utcnow(),
            }
            if last:
                sentinel["HistoryEventCount"] = committed_count + len(new_events)
            if etag is None:
                sentinel.setdefault("HistoryEventCount", committed_count)
                sentinel_operation = Operation("insert", sentinel)
            else:
                sentinel_operation = Operation("merge", sentinel, etag)
            etag = await self._transaction(instance_id, pk, chunk, sentinel_operation)
            if not last:
                crash_point("history-between-batches")
        assert etag is not None
        return etag

    async def replace(self, instance_id: str, replacements: dict[int, HistoryEvent], etag: str | None) -> str:
        """Replace committed rows by position, in transactions conditional on the sentinel's ETag.

        Only the columns of values that changed are rewritten: the others stay as stored, a
        value kept in a blob included.
        """
        pk = escape_partition_key(instance_id)
        entities = {
            str(e["RowKey"]): e
            async for e in self.table.query_entities("PartitionKey eq @pk", parameters={"pk": pk})
        }
        if etag is None or SENTINEL_ROW_KEY not in entities:
            raise HistoryConflictError(f"History of instance '{instance_id}' is gone")
        rows = []
        for index, event in sorted(replacements.items()):
            stored = entities.get(f"{index:016X}")
            if stored is None:
                raise HistoryConflictError(f"History of instance '{instance_id}' has no event {index}")
            rows.append(await self._patched_row(dict(stored), event))
        for chunk in _chunks(rows):
            # An empty merge: it changes nothing but the sentinel's ETag, and only if it still matches.
            sentinel = Operation("merge", {"PartitionKey": pk, "RowKey": SENTINEL_ROW_KEY}, etag)
            etag = await self._transaction(instance_id, pk, chunk, sentinel, kind="upsert")
        return etag

    async def _patched_row(self, row: dict[str, Any], event: HistoryEvent) -> dict[str, Any]:
        """``row`` with the columns of ``event`` that differ from the event it stores."""
        before = event_from_row(row, await self._large.restore_columns(row))
        after = history_row(
            str(row["PartitionKey"]), int(str(row["RowKey"]), 16), str(row["ExecutionId"]), event
        )
        for key in before.keys() | event.keys():
            if before.get(key) == event.get(key) and (key in before) == (key in event):
                continue
            column = "_Timestamp" if key == "Timestamp" else key
            row.pop(column, None)
            row.pop(f"{column}BlobName", None)
            if column in after:
                row[column] = after[column]
        await self._large.offload_columns(
            row, f"{row['PartitionKey']}/history-{row['RowKey']}-{row['EventType']}"
        )
        return row

    async def _transaction(
        self,
        instance_id: str,
        pk: str,
        rows: list[dict[str, Any]],
        sentinel: Operation,
        kind: Literal["upsert", "insert"] | None = None,
    ) -> str:
        """One history transaction: ``rows`` and the sentinel's conditional write; its new ETag."""
        replace = pk in self._overwritten
        while True:
            row_kind: Literal["upsert", "insert"] = kind or ("upsert" if replace else "insert")
            operations = [*(Operation(row_kind, row) for row in rows), sentinel]
            try:
                etag = (await submit_transaction(self.table, operations))[-1]
            except TransactionFailed as exc:
                if exc.status_code == 409 and row_kind == "insert" and rows:
                    # A row exists after all; sent again with replaces, a 409 is the sentinel's.
                    self._overwritten.add(pk)
                    replace = True
                    continue
                # 404: the sentinel is gone, the instance purged meanwhile.
                if exc.status_code in (404, 409, 412):
                    raise HistoryConflictError(
                        f"History of instance '{instance_id}' was changed by another writer"
                    ) from exc
                raise
            if etag is None:
                raise HttpResponseError(message=f"The history append of '{instance_id}' returned no ETag")
            return etag

    async def delete(self, instance_id: str) -> int:
        pk = escape_partition_key(instance_id)
        self._overwritten.discard(pk)
        keys = [
            e["RowKey"]
            async for e in self.table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": pk}, select=["RowKey"]
            )
        ]
        for i in range(0, len(keys), MAX_BATCH_OPERATIONS):
            ops: list[Any] = [("delete", {"PartitionKey": pk, "RowKey": k}) for k in keys[i : i + 100]]
            await self.table.submit_transaction(ops)
        return len(keys)


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows in transactions of at most 100 operations, one of them the sentinel's."""
    size = MAX_BATCH_OPERATIONS - 1
    return [rows[i : i + size] for i in range(0, len(rows), size)] or [[]]
