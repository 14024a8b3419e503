"""The ``{hub}Instances`` table: one row per instance (RowKey ``""``), the status the API reports.

Here too is the OData of instance queries; the continuation tokens users see are the table's
next keys (see ``emulator.taskhub._continuation``).
"""

from __future__ import annotations

import collections
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from emulator.durable._history import OrchestrationStatus, aware
from emulator.taskhub._continuation import decode_continuation_token, encode_continuation_token
from emulator.taskhub._interface import InstanceQuery, InstanceRecord, InstanceUpdate
from emulator.taskhub.azure._keys import escape_partition_key, prefix_upper_bound, unescape_partition_key
from emulator.taskhub.azure._large import LargeValues
from emulator.taskhub.azure._table_batch import insert_entity, merge_entity

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

#: How many Instances rows ``written_instance`` keeps (the most recently written).
WRITTEN_ROWS_KEPT = 1024
_MIN_TIME = datetime.min.replace(tzinfo=timezone.utc)
_MAX_TIME = datetime.max.replace(tzinfo=timezone.utc)
_UNFINISHED = ("Pending", "Running", "Suspended", "ContinuedAsNew")


class InstancesTable:
    """The Instances table of one task hub; a record's version is its row's ETag."""

    def __init__(self, table: TableClient, large: LargeValues, hub_name: str) -> None:
        self.table = table
        self._large = large
        self._hub_name = hub_name
        #: The Instances rows as this task hub wrote them (``written``), most recent last.
        self._written_rows: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    async def read(self, instance_id: str) -> InstanceRecord | None:
        try:
            entity = await self.table.get_entity(escape_partition_key(instance_id), "")
        except ResourceNotFoundError:
            return None
        return await self._record(entity, fetch_input=True)

    async def exists(self, instance_id: str) -> bool:
        try:
            await self.table.get_entity(escape_partition_key(instance_id), "")
        except ResourceNotFoundError:
            return False
        return True

    def written(self, instance_id: str) -> InstanceRecord | None:
        """The Instances row as stored by this task hub's last write to it, if that is known.

        Known when this task hub wrote the whole row (the client's Pending row) and every write
        since, all of them completed, none with a value large enough for a blob, and nobody
        read the instance's history again since (a host that reloads a history may have lost
        track of writes made elsewhere). Merges skip empty columns, as the Table service does.
        """
        row = self._written_rows.get(escape_partition_key(instance_id))
        return None if row is None else _record_from_row(row, etag=None)

    def forget_written(self, instance_id: str) -> None:
        self._written_rows.pop(escape_partition_key(instance_id), None)

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

    async def write_pending(self, record: InstanceRecord, replace_etag: str | None) -> bool:
        """Write the client's Pending row; False when an episode already wrote a newer one."""
        from azure.data.tables import UpdateMode

        row = self._instance_row(record)
        row["RuntimeStatus"] = OrchestrationStatus.Pending.name
        columns = dict(row)
        pk = row["PartitionKey"]
        self._written_rows.pop(pk, None)
        await self._large.offload_columns(row, f"{pk}/instance")
        try:
            if replace_etag is None:
                await insert_entity(self.table, row)
            else:
                await self.table.update_entity(
                    row,
                    mode=UpdateMode.REPLACE,
                    etag=replace_etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError):
            return False
        self._remember_write(pk, {}, columns, row)
        return True

    async def update(self, instance_id: str, update: InstanceUpdate) -> bool:
        """Merge the update's columns into the row; False when there is no row to merge into.

        A missing row is created only by an update that names the instance (a start's: a
        sub-orchestration has no Pending row). Any other update of a missing row belongs to an
        instance purged meanwhile, and recreating it would leave a row without name or creation
        time that blocks new starts with that id.
        """
        columns = self._update_columns(update)
        pk = escape_partition_key(instance_id)
        row = {"PartitionKey": pk, "RowKey": "", **columns}
        written = self._written_rows.pop(pk, None)  # unknown until this write completes
        await self._large.offload_columns(row, f"{pk}/instance")
        try:
            # The row exists nearly always (the client wrote it Pending): one lookup in Azurite.
            await merge_entity(self.table, row, existing=True)
        except ResourceNotFoundError:
            if update.name is None:
                return False
            await merge_entity(self.table, row)
            written = None  # the row was gone: what else it holds now is not known
        if written is None:
            self._written_rows.pop(pk, None)
        else:
            self._remember_write(pk, written, columns, row)
        return True

    async def delete(self, instance_id: str) -> bool:
        self._written_rows.pop(escape_partition_key(instance_id), None)
        try:
            await self.table.delete_entity(escape_partition_key(instance_id), "")
        except ResourceNotFoundError:
            return False
        return True

    async def unfinished(self) -> list[str]:
        query = " or ".join(f"RuntimeStatus eq '{status}'" for status in _UNFINISHED)
        ids: list[str] = []
        async for entity in self.table.query_entities(query, select=["PartitionKey"]):
            ids.append(unescape_partition_key(str(entity["PartitionKey"])))
        return ids

    async def query_page(
        self, query: InstanceQuery, *, top: int, continuation: str | None, fetch_input: bool
    ) -> tuple[list[InstanceRecord], str | None]:
        """One page of matching rows and the token of the next page, if any.

        Like the real provider's ``ExecuteQuerySegmentedAsync``: a page may hold fewer than ``top``
        rows (even none) while more remain, so callers go on until the token is None.
        """
        filter_text, parameters = instance_filter(query)
        if filter_text:
            paged = self.table.query_entities(filter_text, parameters=parameters, results_per_page=top)
        else:
            paged = self.table.list_entities(results_per_page=top)
        # The tables SDK's continuation tokens are dicts, whatever azure.core's annotation says.
        by_page: Any = paged.by_page
        pages = by_page(continuation_token=decode_continuation_token(continuation))
        records: list[InstanceRecord] = []
        async for page in pages:
            async for entity in page:
                records.append(await self._record(entity, fetch_input))
            break
        token = pages.continuation_token
        return records, encode_continuation_token(dict(token)) if token else None

    async def _record(self, entity: Any, fetch_input: bool) -> InstanceRecord:
        row = dict(entity)
        if not fetch_input:
            row.pop("Input", None)
            row.pop("InputBlobName", None)
        row.update(await self._large.restore_columns(row))
        return _record_from_row(row, etag=entity.metadata["etag"])

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
            "TaskHubName": self._hub_name,
            "Generation": record.generation,
        }

    def _update_columns(self, update: InstanceUpdate) -> dict[str, Any]:
        """The columns an update merges (None: left out, as a merge leaves them as they are).

        An update that names the instance names the hub too, and one that starts an execution
        (or creates an entity) the version, as the real provider writes them.
        """
        starts = update.created_time is not None
        columns = {
            "LastUpdatedTime": update.last_updated_time,
            "ExecutionId": update.execution_id,
            "CustomStatus": update.custom_status,
            "Name": update.name,
            "Input": update.input,
            "RuntimeStatus": None if update.runtime_status is None else update.runtime_status.name,
            "CreatedTime": update.created_time,
            "TaskHubName": None if update.name is None else self._hub_name,
            "Version": "" if starts else None,
            "Generation": update.generation,
            "Output": update.output,
            "CompletedTime": update.completed_time,
        }
        return {key: value for key, value in columns.items() if value is not None}


