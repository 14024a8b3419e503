"""What the storage extensions do for blob, queue and table input and output bindings.

Sources: Microsoft.Azure.WebJobs.Extensions.Storage.Blobs/Queues and .Tables (``TableEntityWriter``,
``TablesExtensionConfigProvider``): output blobs and queues are created when missing, queue outputs
take a JSON array as one message per element, table outputs insert (``Add``) entities in batches per
partition, and a table input with both keys reads one entity (null when missing), else a JSON array.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from emulator.app._dotnet import iso_json
from emulator.functions._accounts import StorageAccounts

MAX_TABLE_BATCH = 100

# Newtonsoft parses ISO-looking JSON strings as dates, so the host stores them as Edm.DateTime.
_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})?")
# TableClientHelpers.ValidateAzureTableKeyValue
_INVALID_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


class BindingWriteError(ValueError):
    """An output value the storage extension would refuse; the message says why."""


def split_blob_path(path: str) -> tuple[str, str]:
    """``container/name/with/slashes`` -> (container, name)."""
    container, _, name = path.strip("/").partition("/")
    if not container or not name:
        raise BindingWriteError(
            f"Invalid blob path '{path}': a blob path must be 'container/blob name', e.g. 'samples/{{name}}'."
        )
    return container, name


# -- blobs -----------------------------------------------------------------------------------------


async def read_blob(accounts: StorageAccounts, connection: str | None, path: str) -> bytes | None:
    container, name = split_blob_path(path)
    blob = accounts.blobs(connection).get_blob_client(container, name)
    try:
        stream = await blob.download_blob()
        data: bytes = await stream.readall()
    except ResourceNotFoundError:
        return None  # a missing input blob binds as null
    return data


async def write_blob(accounts: StorageAccounts, connection: str | None, path: str, content: bytes) -> None:
    container, name = split_blob_path(path)
    service = accounts.blobs(connection)
    blob = service.get_blob_client(container, name)
    try:
        await blob.upload_blob(content, overwrite=True)
    except ResourceNotFoundError:
        await _create_container(service, container)
        await blob.upload_blob(content, overwrite=True)


async def _create_container(service: Any, container: str) -> None:
    with contextlib.suppress(ResourceExistsError):
        await service.create_container(container)


# -- queues ----------------------------------------------------------------------------------------


def encode_queue_message(content: str | bytes, encoding: str) -> str:
    """The message text on the wire for the host's ``messageEncoding`` (``base64`` or ``none``)."""
    raw = content.encode("utf-8") if isinstance(content, str) else content
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii")
    return raw.decode("utf-8") if isinstance(content, bytes) else content


async def send_queue_messages(
    accounts: StorageAccounts, connection: str | None, queue_name: str, messages: Iterable[str]
) -> None:
    queue = accounts.queues(connection).get_queue_client(queue_name)
    for text in messages:
        try:
            await queue.send_message(text)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                await queue.create_queue()
            await queue.send_message(text)


# -- tables ----------------------------------------------------------------------------------------


def _json_property(value: Any) -> Any:
    from azure.data.tables import EntityProperty

    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, datetime):
        return iso_json(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, int | float | bool | str) or value is None:
        return value
    return str(value)  # GUIDs


