"""Saved orchestration histories, read back in the shape the replay engine works on.

Three shapes are accepted:

* history events as ``durable get-history --json`` prints them (or as the SDK reads them):
  PascalCase keys, ``EventType`` as an integer or a name, optionally wrapped in
  ``{"historyEvents": [...]}``;
* rows exported from a task hub's History table (``EventType`` as a name, ``_Timestamp``,
  ``RowKey``, nested objects as JSON text), as a list or wrapped in ``{"value": [...]}``;
* the status API's ``historyEvents`` (``showHistory=true``), which leaves out sequence ids and
  episode boundaries: those are reconstructed (:mod:`emulator.tools._recorded_episodes`).

Everything goes through the storage's own row conversion, so a loaded event is exactly what the
host would replay after reading it from the History table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from emulator.durable import _history as h
from emulator.durable._history import EventType, HistoryEvent, OrchestrationStatus
from emulator.taskhub.azure._history import SENTINEL_ROW_KEY, event_from_row, history_row
from emulator.tools._recorded_episodes import (
    HistoryFileError,
    RecordedEpisode,
    split_episodes,
    status_episodes,
)

_DATETIME_KEYS = ("_Timestamp", "FireAt", "ScheduledStartTime")
#: The instance id an orchestrator sees when the saved history does not name its instance.
_UNKNOWN_INSTANCE = "offline-replay"


@dataclass
class SavedHistory:
    instance_id: str
    orchestrator: str
    episodes: list[RecordedEpisode]
    #: What the input was, for the report.
    source: str
    #: Things the reader should know about the input (lost columns, reconstructed ids).
    notes: list[str] = field(default_factory=list)
    #: False when the input cannot tell which result belongs to which task (status API shape).
    outputs_comparable: bool = True


def read_history_file(path: Path, *, instance_id: str | None = None) -> SavedHistory:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise HistoryFileError(f"Cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise HistoryFileError(f"{path} is not JSON: {exc}") from None
    return load_history(data, instance_id=instance_id)


def load_history(data: Any, *, instance_id: str | None = None) -> SavedHistory:
    """Recognise the shape of ``data`` (parsed JSON) and split it into recorded episodes."""
    if isinstance(data, dict):
        if isinstance(data.get("historyEvents"), list):
            events = data["historyEvents"]
            wanted = instance_id or data.get("instanceId")
            if _looks_complete(events):
                return _from_events(events, wanted, "history events")
            return _from_status(events, wanted, data.get("name"))
        for key in ("value", "items"):
            if isinstance(data.get(key), list):
                return _from_rows(data[key], instance_id)
        raise HistoryFileError(
            "Expected a list of history events, an object with 'historyEvents', or exported History table "
            f"rows; got an object with keys {sorted(data)[:8]}."
        )
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise HistoryFileError("Expected a JSON list of history events or of History table rows.")
    if any("RowKey" in item or "_Timestamp" in item for item in data):
        return _from_rows(data, instance_id)
    if _looks_complete(data):
        return _from_events(data, instance_id, "history events")
    return _from_status(data, instance_id, None)


def _looks_complete(events: list[Any]) -> bool:
    """Full histories carry sequence ids and OrchestratorStarted markers; the status API drops both."""
    return any(
        isinstance(e, dict) and ("EventId" in e or _type_name(e.get("EventType")) == "OrchestratorStarted")
        for e in events
    )


def _type_name(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return EventType(value).name
        except ValueError:
            raise HistoryFileError(f"Unknown EventType {value}.") from None
    if isinstance(value, str) and value in EventType.__members__:
        return value
    raise HistoryFileError(f"Unknown EventType {value!r}.")


def _moment(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return h.parse_timestamp(str(value))
    except ValueError:
        raise HistoryFileError(f"{what} is not a timestamp: {value!r}") from None


def normalize_event(raw: dict[str, Any]) -> HistoryEvent:
    """One event in the SDK's shape (integer or named enums) as the storage would return it."""
    event = dict(raw)
    event["EventType"] = int(EventType[_type_name(event.get("EventType"))])
    status = event.get("OrchestrationStatus")
    if isinstance(status, str):
        if status not in OrchestrationStatus.__members__:
            raise HistoryFileError(f"Unknown OrchestrationStatus {status!r}.")
        event["OrchestrationStatus"] = int(OrchestrationStatus[status])
    if "Timestamp" not in event:
        raise HistoryFileError(f"A {_type_name(raw.get('EventType'))} event has no Timestamp.")
    for key in ("FireAt", "ScheduledStartTime"):
        if isinstance(event.get(key), str):
            event[key] = h.format_timestamp(_moment(event[key], key))
    event["Timestamp"] = h.format_timestamp(_moment(event["Timestamp"], "Timestamp"))
    return event_from_row(history_row("offline", 0, "", event), {})