def _record_from_row(row: dict[str, Any], etag: str | None) -> InstanceRecord:
    return InstanceRecord(
        instance_id=unescape_partition_key(str(row["PartitionKey"])),
        name=str(row.get("Name") or ""),
        runtime_status=OrchestrationStatus[str(row.get("RuntimeStatus", "Pending"))],
        execution_id=str(row.get("ExecutionId") or ""),
        created_time=aware(row.get("CreatedTime")),
        last_updated_time=aware(row.get("LastUpdatedTime")),
        input=_text_or_none(row.get("Input")),
        output=_text_or_none(row.get("Output")),
        custom_status=_text_or_none(row.get("CustomStatus")),
        completed_time=aware(row["CompletedTime"]) if row.get("CompletedTime") else None,
        generation=int(row.get("Generation") or 0),
        version=etag,
    )


def instance_filter(query: InstanceQuery) -> tuple[str, dict[str, Any]]:
    """The OData filter of a query with its parameters; an empty filter matches every row."""
    conditions: list[str] = []
    parameters: dict[str, Any] = {}
    # DateTime.MinValue and MaxValue mean "no bound" to the provider, not an empty range.
    if query.created_from is not None and query.created_from > _MIN_TIME:
        conditions.append("CreatedTime ge @createdFrom")
        parameters["createdFrom"] = query.created_from
    if query.created_to is not None and query.created_to < _MAX_TIME:
        conditions.append("CreatedTime le @createdTo")
        parameters["createdTo"] = query.created_to
    if query.statuses:
        alternatives = []
        for number, status in enumerate(query.statuses):
            alternatives.append(f"RuntimeStatus eq @status{number}")
            parameters[f"status{number}"] = status
        # The SDK substitutes parameters in space-separated words: keep them apart from brackets.
        conditions.append("( " + " or ".join(alternatives) + " )")
    if query.instance_id_prefix:
        # Keys sort as strings: a prefix is the range [prefix, prefix with its last char + 1).
        low = escape_partition_key(query.instance_id_prefix)
        parameters["prefixLow"] = low
        high = prefix_upper_bound(low)
        if high is None:
            conditions.append("PartitionKey ge @prefixLow")
        else:
            conditions.append("( PartitionKey ge @prefixLow and PartitionKey lt @prefixHigh )")
            parameters["prefixHigh"] = high
    return " and ".join(conditions), parameters


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
