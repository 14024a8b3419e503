"""The storage floor against the size of the task hub: what one request costs in Azurite once the
hub holds N finished ``FanOut(10)`` instances (26 history rows, a sentinel and an Instances row
each, in the real provider's layout), on the Azurite the emulator starts and on one that looks
rows up as it does by itself (RowKey first; see emulator/host/azurite_lookups.js).

Three costs grow with the hub: a row lookup by RowKey first walks one row per instance (the
script removes that), a query tests every row of the table, and Azurite writes its whole table
database to disk every 5 s while writes go on (its stalls are the ``max`` column).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import CpuMeter, azurite
from _floors import _history_rows
from azure.data.tables.aio import TableClient, TableServiceClient

from emulator.taskhub.azure._table_batch import Operation, insert_entity, merge_entity, submit_transaction

ROWS = 26


async def _populate(history: TableClient, instances: TableClient, first: int, last: int) -> None:
    now = datetime.now(timezone.utc)
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        async with gate:
            pk = f"done{i:08d}"
            ops = [Operation("insert", r) for r in _history_rows(pk, ROWS, now)]
            sentinel = {"PartitionKey": pk, "RowKey": "sentinel", "HistoryEventCount": ROWS}
            await submit_transaction(history, [*ops, Operation("insert", sentinel)])
            await insert_entity(instances, {"PartitionKey": pk, "RowKey": "", "RuntimeStatus": "Completed"})

    await asyncio.gather(*(one(i) for i in range(first, last)))


async def _costs(
    history: TableClient, instances: TableClient, tag: str, pid: int, seconds: float
) -> dict[str, Any]:
    """Median and worst milliseconds, and Azurite's CPU, of each request kind for ``seconds``."""
    now = datetime.now(timezone.utc)

    async def absent_history(i: int) -> None:
        pk = f"new{tag}-{i}"
        [e async for e in history.query_entities("PartitionKey eq @pk", parameters={"pk": pk})]

    async def transaction(i: int) -> None:
        rows = _history_rows(f"tx{tag}-{i}", 5, now)
        await submit_transaction(history, [Operation("insert", r) for r in rows])

    inserted = [1]

    async def row_insert(i: int) -> None:
        await insert_entity(
            instances, {"PartitionKey": f"row{tag}-{i}", "RowKey": "", "RuntimeStatus": "Pending"}
        )
        inserted[0] = i + 1

    async def row_merge(i: int) -> None:
        # Rows the inserts above wrote: a merge of a missing row is refused.
        row = {"PartitionKey": f"row{tag}-{i % inserted[0]}", "RowKey": "", "RuntimeStatus": "Running"}
        await merge_entity(instances, row, existing=True)

    kinds: list[tuple[str, Callable[[int], Awaitable[None]]]] = [
        ("history_query", absent_history),
        ("history_transaction_5", transaction),
        ("row_insert", row_insert),
        ("row_merge", row_merge),
    ]
    out: dict[str, Any] = {}
    for name, make in kinds:
        times: list[float] = []
        meter = CpuMeter(azurite=pid).start()
        until = time.perf_counter() + seconds
        while time.perf_counter() < until:
            started = time.perf_counter()
            await make(len(times))
            times.append(1000 * (time.perf_counter() - started))
        cpu = meter.stop().get("azurite")
        times.sort()
        out[name] = {
            "p50_ms": times[len(times) // 2],
            "max_ms": times[-1],
            "azurite_cpu_ms": None if cpu is None else 1000 * cpu / len(times),
        }
    return out


async def _measure(
    connection_string: str, pid: int, location: Path, sizes: tuple[int, ...], seconds: float, say: Any
) -> list[dict[str, Any]]:
    out = []
    async with TableServiceClient.from_connection_string(connection_string) as tables:
        history = await tables.create_table("GrowthHistory")
        instances = await tables.create_table("GrowthInstances")
        stored = 0
        for size in sizes:
            started = time.perf_counter()
            await _populate(history, instances, stored, size)
            filled = time.perf_counter() - started
            stored = size
            costs = await _costs(history, instances, str(size), pid, seconds)
            database = sum(p.stat().st_size for p in location.glob("__azurite_db_table__*"))
            say(
                f"    {size:,} instances: 5-row history transaction "
                f"{costs['history_transaction_5']['p50_ms']:.1f} ms, history query "
                f"{costs['history_query']['p50_ms']:.1f} ms, table database {database / 2**20:.0f} MB"
            )
            out.append({"instances": size, "fill_s": filled, "database_mb": database / 2**20, **costs})
        await tables.delete_table("GrowthHistory")
        await tables.delete_table("GrowthInstances")
    return out


def measure_hub_growth(sizes: tuple[int, ...], seconds: float, say: Any) -> dict[str, Any]:
    """Costs at each size of ``sizes``, with and without the lookup script; the last size only
    without it (filling the hub is itself quadratic there)."""
    figures: dict[str, Any] = {}
    for label, ordered, measured in (("emulator", True, sizes), ("plain", False, sizes[-1:])):
        say(f"  hub growth, Azurite {'as the emulator starts it' if ordered else 'by itself'}:")
        with azurite(f"growth-{label}", ordered_lookups=ordered) as server:
            figures[label] = asyncio.run(
                _measure(
                    server.connection_string, server.process.pid, server.location, measured, seconds, say
                )
            )
    return figures