def _instance_of(events: list[HistoryEvent], given: str | None) -> tuple[str, str]:
    started = next((e for e in events if h.event_type(e) == EventType.ExecutionStarted), None)
    if started is None:
        raise HistoryFileError("The history has no ExecutionStarted event: it cannot be replayed.")
    instance = started.get("OrchestrationInstance") or {}
    return given or str(instance.get("InstanceId") or _UNKNOWN_INSTANCE), str(started.get("Name") or "")


def _from_events(raw: list[Any], instance_id: str | None, source: str) -> SavedHistory:
    events = [normalize_event(e) for e in raw]
    found_id, orchestrator = _instance_of(events, instance_id)
    return SavedHistory(found_id, orchestrator, split_episodes(events), source)


def _from_status(raw: list[Any], instance_id: str | None, name: Any) -> SavedHistory:
    reconstruction = status_episodes(
        raw,
        instance_id=instance_id or _UNKNOWN_INSTANCE,
        orchestrator=str(name or ""),
        normalize=normalize_event,
    )
    return SavedHistory(
        reconstruction.instance_id,
        reconstruction.orchestrator,
        reconstruction.episodes,
        "status API historyEvents",
        reconstruction.notes,
        outputs_comparable=reconstruction.outputs_comparable,
    )


# -- History table rows ------------------------------------------------------------------------


def _clean_row(raw: dict[str, Any]) -> dict[str, Any]:
    """Drop what table exports add around the entity (OData annotations, the system Timestamp)."""
    row = {
        key: value
        for key, value in raw.items()
        if "@odata" not in key and not key.startswith("odata.") and key not in ("Timestamp", "etag")
    }
    for key in _DATETIME_KEYS:
        if row.get(key) is not None:
            row[key] = _moment(row[key], key)
    return row


def _from_rows(raw: list[Any], instance_id: str | None) -> SavedHistory:
    rows = [_clean_row(r) for r in raw if isinstance(r, dict)]
    partitions = sorted({str(r.get("PartitionKey", "")) for r in rows})
    if instance_id is not None:
        rows = [r for r in rows if r.get("PartitionKey") == instance_id]
        if not rows:
            raise HistoryFileError(f"No History rows for instance '{instance_id}' (found: {partitions}).")
    elif len(partitions) > 1:
        raise HistoryFileError(
            f"The rows belong to {len(partitions)} instances ({', '.join(partitions[:5])}...): "
            "name the one to replay (--instance-id)."
        )
    sentinel = next((r for r in rows if r.get("RowKey") == SENTINEL_ROW_KEY), None)
    events_rows = sorted((r for r in rows if r.get("RowKey") != SENTINEL_ROW_KEY), key=lambda r: r["RowKey"])
    if not events_rows:
        raise HistoryFileError("The export holds no History rows besides the sentinel.")
    # Rows of an older execution (continue_as_new) or past the committed count are not history.
    execution = (sentinel or events_rows[0]).get("ExecutionId")
    current = []
    for row in events_rows:
        if row.get("ExecutionId") != execution:
            break
        current.append(row)
    if sentinel is not None and sentinel.get("HistoryEventCount") is not None:
        current = current[: int(sentinel["HistoryEventCount"])]
    notes = []
    events = []
    for row in current:
        if "_Timestamp" not in row or "EventType" not in row:
            raise HistoryFileError(f"History row {row.get('RowKey')} has no EventType or _Timestamp.")
        _type_name(row["EventType"])
        for key, value in row.items():
            if key.endswith("BlobName") and value:
                notes.append(
                    f"Row {row['RowKey']}: column {key[: -len('BlobName')]} is stored in blob '{value}', "
                    "which an offline replay cannot read; it is replayed as null."
                )
        events.append(event_from_row(row, {}))
    found_id, orchestrator = _instance_of(events, instance_id)
    if found_id == _UNKNOWN_INSTANCE:
        found_id = str(current[0].get("PartitionKey") or found_id)
    return SavedHistory(found_id, orchestrator, split_episodes(events), "History table rows", notes)
