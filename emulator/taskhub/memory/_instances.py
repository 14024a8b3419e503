"""Instance records in memory: typed updates, conditional Pending writes, paged queries.

The rules are those of the Azure Storage provider's Instances table: an update merges the fields
it sets, and a missing record is created only by an update that names the orchestration (a
start); any other update of a missing record belongs to an instance purged meanwhile.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import datetime, timezone

from emulator.durable._history import OrchestrationStatus
from emulator.taskhub._continuation import decode_continuation_token, encode_continuation_token
from emulator.taskhub._interface import InstanceQuery, InstanceRecord, InstanceUpdate

_MIN_TIME = datetime.min.replace(tzinfo=timezone.utc)
_MAX_TIME = datetime.max.replace(tzinfo=timezone.utc)
#: The creation time of a record created by an update that did not give one (as the table reads it).
_EPOCH = datetime.fromtimestamp(0, timezone.utc)
_UNFINISHED = ("Pending", "Running", "Suspended", "ContinuedAsNew")
_UPDATE_FIELDS = tuple(f.name for f in dataclasses.fields(InstanceUpdate))


class InstanceRecords:
    """The records of one task hub, by instance id. Callers hold the hub's lock."""

    def __init__(self) -> None:
        self._records: dict[str, InstanceRecord] = {}
        self._versions = itertools.count(1)

    def clear(self) -> None:
        self._records.clear()

    def unfinished(self) -> list[str]:
        return [i for i, r in self._records.items() if r.runtime_status.name in _UNFINISHED]

    def get(self, instance_id: str) -> InstanceRecord | None:
        record = self._records.get(instance_id)
        return None if record is None else dataclasses.replace(record)

    def delete(self, instance_id: str) -> bool:
        return self._records.pop(instance_id, None) is not None

    def write_pending(self, record: InstanceRecord, replace_version: str | None) -> bool:
        current = self._records.get(record.instance_id)
        if (current is None) != (replace_version is None):
            return False  # created meanwhile, or purged meanwhile
        if current is not None and current.version != replace_version:
            return False  # an episode wrote a newer one
        self._store(dataclasses.replace(record, runtime_status=OrchestrationStatus.Pending))
        return True

    def update(self, instance_id: str, update: InstanceUpdate) -> bool:
        current = self._records.get(instance_id)
        if current is None:
            if update.name is None:
                return False
            current = InstanceRecord(
                instance_id=instance_id,
                name=update.name,
                runtime_status=OrchestrationStatus.Pending,
                execution_id="",
                created_time=_EPOCH,
                last_updated_time=update.last_updated_time,
            )
        changes = {name: getattr(update, name) for name in _UPDATE_FIELDS}
        self._store(dataclasses.replace(current, **{k: v for k, v in changes.items() if v is not None}))
        return True

    def _store(self, record: InstanceRecord) -> None:
        record.version = str(next(self._versions))
        self._records[record.instance_id] = record

    def query(
        self, query: InstanceQuery, *, page_size: int, continuation: str | None, fetch_input: bool
    ) -> tuple[list[InstanceRecord], str | None]:
        start = decode_continuation_token(continuation)
        first = None if start is None else start["PartitionKey"]
        matching = sorted(
            (
                r
                for r in self._records.values()
                if (first is None or r.instance_id >= first) and matches(query, r)
            ),
            key=lambda r: r.instance_id,
        )
        page = [dataclasses.replace(r, input=r.input if fetch_input else None) for r in matching[:page_size]]
        rest = matching[page_size:]
        token = (
            encode_continuation_token({"PartitionKey": rest[0].instance_id, "RowKey": ""}) if rest else None
        )
        return page, token


def matches(query: InstanceQuery, record: InstanceRecord) -> bool:
    """Whether ``record`` is one that ``query`` covers; MinValue and MaxValue mean no bound."""
    created = record.created_time
    if query.created_from is not None and _MIN_TIME < query.created_from > created:
        return False
    if query.created_to is not None and _MAX_TIME > query.created_to < created:
        return False
    if query.statuses and record.runtime_status.name not in query.statuses:
        return False
    return not query.instance_id_prefix or record.instance_id.startswith(query.instance_id_prefix)