def entity_to_json(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The JObject the host builds from a TableEntity: keys, Timestamp and etag included."""
    metadata = getattr(entity, "metadata", {}) or {}
    out: dict[str, Any] = {}
    if metadata.get("etag"):
        out["odata.etag"] = metadata["etag"]
    out["PartitionKey"] = entity.get("PartitionKey")
    out["RowKey"] = entity.get("RowKey")
    if metadata.get("timestamp") is not None:
        out["Timestamp"] = iso_json(metadata["timestamp"])
    for key, value in entity.items():
        if key not in out:
            out[key] = _json_property(value)
    return out


async def read_entities(
    accounts: StorageAccounts,
    connection: str | None,
    table_name: str,
    *,
    partition_key: str | None,
    row_key: str | None,
    query_filter: str | None,
    take: int | None,
) -> Any:
    """One entity (dict or None) when both keys are given, else a list, as JSON-ready values."""
    table = accounts.tables(connection).get_table_client(table_name)
    if partition_key is not None and row_key is not None:
        try:
            return entity_to_json(await table.get_entity(partition_key, row_key))
        except ResourceNotFoundError:
            return None
    final = query_filter or None
    if partition_key:
        predicate = "PartitionKey eq '" + partition_key.replace("'", "''") + "'"
        final = f"{predicate} and {query_filter}" if query_filter else predicate
    results: list[dict[str, Any]] = []
    pages = table.query_entities(final, results_per_page=take) if final else table.list_entities()
    try:
        async for entity in pages:
            results.append(entity_to_json(entity))
            if take and len(results) >= take:
                break
    except ResourceNotFoundError:
        return []
    return results


def _entity_value(name: str, value: Any) -> Any:
    from azure.data.tables import EdmType, EntityProperty

    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int):
        return EntityProperty(value, EdmType.INT64)  # JSON integers are Int64 (JValue) on the host
    if isinstance(value, str):
        date = _parse_json_date(value)
        return value if date is None else date
    raise BindingWriteError(
        f"Table entity property '{name}' is a JSON {type(value).__name__}; table output bindings accept "
        f"only string, number, boolean and null property values."
    )


def _parse_json_date(text: str) -> datetime | None:
    match = _ISO_DATE_RE.fullmatch(text)
    if match is None:
        return None
    fraction = (match.group(1) or ".")[1:7].ljust(6, "0")
    zone = match.group(2) or "Z"
    offset = timezone.utc if zone == "Z" else datetime.strptime(zone.replace(":", ""), "%z").tzinfo
    try:
        parsed = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return parsed.replace(microsecond=int(fraction), tzinfo=offset)


def _validate_key(kind: str, key: Any) -> str:
    if not isinstance(key, str) or key == "":
        raise BindingWriteError(
            f"The table entity has no {kind}: set it in the entity JSON or in the binding's "
            f"'{kind[0].lower() + kind[1:]}' property."
        )
    if _INVALID_KEY_CHARS.search(key) or len(key) > 1024:
        raise BindingWriteError(
            f"{kind} '{key}' is invalid: keys cannot contain '/', '\\', '#', '?' or control characters "
            f"and are at most 1024 characters."
        )
    return key


def build_entity(item: Any, partition_key: str | None, row_key: str | None) -> dict[str, Any]:
    """CreateTableEntityFromJObject: keys in the JSON (any case) win over the binding's keys."""
    if not isinstance(item, Mapping):
        raise BindingWriteError(
            f"A table output value must be a JSON object (or an array of them), not {json.dumps(item)[:80]}."
        )
    props = dict(item)
    for name in list(props):
        if name.lower() == "partitionkey":
            partition_key = props.pop(name)
        elif name.lower() == "rowkey":
            row_key = props.pop(name)
    entity: dict[str, Any] = {
        "PartitionKey": _validate_key("PartitionKey", partition_key),
        "RowKey": _validate_key("RowKey", row_key),
    }
    for name, value in props.items():
        entity[name] = _entity_value(name, value)
    return entity


async def insert_entities(
    accounts: StorageAccounts, connection: str | None, table_name: str, entities: list[dict[str, Any]]
) -> None:
    from azure.data.tables import TableTransactionError

    table = accounts.tables(connection).get_table_client(table_name)
    by_partition: dict[str, list[dict[str, Any]]] = {}
    for entity in entities:
        by_partition.setdefault(entity["PartitionKey"], []).append(entity)
    for batch_source in by_partition.values():
        for start in range(0, len(batch_source), MAX_TABLE_BATCH):
            operations = [("create", e) for e in batch_source[start : start + MAX_TABLE_BATCH]]
            try:
                await table.submit_transaction(operations)
            except (ResourceNotFoundError, TableTransactionError) as exc:
                if not _is_table_missing(exc):
                    raise
                with contextlib.suppress(ResourceExistsError):
                    await table.create_table()
                await table.submit_transaction(operations)


def _is_table_missing(exc: Exception) -> bool:
    code = str(getattr(exc, "error_code", "") or "")
    return code in ("TableNotFound", "ResourceNotFound") or "TableNotFound" in str(exc)
