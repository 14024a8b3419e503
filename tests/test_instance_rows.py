"""Instances rows against Azurite: the row as this storage last wrote it equals the stored row,
and is forgotten whenever that may no longer hold."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from emulator.durable import _history as h
from emulator.durable._history import OrchestrationStatus
from emulator.taskhub import InstanceRecord, InstanceUpdate
from emulator.taskhub.azure import AzureTaskHub
from emulator.taskhub.azure._large import MAX_INLINE_PROPERTY_CHARS
from tests.support import with_task_hub

pytestmark = pytest.mark.timeout(60)


def _pending(instance_id: str) -> InstanceRecord:
    now = h.utcnow()
    return InstanceRecord(
        instance_id=instance_id,
        name="Chain",
        runtime_status=OrchestrationStatus.Pending,
        execution_id="e1",
        created_time=now,
        last_updated_time=now,
        input='{"n": 3}',
    )


def _without_etag(record: InstanceRecord | None) -> dict[str, Any]:
    assert record is not None
    return {**dataclasses.asdict(record), "version": None}


def test_the_row_as_written_equals_the_stored_row_after_every_write(storage_connection: str) -> None:
    async def scenario(storage: AzureTaskHub) -> list[tuple[Any, Any]]:
        pairs = []

        async def compare() -> None:
            pairs.append((storage.written_instance("i1"), await storage.read_instance("i1")))

        assert await storage.write_pending_instance(_pending("i1"), None)
        await compare()
        later = h.utcnow() + timedelta(seconds=1)
        await storage.update_instance(
            "i1", InstanceUpdate(later, runtime_status=OrchestrationStatus.Running, custom_status='"half"')
        )
        await compare()
        # Empty columns change nothing in a merge (the Table service skips them).
        await storage.update_instance("i1", InstanceUpdate(later, custom_status=None))
        await compare()
        await storage.update_instance(
            "i1",
            InstanceUpdate(
                later, runtime_status=OrchestrationStatus.Completed, output="[1, 2]", completed_time=later
            ),
        )
        await compare()
        return pairs

    pairs = with_task_hub(storage_connection, scenario)
    for written, stored in pairs:
        assert _without_etag(written) == _without_etag(stored)
    assert pairs[2][0] is not None and pairs[2][0].custom_status == '"half"'
    assert pairs[-1][0] is not None and pairs[-1][0].runtime_status == OrchestrationStatus.Completed


def test_the_row_is_forgotten_when_it_may_differ_from_the_stored_one(storage_connection: str) -> None:
    async def scenario(storage: AzureTaskHub) -> dict[str, bool]:
        known: dict[str, bool] = {}
        # Merged without the whole row written first: the other columns are not known.
        await storage.update_instance(
            "merged", InstanceUpdate(h.utcnow(), runtime_status=OrchestrationStatus.Running)
        )
        known["merge only"] = storage.written_instance("merged") is not None
        # A value kept in a blob.
        assert await storage.write_pending_instance(_pending("big"), None)
        await storage.update_instance(
            "big", InstanceUpdate(h.utcnow(), output='"' + "x" * MAX_INLINE_PROPERTY_CHARS + '"')
        )
        known["blob"] = storage.written_instance("big") is not None
        # A history read again (a host that takes the instance over), a delete.
        for instance_id in ("read", "deleted"):
            assert await storage.write_pending_instance(_pending(instance_id), None)
        await storage.read_history("read")
        known["history read"] = storage.written_instance("read") is not None
        await storage._instances.delete("deleted")
        known["deleted"] = storage.written_instance("deleted") is not None
        # A start refused because the row exists.
        assert not await storage.write_pending_instance(_pending("read"), None)
        known["refused start"] = storage.written_instance("read") is not None
        return known

    assert with_task_hub(storage_connection, scenario) == {
        "merge only": False,
        "blob": False,
        "history read": False,
        "deleted": False,
        "refused start": False,
    }
