"""The task hub in Azure Storage: History and Instances tables, control and work-item queues.

Names and row schema follow the real Azure Storage provider (docs/host-behaviour.md section 4), so
Storage Explorer and other tools read what the emulator writes:

* ``{hub}History``: one partition per instance, RowKey = 16-digit hex position, plus the
  ``sentinel`` row whose ETag guards every append (docs/durability.md invariant 1).
* ``{hub}Instances``: one row per instance (RowKey ``""``), the status the API reports.
* ``{hub}-control-NN`` queues carry orchestration events. Unlike the real provider, one message
  carries many events (Azurite slows down with the number of stored messages), and activities
  travel in memory from the history's ``TaskScheduled`` rows (see ``_orchestrations``), so
  ``{hub}-workitems`` is created for the layout but stays empty.

Everything that is durable goes through this module; the engine above it holds only caches.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

from emulator.durable import _history as h
from emulator.durable._crash import crash_point
from emulator.durable._history import EventType, HistoryEvent, OrchestrationStatus
from emulator.host._azurite import client_options
from emulator.taskhub._partitioning import fnv1a_32
from emulator.taskhub._table_batch import (
    Operation,
    TransactionFailed,
    insert_entity,
    merge_entity,
    submit_transaction,
)

logger = logging.getLogger("emulator.storage")


def import_storage_clients() -> None:
    """Import the storage SDKs (about 0.4 s; the host does it on a thread).

    Modules import them where they are used rather than at the top, so that a host can answer
    HTTP before they are loaded.
    """
    import azure.data.tables._serialize
    import azure.data.tables.aio
    import azure.storage.blob.aio
    import azure.storage.queue.aio  # noqa: F401


SENTINEL_ROW_KEY = "sentinel"
#: Largest serialized queue message kept inline; bigger ones go to a blob (real threshold: 45 KB).
MAX_INLINE_MESSAGE_BYTES = 45 * 1024
#: Largest string column kept inline (the real provider's 60 KB of UTF-16); longer ones go to a blob.
MAX_INLINE_PROPERTY_CHARS = 30 * 1024
#: Table transactions hold at most 100 operations (Azurite stores nothing beyond that).
MAX_BATCH_OPERATIONS = 100
#: How many Instances rows ``written_instance`` keeps (the most recently written).
WRITTEN_ROWS_KEPT = 1024
#: Columns that hold nested objects: the real provider stores them as JSON text.
_NESTED_COLUMNS = frozenset({"OrchestrationInstance", "ParentInstance", "Tags", "FailureDetails"})
_DATETIME_COLUMNS = frozenset({"FireAt", "ScheduledStartTime"})
_LARGE_COLUMNS = ("Input", "Result", "Output", "Reason", "Details", "CustomStatus", "Name")


class HistoryConflictError(Exception):
    """Someone else appended to the history since it was read (the sentinel ETag changed)."""


def escape_partition_key(instance_id: str) -> str:
    """``KeySanitation.EscapePartitionKey``: table keys may not hold / \\ # ? or control chars."""
    out: list[str] = []
    for ch in instance_id:
        if ch == "^":
            out.append("^^")
        elif ch == "/":
            out.append("^0")
        elif ch == "\\":
            out.append("^1")
        elif ch == "#":
            out.append("^2")
        elif ch == "?":
            out.append("^3")
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            out.append("^" + chr(0xC0 + ord(ch) % 0x40))
        else:
            out.append(ch)
    return "".join(out)


@dataclass
class StoredHistory:
    """The committed history of an instance's current execution."""

    events: list[HistoryEvent]
    etag: str | None
    execution_id: str | None


@dataclass
class InstanceRecord:
    """A row of the Instances table."""

    instance_id: str
    name: str
    runtime_status: OrchestrationStatus
    execution_id: str
    created_time: datetime
    last_updated_time: datetime
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    completed_time: datetime | None = None
    generation: int = 0
    etag: str | None = None


@dataclass
class MessageHandle:
    """A queue message this host holds; ``pop_receipt`` changes on every renewal."""

    queue_name: str
    message_id: str
    pop_receipt: str
    blob_name: str | None = None
    #: ``time.monotonic()`` when the current visibility timeout started (at the latest).
    leased_at: float = field(default_factory=time.monotonic)


