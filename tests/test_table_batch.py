"""The hand-encoded table transaction against Azurite: what it stores equals what the SDK reads."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient

from emulator.taskhub.azure._table_batch import (
    Operation,
    TransactionFailed,
    insert_entity,
    merge_entity,
    submit_transaction,
)

pytestmark = pytest.mark.timeout(60)


def _run(connection: str, scenario: Any) -> Any:
    async def main() -> Any:
        async with TableServiceClient.from_connection_string(connection) as service:
            name = f"batch{uuid.uuid4().hex[:12]}"
            await service.create_table(name)
            async with service.get_table_client(name) as table:
                return await scenario(table)

    return asyncio.run(main())


def test_rows_of_every_type_and_awkward_keys_are_stored_as_the_sdk_reads_them(
    storage_connection: str,
) -> None:
    when = datetime(2026, 11, 28, 12, 30, 15, 123456, tzinfo=timezone.utc)
    rows = [
        {
            "PartitionKey": "it's ^0 é%20+&",
            "RowKey": f"{i:016X}",
            "Text": "héllo \"quoted\" 'single'",
            "Number": i,
            "Flag": i % 2 == 0,
            "When": when,
            "Nothing": None,
        }
        for i in range(3)
    ]

    async def scenario(table: Any) -> tuple[list[str | None], list[dict[str, Any]]]:
        etags = await submit_transaction(table, [Operation("upsert", row) for row in rows])
        stored = [
            dict(e)
            async for e in table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": rows[0]["PartitionKey"]}
            )
        ]
        return etags, stored

    etags, stored = _run(storage_connection, scenario)
    assert len(etags) == 3 and all(e and e.startswith('W/"') for e in etags)
    assert [r["RowKey"] for r in stored] == [r["RowKey"] for r in rows]
    first = stored[0]
    assert first["Text"] == rows[0]["Text"] and first["Number"] == 0 and first["Flag"] is True
    assert first["When"] == when and "Nothing" not in first


def test_a_stale_etag_or_an_existing_row_stores_nothing(storage_connection: str) -> None:
    pk = "p"

    async def scenario(table: Any) -> tuple[int | None, int | None, list[str]]:
        etags = await submit_transaction(
            table, [Operation("insert", {"PartitionKey": pk, "RowKey": "sentinel", "Count": 1})]
        )
        fresh = etags[-1]
        await submit_transaction(
            table,
            [
                Operation("upsert", {"PartitionKey": pk, "RowKey": "a"}),
                Operation("merge", {"PartitionKey": pk, "RowKey": "sentinel", "Count": 2}, fresh),
            ],
        )
        with pytest.raises(TransactionFailed) as stale:
            await submit_transaction(
                table,
                [
                    Operation("upsert", {"PartitionKey": pk, "RowKey": "b"}),
                    Operation("merge", {"PartitionKey": pk, "RowKey": "sentinel", "Count": 3}, fresh),
                ],
            )
        with pytest.raises(TransactionFailed) as exists:
            await submit_transaction(
                table,
                [
                    Operation("upsert", {"PartitionKey": pk, "RowKey": "c"}),
                    Operation("insert", {"PartitionKey": pk, "RowKey": "sentinel", "Count": 9}),
                ],
            )
        keys = [e["RowKey"] async for e in table.query_entities("PartitionKey eq 'p'")]
        sentinel = await table.get_entity(pk, "sentinel")
        assert sentinel["Count"] == 2
        return stale.value.status_code, exists.value.status_code, keys

    stale, exists, keys = _run(storage_connection, scenario)
    assert (stale, exists) == (412, 409)
    assert keys == ["a", "sentinel"]


def test_a_merge_creates_the_row_then_changes_only_the_columns_it_names(storage_connection: str) -> None:
    when = datetime(2026, 11, 28, 12, 30, 15, 123456, tzinfo=timezone.utc)
    key = {"PartitionKey": "it's an instance ^0 é", "RowKey": ""}

    async def scenario(table: Any) -> dict[str, Any]:
        await merge_entity(table, {**key, "RuntimeStatus": "Pending", "Input": "[1]", "CreatedTime": when})
        await merge_entity(table, {**key, "RuntimeStatus": "Completed", "Output": None})
        return dict(await table.get_entity(key["PartitionKey"], ""))

    stored = _run(storage_connection, scenario)
    assert stored["RuntimeStatus"] == "Completed"
    assert stored["Input"] == "[1]" and stored["CreatedTime"] == when
    assert "Output" not in stored or stored["Output"] is None


def test_an_insert_stores_a_new_row_and_refuses_an_existing_one(storage_connection: str) -> None:
    from azure.core.exceptions import ResourceExistsError

    row = {"PartitionKey": "instance 'é'", "RowKey": "", "RuntimeStatus": "Pending", "Generation": 0}

    async def scenario(table: Any) -> tuple[dict[str, Any], bool]:
        await insert_entity(table, row)
        try:
            await insert_entity(table, {**row, "RuntimeStatus": "Running"})
        except ResourceExistsError:
            refused = True
        else:
            refused = False
        return dict(await table.get_entity(row["PartitionKey"], "")), refused

    stored, refused = _run(storage_connection, scenario)
    assert refused and stored["RuntimeStatus"] == "Pending" and stored["Generation"] == 0


def test_a_merge_into_an_existing_row_refuses_a_missing_one(storage_connection: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    key = {"PartitionKey": "instance 'é'", "RowKey": ""}

    async def scenario(table: Any) -> tuple[bool, list[dict[str, Any]], dict[str, Any]]:
        try:
            await merge_entity(table, {**key, "RuntimeStatus": "Running"}, existing=True)
        except ResourceNotFoundError:
            refused = True
        else:
            refused = False
        missing = [dict(e) async for e in table.list_entities()]
        await insert_entity(table, {**key, "RuntimeStatus": "Pending", "Name": "Chain"})
        await merge_entity(table, {**key, "RuntimeStatus": "Running"}, existing=True)
        return refused, missing, dict(await table.get_entity(key["PartitionKey"], ""))

    refused, missing, stored = _run(storage_connection, scenario)
    assert refused and missing == []
    assert stored["RuntimeStatus"] == "Running" and stored["Name"] == "Chain"