@dataclass
class ControlMessage:
    """Events for one orchestration instance, carried by one control-queue message."""

    instance_id: str
    events: list[HistoryEvent]
    execution_id: str | None = None
    #: In memory only: the sender knows the instance has no history yet (a client start of a
    #: new instance), so its first episode need not read one. Never sent with the message.
    new_instance: bool = field(default=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"instanceId": self.instance_id, "executionId": self.execution_id, "events": self.events}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ControlMessage:
        return cls(str(raw["instanceId"]), list(raw["events"]), raw.get("executionId"))


@dataclass(frozen=True)
class WorkItem:
    """One activity invocation."""

    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None
    #: The DurableHttpRequest of a ``call_http`` (the built-in HTTP activity).
    http_request: dict[str, Any] | None = None


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


class TaskHubStorage:
    """One task hub in one storage account."""

    def __init__(self, connection_string: str, hub_name: str, partition_count: int = 4) -> None:
        self.hub_name = hub_name
        self.partition_count = partition_count
        lower = hub_name.lower()
        self.control_queue_names = [f"{lower}-control-{i:02d}" for i in range(partition_count)]
        self.work_item_queue_name = f"{lower}-workitems"
        self.history_table_name = f"{hub_name}History"
        self.instances_table_name = f"{hub_name}Instances"
        self.partitions_table_name = f"{hub_name}Partitions"
        self.leases_container = f"{lower}-leases"
        self.large_messages_container = f"{lower}-largemessages"
        from azure.data.tables.aio import TableServiceClient
        from azure.storage.blob.aio import BlobServiceClient
        from azure.storage.queue.aio import QueueServiceClient

        options = client_options(connection_string)
        self._tables = TableServiceClient.from_connection_string(connection_string, **options)
        self._queues = QueueServiceClient.from_connection_string(connection_string, **options)
        self._blobs = BlobServiceClient.from_connection_string(connection_string, **options)
        self._history = self._tables.get_table_client(self.history_table_name)
        self._instances = self._tables.get_table_client(self.instances_table_name)
        self._large = self._blobs.get_container_client(self.large_messages_container)
        #: History partitions that may hold rows past the committed count (an earlier execution's,
        #: or a crashed multi-transaction append's): their appends replace rows instead of inserting.
        self._overwritten: set[str] = set()
        #: The Instances rows as this storage wrote them (``written_instance``), most recent last.
        self._written_rows: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    @property
    def endpoint(self) -> str:
        """Where the task hub's tables are, e.g. ``http://127.0.0.1:10002``."""
        from emulator.taskhub._storage_outage import endpoint_label

        return endpoint_label(self._tables.url)

    async def close(self) -> None:
        await self._history.close()
        await self._instances.close()
        await self._large.close()
        await self._tables.close()
        await self._queues.close()
        await self._blobs.close()

    # -- task hub ---------------------------------------------------------------------------

    async def create_task_hub(self) -> None:
        """Create every queue, table and container of the hub (like ``EnsureTaskHub``)."""

        async def create_queue(name: str) -> None:
            with contextlib.suppress(ResourceExistsError):
                await self._queues.create_queue(name)

        async def create_container(name: str) -> None:
            with contextlib.suppress(ResourceExistsError):
                await self._blobs.create_container(name)

        # All at once: host start-up waits for this.
        await asyncio.gather(
            *(
                self._tables.create_table_if_not_exists(table)
                for table in (self.history_table_name, self.instances_table_name, self.partitions_table_name)
            ),
            *(create_queue(queue) for queue in [*self.control_queue_names, self.work_item_queue_name]),
            *(create_container(c) for c in (self.leases_container, self.large_messages_container)),
        )
        leases = self._blobs.get_container_client(self.leases_container)
        try:
            info = {
                "TaskHubName": self.hub_name,
                "CreatedAt": h.format_timestamp(h.utcnow()),
                "PartitionCount": self.partition_count,
            }
            await leases.upload_blob("taskhub.json", json.dumps(info), overwrite=False)
        except ResourceExistsError:
            pass
        finally:
            await leases.close()

    def partitions_table(self) -> TableClient:
        """The ``{hub}Partitions`` table of partition ownership (the caller closes it)."""
        return self._tables.get_table_client(self.partitions_table_name)

    def partition_of(self, instance_id: str) -> int:
        return fnv1a_32(instance_id) % self.partition_count

    def control_queue_of(self, instance_id: str) -> str:
        return self.control_queue_names[self.partition_of(instance_id)]

    # -- large values -----------------------------------------------------------------------

    async def _upload_large(self, blob_name: str, text: str) -> None:
        await self._large.upload_blob(blob_name, gzip.compress(text.encode("utf-8")), overwrite=True)

    async def _download_large(self, blob_name: str) -> str:
        stream = await self._large.download_blob(blob_name)
        return gzip.decompress(await stream.readall()).decode("utf-8")

    async def _offload_large_columns(self, row: dict[str, Any], prefix: str) -> None:
        for column in _LARGE_COLUMNS:
            value = row.get(column)
            if isinstance(value, str) and len(value) > MAX_INLINE_PROPERTY_CHARS:
                blob_name = f"{prefix}-{column}-{uuid.uuid4().hex[:8].upper()}.json.gz"
                await self._upload_large(blob_name, value)
                row[column] = ""
                row[f"{column}BlobName"] = blob_name

    async def _restore_large_columns(self, row: dict[str, Any]) -> dict[str, str]:
        restored: dict[str, str] = {}
        for key, value in row.items():
            if key.endswith("BlobName") and value:
                restored[key[: -len("BlobName")]] = await self._download_large(str(value))
        return restored

    # -- history ----------------------------------------------------------------------------

    async def read_history(self, instance_id: str) -> StoredHistory:
        """Read the committed events of the current execution (rows up to the sentinel's count)."""
        pk = escape_partition_key(instance_id)
        # Whoever reads the history again may have lost track of the row's writes.
        self._written_rows.pop(pk, None)
        rows: list[dict[str, Any]] = []
        sentinel: dict[str, Any] | None = None
        async for entity in self._history.query_entities("PartitionKey eq @pk", parameters={"pk": pk}):
            if entity["RowKey"] == SENTINEL_ROW_KEY:
                sentinel = dict(entity)
                sentinel["__etag"] = entity.metadata["etag"]
            else:
                rows.append(dict(entity))
        if rows and (sentinel is None or len(rows) > int(sentinel.get("HistoryEventCount", 0))):
            self._overwritten.add(pk)
        if sentinel is None:
            return StoredHistory(events=[], etag=None, execution_id=None)
        execution_id = sentinel.get("ExecutionId")
        count = int(sentinel.get("HistoryEventCount", len(rows)))
        rows.sort(key=lambda r: r["RowKey"])
        events: list[HistoryEvent] = []
        for row in rows[:count]:
            if row.get("ExecutionId") != execution_id:
                break
            events.append(event_from_row(row, await self._restore_large_columns(row)))
        return StoredHistory(events=events, etag=sentinel["__etag"], execution_id=execution_id)

    async def append_history(
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
        rows = []
        for offset, event in enumerate(new_events):
            row = history_row(pk, committed_count + offset, execution_id, event)
            await self._offload_large_columns(row, f"{pk}/history-{row['RowKey']}-{row['EventType']}")
            rows.append(row)
        chunk_size = MAX_BATCH_OPERATIONS - 1
        chunks = [rows[i : i + chunk_size] for i in range(0, len(rows), chunk_size)] or [[]]
        for number, chunk in enumerate(chunks):
            last = number == len(chunks) - 1
            sentinel: dict[str, Any] = {
                "PartitionKey": pk,
                "RowKey": SENTINEL_ROW_KEY,
                "ExecutionId": execution_id,
                "IsCheckpointComplete": last,
                "CheckpointCompletedTimestamp": h.utcnow(),
            }
            if last:
                sentinel["HistoryEventCount"] = committed_count + len(rows)
            if etag is None:
                sentinel.setdefault("HistoryEventCount", committed_count)
                sentinel_operation = Operation("insert", sentinel)
            else:
                sentinel_operation = Operation("merge", sentinel, etag)
            etags = await self._append_rows(instance_id, pk, chunk, sentinel_operation)
            etag = etags[-1]
            if etag is None:
                raise HttpResponseError(message=f"The history append of '{instance_id}' returned no ETag")
            if not last:
                crash_point("history-between-batches")
        assert etag is not None
        return etag

    async def _append_rows(
        self, instance_id: str, pk: str, rows: list[dict[str, Any]], sentinel: Operation
    ) -> list[str | None]:
        """One history transaction: ``rows`` and the sentinel's conditional write."""
        replace = pk in self._overwritten
        while True:
            kind: Literal["upsert", "insert"] = "upsert" if replace else "insert"
            operations = [*(Operation(kind, row) for row in rows), sentinel]
            try:
                return await submit_transaction(self._history, operations)
            except TransactionFailed as exc:
                if exc.status_code == 409 and not replace and rows:
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

    async def delete_history(self, instance_id: str) -> int:
        pk = escape_partition_key(instance_id)
        self._overwritten.discard(pk)
        keys = [
            e["RowKey"]
            async for e in self._history.query_entities(
                "PartitionKey eq @pk", parameters={"pk": pk}, select=["RowKey"]
            )
        ]
        for i in range(0, len(keys), MAX_BATCH_OPERATIONS):
            ops: list[Any] = [("delete", {"PartitionKey": pk, "RowKey": k}) for k in keys[i : i + 100]]
            await self._history.submit_transaction(ops)
        return len(keys)

    # -- instances --------------------------------------------------------------------------

    async def read_instance(self, instance_id: str) -> InstanceRecord | None:
        try:
            entity = await self._instances.get_entity(escape_partition_key(instance_id), "")
        except ResourceNotFoundError:
            return None
        return await self._instance_record(entity, fetch_input=True)

    def written_instance(self, instance_id: str) -> InstanceRecord | None:
        """The Instances row as stored by this storage's last write to it, if that is known.

        Known when this storage wrote the whole row (the client's Pending row) and every write
        since, all of them completed, none with a value large enough for a blob, and nobody
        read the instance's history again since (a host that reloads a history may have lost
        track of writes made elsewhere). Merges skip empty columns, as the Table service does.
        """
        row = self._written_rows.get(escape_partition_key(instance_id))
        return None if row is None else _record_from_row(row, etag=None)

    def _remember_write(
        self, pk: str, before: dict[str, Any], columns: dict[str, Any], row: dict[str, Any]
    ) -> None:
        """Track a completed write of ``columns`` over ``before`` (``{}``: a whole row).

        Writers take the row out of ``_written_rows`` while they write; finding it back means
        another write completed meanwhile, in an order the storage alone knows: forget it then.
        ``row`` is the row as sent (values too large for it went to blobs: not kept).
        """
        if pk in self._written_rows or any(key.endswith("BlobName") for key in row):
            self._written_rows.pop(pk, None)
            return
        before.update((key, value) for key, value in columns.items() if value is not None)
        self._written_rows[pk] = before
        self._written_rows.move_to_end(pk)
        while len(self._written_rows) > WRITTEN_ROWS_KEPT:
            self._written_rows.popitem(last=False)

    async def write_pending_instance(self, record: InstanceRecord, replace_etag: str | None) -> bool:
        """Write the client's Pending row; False when an episode already wrote a newer one."""
        from azure.data.tables import UpdateMode

        row = self._instance_row(record)
        row["RuntimeStatus"] = OrchestrationStatus.Pending.name
        columns = dict(row)
        pk = row["PartitionKey"]
        self._written_rows.pop(pk, None)
        await self._offload_large_columns(row, f"{pk}/instance")
        try:
            if replace_etag is None:
                await insert_entity(self._instances, row)
            else:
                await self._instances.update_entity(
                    row,
                    mode=UpdateMode.REPLACE,
                    etag=replace_etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError):
            return False
        self._remember_write(pk, {}, columns, row)
        return True

    async def merge_instance(self, instance_id: str, columns: dict[str, Any]) -> bool:
        """Merge ``columns`` into the Instances row; False when there is no row to merge into.

        A missing row is created only by a write that names the orchestration (a start's
        columns: a sub-orchestration has no Pending row). Any other update of a missing row
        belongs to an instance purged meanwhile, and recreating it would leave a row without
        name or creation time that blocks new starts with that id.
        """
        pk = escape_partition_key(instance_id)
        row = {"PartitionKey": pk, "RowKey": "", **columns}
        written = self._written_rows.pop(pk, None)  # unknown until this write completes
        await self._offload_large_columns(row, f"{pk}/instance")
        try:
            # The row exists nearly always (the client wrote it Pending): one lookup in Azurite.
            await merge_entity(self._instances, row, existing=True)
        except ResourceNotFoundError:
            if columns.get("Name") is None:
                return False
            await merge_entity(self._instances, row)
            written = None  # the row was gone: what else it holds now is not known
        if written is None:
            self._written_rows.pop(pk, None)
        else:
            self._remember_write(pk, written, columns, row)
        return True

    async def delete_instance(self, instance_id: str) -> bool:
        self._written_rows.pop(escape_partition_key(instance_id), None)
        try:
            await self._instances.delete_entity(escape_partition_key(instance_id), "")
        except ResourceNotFoundError:
            return False
        return True

    async def instances_in_progress(self) -> list[str]:
        """Ids of the orchestrations that have not finished (Pending, Running, Suspended...)."""
        statuses = ("Pending", "Running", "Suspended", "ContinuedAsNew")
        query = " or ".join(f"RuntimeStatus eq '{status}'" for status in statuses)
        ids: list[str] = []
        async for entity in self._instances.query_entities(query, select=["PartitionKey"]):
            ids.append(_unescape_partition_key(str(entity["PartitionKey"])))
        return ids

    async def query_instances(self, filter_text: str | None = None) -> list[InstanceRecord]:
        records: list[InstanceRecord] = []
        entities = (
            self._instances.query_entities(filter_text) if filter_text else self._instances.list_entities()
        )
        async for entity in entities:
            records.append(await self._instance_record(entity, fetch_input=True))
        return records

    def _instance_row(self, record: InstanceRecord) -> dict[str, Any]:
        return {
            "PartitionKey": escape_partition_key(record.instance_id),
            "RowKey": "",
            "Name": record.name,
            "Version": "",
            "Input": record.input,
            "Output": record.output,
            "CustomStatus": record.custom_status,
            "RuntimeStatus": record.runtime_status.name,
            "CreatedTime": record.created_time,
            "LastUpdatedTime": record.last_updated_time,
            "ExecutionId": record.execution_id,
            "TaskHubName": self.hub_name,
            "Generation": record.generation,
        }

    # -- queues -----------------------------------------------------------------------------

    async def _encode_message(self, payload: dict[str, Any], owner: str) -> tuple[str, str | None]:
        text = json.dumps(payload, separators=(",", ":"))
        if len(text.encode("utf-8")) <= MAX_INLINE_MESSAGE_BYTES:
            return text, None
        blob_name = f"{escape_partition_key(owner)}/message-{uuid.uuid4().hex}.json.gz"
        await self._upload_large(blob_name, text)
        return json.dumps({"compressedBlobName": blob_name}), blob_name

    async def _decode_message(self, content: str) -> tuple[dict[str, Any], str | None]:
        raw = json.loads(content)
        blob_name = raw.get("compressedBlobName")
        if blob_name:
            return json.loads(await self._download_large(str(blob_name))), str(blob_name)
        return raw, None

    async def _send(
        self, queue_name: str, payload: dict[str, Any], owner: str, *, delay: float, lease: float | None
    ) -> MessageHandle:
        content, blob_name = await self._encode_message(payload, owner)
        queue = self._queues.get_queue_client(queue_name)
        # A message sent with a visibility timeout is leased to its sender from birth: the sender
        # handles it in memory and deletes it, and it only surfaces to pollers if the sender dies.
        visibility = max(int(delay + 0.999), (lease and int(lease)) or 0) or None
        started = time.monotonic()
        sent = await queue.send_message(content, visibility_timeout=visibility, time_to_live=-1)
        return MessageHandle(queue_name, str(sent.id), str(sent.pop_receipt), blob_name, started)

    async def send_control(
        self, message: ControlMessage, *, delay: float = 0.0, lease: float | None = None
    ) -> MessageHandle:
        return await self._send(
            self.control_queue_of(message.instance_id),
            message.to_json(),
            message.instance_id,
            delay=delay,
            lease=lease,
        )

    async def receive_control(
        self, partition: int, visibility: float, max_messages: int = 32
    ) -> list[tuple[ControlMessage, MessageHandle]]:
        queue_name = self.control_queue_names[partition]
        queue = self._queues.get_queue_client(queue_name)
        out: list[tuple[ControlMessage, MessageHandle]] = []
        async for msg in queue.receive_messages(
            max_messages=max_messages, visibility_timeout=int(visibility)
        ):
            payload, blob_name = await self._decode_message(msg.content)
            out.append(
                (
                    ControlMessage.from_json(payload),
                    MessageHandle(queue_name, str(msg.id), str(msg.pop_receipt), blob_name),
                )
            )
            if len(out) >= max_messages:
                break
        return out

    async def delete_message(self, handle: MessageHandle) -> None:
        queue = self._queues.get_queue_client(handle.queue_name)
        try:
            await queue.delete_message(handle.message_id, handle.pop_receipt)
        except (ResourceNotFoundError, HttpResponseError) as exc:
            # Another receiver took it after our lease lapsed; its copy is deduplicated downstream.
            logger.debug("Message %s on %s was already gone: %s", handle.message_id, handle.queue_name, exc)
            return
        if handle.blob_name:
            with contextlib.suppress(ResourceNotFoundError):
                await self._large.delete_blob(handle.blob_name)

    async def renew_message(self, handle: MessageHandle, visibility: float) -> bool:
        queue = self._queues.get_queue_client(handle.queue_name)
        started = time.monotonic()
        try:
            updated = await queue.update_message(
                handle.message_id, handle.pop_receipt, visibility_timeout=int(visibility)
            )
        except (ResourceNotFoundError, HttpResponseError):
            return False
        handle.pop_receipt = str(updated.pop_receipt)
        handle.leased_at = started
        return True

    # -- client maintenance: instance queries, purge, rewind, deleting the hub ----------------

    async def query_instances_page(
        self,
        condition: InstanceCondition,
        *,
        top: int,
        continuation: dict[str, str] | None = None,
        fetch_input: bool = True,
    ) -> tuple[list[InstanceRecord], dict[str, str] | None]:
        """One page of matching Instances rows and the table's token for the next page, if any.

        Like the real provider's ``ExecuteQuerySegmentedAsync``: a page may hold fewer than ``top``
        rows (even none) while more remain, so callers go on until the token is None.
        """
        filter_text, parameters = condition.to_filter()
        if filter_text:
            paged = self._instances.query_entities(filter_text, parameters=parameters, results_per_page=top)
        else:
            paged = self._instances.list_entities(results_per_page=top)
        # The tables SDK's continuation tokens are dicts, whatever azure.core's annotation says.
        by_page: Any = paged.by_page
        pages = by_page(continuation_token=continuation)
        records: list[InstanceRecord] = []
        async for page in pages:
            async for entity in page:
                records.append(await self._instance_record(entity, fetch_input))
            break
        token = pages.continuation_token
        return records, dict(token) if token else None

    async def query_all_instances(self, condition: InstanceCondition) -> list[InstanceRecord]:
        records: list[InstanceRecord] = []
        token: dict[str, str] | None = None
        while True:
            page, token = await self.query_instances_page(condition, top=1000, continuation=token)
            records.extend(page)
            if token is None:
                return records

    async def _instance_record(self, entity: Any, fetch_input: bool) -> InstanceRecord:
        row = dict(entity)
        if not fetch_input:
            row.pop("Input", None)
            row.pop("InputBlobName", None)
        row.update(await self._restore_large_columns(row))
        return _record_from_row(row, etag=entity.metadata["etag"])

    async def purge_instance_data(self, instance_id: str) -> tuple[int, int]:
        """Delete every history row, large-message blob and the Instances row of one instance.

        Returns (instances deleted, history rows deleted). Like the real provider, an instance
        without an Instances row is left alone, and a running instance is purged all the same.
        """
        pk = escape_partition_key(instance_id)
        try:
            await self._instances.get_entity(pk, "")
        except ResourceNotFoundError:
            return 0, 0
        rows = await self.delete_history(instance_id)
        with contextlib.suppress(ResourceNotFoundError):
            names = [blob.name async for blob in self._large.list_blobs(name_starts_with=f"{pk}/")]
            for name in names:
                with contextlib.suppress(ResourceNotFoundError):
                    await self._large.delete_blob(name)
        await self.delete_instance(instance_id)
        return 1, rows

    async def rewind_history(
        self, instance_id: str, failed_leaves: list[str] | None = None, rewound: list[str] | None = None
    ) -> list[str]:
        """Clear the failures of a failed instance's current execution (``RewindHistoryAsync``).

        Each failure row (ExecutionCompleted with status Failed, TaskFailed,
        SubOrchestrationInstanceFailed) and the TaskScheduled row of each failed activity become
        ``GenericEvent`` rows with Reason "Rewound: <old type>", so a replay no longer sees them;
        a failed sub-orchestration's SubOrchestrationInstanceCreated row only gets that Reason and
        the child instance is rewound in turn. The Instances row goes back to Pending. Returns the
        deepest failed instances, which need a message to run again.
        """
        from azure.data.tables import UpdateMode

        leaves = [] if failed_leaves is None else failed_leaves
        if rewound is not None:
            rewound.append(instance_id)  # every instance whose history this changes
        pk = escape_partition_key(instance_id)
        self._written_rows.pop(pk, None)
        entities = [
            e async for e in self._history.query_entities("PartitionKey eq @pk", parameters={"pk": pk})
        ]
        sentinel = next((e for e in entities if e["RowKey"] == SENTINEL_ROW_KEY), None)
        if sentinel is None:
            raise ValueError(f"Orchestration instance '{instance_id}' has no history to rewind.")
        execution_id = sentinel.get("ExecutionId")
        rows = sorted(
            (e for e in entities if e["RowKey"] != SENTINEL_ROW_KEY and e.get("ExecutionId") == execution_id),
            key=lambda e: e["RowKey"],
        )[: int(sentinel.get("HistoryEventCount", len(entities)))]
        by_decision = {(e["EventType"], e.get("EventId")): e for e in rows}
        has_failed_children = False
        for row in rows:
            kind = row["EventType"]
            if row.get("OrchestrationStatus") != "Failed" and kind not in (
                "TaskFailed",
                "SubOrchestrationInstanceFailed",
            ):
                continue
            if kind == "TaskFailed":
                scheduled = by_decision.get(("TaskScheduled", row.get("TaskScheduledId")))
                if scheduled is not None:
                    await self._mark_rewound(scheduled, to_generic=True)
            elif kind == "SubOrchestrationInstanceFailed":
                has_failed_children = True
                created = by_decision.get(("SubOrchestrationInstanceCreated", row.get("TaskScheduledId")))
                if created is not None:
                    # The child is still there and will report again once rewound: keep the decision.
                    await self._mark_rewound(created, to_generic=False)
                    await self.rewind_history(str(created["InstanceId"]), leaves, rewound)
            await self._mark_rewound(row, to_generic=True)
        with contextlib.suppress(ResourceNotFoundError):
            await self._instances.update_entity(
                {
                    "PartitionKey": pk,
                    "RowKey": "",
                    "RuntimeStatus": OrchestrationStatus.Pending.name,
                    "LastUpdatedTime": h.utcnow(),
                },
                mode=UpdateMode.MERGE,
            )
        if not has_failed_children:
            leaves.append(instance_id)
        return leaves

    async def _mark_rewound(self, entity: Any, *, to_generic: bool) -> None:
        from azure.data.tables import UpdateMode

        row = dict(entity)
        row["Reason"] = f"Rewound: {row['EventType']}"
        # A long failure reason may live in a blob, which would otherwise replace the new Reason.
        row.pop("ReasonBlobName", None)
        if to_generic:
            row["EventType"] = EventType.GenericEvent.name
        await self._history.update_entity(
            row,
            mode=UpdateMode.REPLACE,
            etag=entity.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )

    async def delete_task_hub(self) -> None:
        """Delete the hub's tables, queues and containers (the provider's ``DeleteAsync``)."""
        for table in (self.history_table_name, self.instances_table_name):
            with contextlib.suppress(ResourceNotFoundError):
                await self._tables.delete_table(table)
        for queue in [*self.control_queue_names, self.work_item_queue_name]:
            with contextlib.suppress(ResourceNotFoundError):
                await self._queues.delete_queue(queue)
        for container in (self.leases_container, self.large_messages_container):
            with contextlib.suppress(ResourceNotFoundError):
                await self._blobs.delete_container(container)


def _record_from_row(row: dict[str, Any], etag: str | None) -> InstanceRecord:
    return InstanceRecord(
        instance_id=_unescape_partition_key(str(row["PartitionKey"])),
        name=str(row.get("Name") or ""),
        runtime_status=OrchestrationStatus[str(row.get("RuntimeStatus", "Pending"))],
        execution_id=str(row.get("ExecutionId") or ""),
        created_time=_aware(row.get("CreatedTime")),
        last_updated_time=_aware(row.get("LastUpdatedTime")),
        input=_text_or_none(row.get("Input")),
        output=_text_or_none(row.get("Output")),
        custom_status=_text_or_none(row.get("CustomStatus")),
        completed_time=_aware(row["CompletedTime"]) if row.get("CompletedTime") else None,
        generation=int(row.get("Generation") or 0),
        etag=etag,
    )


_MIN_TIME = datetime.min.replace(tzinfo=timezone.utc)
_MAX_TIME = datetime.max.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class InstanceCondition:
    """Which Instances rows a query or a purge covers (``OrchestrationInstanceStatusQueryCondition``)."""

    created_from: datetime | None = None
    created_to: datetime | None = None
    #: RuntimeStatus names to match; None or empty matches every status.
    statuses: tuple[str, ...] | None = None
    instance_id_prefix: str | None = None

    def to_filter(self) -> tuple[str, dict[str, Any]]:
        """An OData filter with its parameters; an empty filter matches every row."""
        conditions: list[str] = []
        parameters: dict[str, Any] = {}
        # DateTime.MinValue and MaxValue mean "no bound" to the provider, not an empty range.
        if self.created_from is not None and self.created_from > _MIN_TIME:
            conditions.append("CreatedTime ge @createdFrom")
            parameters["createdFrom"] = self.created_from
        if self.created_to is not None and self.created_to < _MAX_TIME:
            conditions.append("CreatedTime le @createdTo")
            parameters["createdTo"] = self.created_to
        if self.statuses:
            alternatives = []
            for number, status in enumerate(self.statuses):
                alternatives.append(f"RuntimeStatus eq @status{number}")
                parameters[f"status{number}"] = status
            # The SDK substitutes parameters in space-separated words: keep them apart from brackets.
            conditions.append("( " + " or ".join(alternatives) + " )")
        if self.instance_id_prefix:
            # Keys sort as strings: a prefix is the range [prefix, prefix with its last char + 1).
            low = escape_partition_key(self.instance_id_prefix)
            parameters["prefixLow"] = low
            high = _prefix_upper_bound(low)
            if high is None:
                conditions.append("PartitionKey ge @prefixLow")
            else:
                conditions.append("( PartitionKey ge @prefixLow and PartitionKey lt @prefixHigh )")
                parameters["prefixHigh"] = high
        return " and ".join(conditions), parameters


def _prefix_upper_bound(prefix: str) -> str | None:
    """The first string after every string that starts with ``prefix`` (None: no such string)."""
    kept = prefix.rstrip(chr(sys.maxunicode))  # the last code point has no successor
    return kept[:-1] + chr(ord(kept[-1]) + 1) if kept else None


def _aware(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return datetime.fromtimestamp(0, timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _unescape_partition_key(key: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(key):
        ch = key[i]
        if ch == "^" and i + 1 < len(key):
            nxt = key[i + 1]
            mapping = {"^": "^", "0": "/", "1": "\\", "2": "#", "3": "?"}
            if nxt in mapping:
                out.append(mapping[nxt])
            else:
                code = ord(nxt) - 0xC0
                out.append(chr(code if code < 0x20 else code + 0x60))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
