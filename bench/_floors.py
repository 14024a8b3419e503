"""The two floors under the emulator's figures, measured in the same run.

* Storage: what Azurite itself sustains for the operations the design needs per activity: one
  queue message carrying many work items (sent, received, deleted), a table transaction of 100
  history rows, a single upsert. Measured with the async SDK clients the host uses.
* The storage of many orchestrations at once: the requests the engine sends for one ProcessOrder
  (its Pending row, three history transactions, three Instances-row writes, the status query),
  sent straight to Azurite for many instances at once, without a host. Azurite's cost per row
  grows with the number of instances in the task hub (its table store looks rows up by RowKey
  first, and in the real layout every instance's history uses the same RowKeys and every
  Instances row the RowKey ""), so this is measured at the scenario's own size.
* The history of the big fan-out: its TaskScheduled and TaskCompleted rows appended to a fresh
  Azurite at 10,000 and at 100,000, to show how far from linear the storage alone grows.
* Replay: what the Durable Functions SDK itself spends replaying the final history of a 1,000-way
  fan-out and of a 1,000-step chain, driving ``df.Orchestrator.create(fn)`` directly with a
  hand-built history (no host, no storage), as the host hands it over.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Generator
from datetime import datetime, timedelta, timezone
from typing import Any

import azure.durable_functions as df
from _common import CpuMeter
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient
from azure.functions import meta
from azure.functions.durable_functions import OrchestrationTriggerConverter
from azure.storage.queue.aio import QueueServiceClient

from emulator.durable import _history as h
from emulator.taskhub.azure._history import history_row
from emulator.taskhub.azure._queues import MAX_INLINE_MESSAGE_BYTES
from emulator.taskhub.azure._table_batch import Operation, insert_entity, merge_entity, submit_transaction

# -- storage --------------------------------------------------------------------------------


def _work_item(task_id: int) -> dict[str, Any]:
    # The shape of one activity in a work-item message (instance and execution ids are 32 hex).
    return {
        "instanceId": uuid.uuid4().hex,
        "executionId": uuid.uuid4().hex,
        "taskId": task_id,
        "name": "Noop",
        "input": json.dumps(task_id),
    }


def _packed_message() -> tuple[str, int]:
    """A work-item message packed to the inline size limit, and how many items it carries."""
    items: list[dict[str, Any]] = []
    while True:
        candidate = json.dumps({"workItems": [*items, _work_item(len(items))]}, separators=(",", ":"))
        if len(candidate.encode()) > MAX_INLINE_MESSAGE_BYTES:
            break
        items.append(_work_item(len(items)))
    return json.dumps({"workItems": items}, separators=(",", ":")), len(items)


async def _timed(count: int, make: Callable[[int], Awaitable[Any]], concurrency: int = 1) -> float:
    """Operations per second of ``count`` calls of ``make(i)``, ``concurrency`` at a time."""
    await make(count)  # warm-up: connection set-up is not part of the rate
    started = time.perf_counter()
    if concurrency == 1:
        for i in range(count):
            await make(i)
    else:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await make(i)

        await asyncio.gather(*(one(i) for i in range(count)))
    return count / (time.perf_counter() - started)


async def _azurite_cpu_ms(
    history: Any, instances: Any, now: datetime, count: int, pid: int
) -> dict[str, float]:
    """Azurite's CPU milliseconds per request, by kind, with the engine's own encoders."""

    def transaction(i: int) -> Awaitable[Any]:
        rows = _history_rows("cpu", 5, now, first=i * 5)
        return submit_transaction(history, [Operation("insert", r) for r in rows])

    def insert(i: int) -> Awaitable[Any]:
        row = {"PartitionKey": f"cpu-{i}", "RowKey": "", "RuntimeStatus": "Pending", "CreatedTime": now}
        return insert_entity(instances, row)

    def merge(i: int) -> Awaitable[Any]:
        row = {"PartitionKey": f"cpu-{i}", "RowKey": "", "RuntimeStatus": "Running"}
        return merge_entity(instances, row, existing=True)

    def read(i: int) -> Awaitable[Any]:
        return instances.get_entity(f"cpu-{i}", "")

    out: dict[str, float] = {}
    for name, make in (
        ("history_transaction", transaction),
        ("row_insert", insert),
        ("row_merge", merge),
        ("row_read", read),
    ):
        await make(count)
        meter = CpuMeter(azurite=pid).start()
        for i in range(count):
            await make(i)
        out[name] = 1000 * meter.stop().get("azurite", float("nan")) / count
    return out


async def _latency_ms(count: int, make: Callable[[int], Awaitable[Any]]) -> float:
    """Median milliseconds of one call of ``make(i)``, one at a time."""
    await make(count)
    times = []
    for i in range(count):
        started = time.perf_counter()
        await make(i)
        times.append(time.perf_counter() - started)
    return 1000 * sorted(times)[len(times) // 2]


async def _order_storage(history: Any, instances: Any, order: int, now: datetime) -> None:
    """The storage requests the engine sends for one ProcessOrder, in its order (no host)."""
    pk = f"order-{order:05d}"
    await insert_entity(
        instances, {"PartitionKey": pk, "RowKey": "", "RuntimeStatus": "Pending", "CreatedTime": now}
    )
    started = h.execution_started(
        instance_id=pk, execution_id="exec", name="ProcessOrder", input_text=json.dumps("null"), timestamp=now
    )
    details = json.dumps({"orderId": pk, "customerId": "c", "items": ["a", "b"], "total": 42})
    episodes = [
        # The first episode (kept in memory) and the second, written together.
        [
            h.orchestrator_started(now),
            started,
            h.task_scheduled(0, "GetOrderDetails", now),
            h.orchestrator_completed(now),
            h.orchestrator_started(now),
            h.task_completed(0, details, now),
            *(
                h.task_scheduled(i, name, now, details)
                for i, name in enumerate(("Notify", "Stock", "Ship"), 1)
            ),
            h.orchestrator_completed(now),
        ],
        [
            h.orchestrator_started(now),
            *(h.task_completed(i, json.dumps("done"), now) for i in (1, 2, 3)),
            h.task_scheduled(4, "CompleteOrder", now, details),
            h.orchestrator_completed(now),
        ],
        [
            h.orchestrator_started(now),
            h.task_completed(4, details, now),
            h.execution_completed(5, h.OrchestrationStatus.Completed, details, now),
            h.orchestrator_completed(now),
        ],
    ]
    written, etag = 0, None
    for number, events in enumerate(episodes):
        operations = [
            Operation("insert", history_row(pk, written + i, "exec", e)) for i, e in enumerate(events)
        ]
        written += len(events)
        sentinel = {
            "PartitionKey": pk,
            "RowKey": "sentinel",
            "ExecutionId": "exec",
            "HistoryEventCount": written,
        }
        operations.append(
            Operation("insert", sentinel) if etag is None else Operation("merge", sentinel, etag)
        )
        etag = (await submit_transaction(history, operations))[-1]
        status = "Completed" if number == len(episodes) - 1 else "Running"
        await merge_entity(
            instances,
            {"PartitionKey": pk, "RowKey": "", "RuntimeStatus": status, "LastUpdatedTime": now},
            existing=True,
        )
    await instances.get_entity(pk, "")


async def measure_orders_storage(
    connection_string: str, count: int, storage_pid: int | None
) -> dict[str, Any]:
    """Seconds (and Azurite CPU seconds) for the storage of ``count`` ProcessOrder at once."""
    now = datetime.now(timezone.utc)
    async with TableServiceClient.from_connection_string(connection_string) as tables:
        history = await tables.create_table_if_not_exists("BenchOrdersHistory")
        instances = await tables.create_table_if_not_exists("BenchOrdersInstances")
        meter = CpuMeter(azurite=storage_pid).start() if storage_pid is not None else None
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(_order_storage(history, instances, i, now) for i in range(count)))
        figures: dict[str, Any] = {"count": count, "seconds": time.perf_counter() - started}
        # The sending side's CPU (the Azure SDK, aiohttp): is the floor bound by Azurite or by its client?
        figures["client_cpu_s"] = time.process_time() - cpu_started
        if meter is not None:
            figures["azurite_cpu_s"] = meter.stop().get("azurite")
        await tables.delete_table("BenchOrdersHistory")
        await tables.delete_table("BenchOrdersInstances")
    return figures


async def measure_fanout_history(
    connection_string: str, count: int, storage_pid: int | None
) -> dict[str, Any]:
    """Seconds (and Azurite CPU seconds) to append a ``count``-way fan-out's history, no host.

    One instance's TaskScheduled and TaskCompleted rows, in transactions of 99 rows and the
    sentinel's merge, one after the other, as the engine appends them: what Azurite alone needs
    to store the big fan-out, so its growth from 10,000 to 100,000 shows how far from linear
    the storage itself is.
    """
    now = datetime.now(timezone.utc)
    events = [h.task_scheduled(i, "Noop", now, json.dumps(i)) for i in range(count)]
    events += [h.task_completed(i, json.dumps(i), now) for i in range(count)]
    async with TableServiceClient.from_connection_string(connection_string) as tables:
        history = await tables.create_table_if_not_exists("BenchFanOutHistory")
        meter = CpuMeter(azurite=storage_pid).start() if storage_pid is not None else None
        started = time.perf_counter()
        etag = None
        for first in range(0, len(events), 99):
            rows = [
                history_row("fanout", first + i, "exec", e) for i, e in enumerate(events[first : first + 99])
            ]
            sentinel = {
                "PartitionKey": "fanout",
                "RowKey": "sentinel",
                "HistoryEventCount": first + len(rows),
            }
            operations = [Operation("insert", r) for r in rows]
            operations.append(
                Operation("insert", sentinel) if etag is None else Operation("merge", sentinel, etag)
            )
            etag = (await submit_transaction(history, operations))[-1]
        figures: dict[str, Any] = {
            "count": count,
            "rows": len(events),
            "seconds": time.perf_counter() - started,
        }
        if meter is not None:
            figures["azurite_cpu_s"] = meter.stop().get("azurite")
        await tables.delete_table("BenchFanOutHistory")
    return figures


def _history_rows(pk: str, count: int, moment: datetime, first: int = 0) -> list[dict[str, Any]]:
    events = [h.task_completed(n, json.dumps(n), moment + timedelta(microseconds=n)) for n in range(count)]
    return [history_row(pk, first + n, "exec", event) for n, event in enumerate(events)]


async def measure_storage(
    connection_string: str, quick: bool, storage_pid: int | None = None
) -> dict[str, Any]:
    """Raw Azurite rates for the per-activity operations; see the module docstring.

    With ``storage_pid``, also Azurite's own CPU per request of each kind an orchestration
    needs: on two cores Azurite is one of the two busy processes, and many instances at once
    are bound by its CPU rather than by any one request's latency.
    """
    messages = 60 if quick else 200
    transactions = 10 if quick else 30
    singles = 100 if quick else 300
    content, items_per_message = _packed_message()
    small = json.dumps({"workItems": [_work_item(0)]}, separators=(",", ":"))
    figures: dict[str, Any] = {"items_per_message": items_per_message, "message_bytes": len(content)}

    async with QueueServiceClient.from_connection_string(connection_string) as queues:
        queue = queues.get_queue_client("bench-floor")
        await queue.create_queue()
        figures["queue_send_per_s"] = await _timed(messages, lambda i: queue.send_message(content))
        received = 0
        started = time.perf_counter()
        while received < messages + 1:
            batch = [m async for m in queue.receive_messages(max_messages=32, visibility_timeout=300)]
            if not batch:
                break
            for message in batch:
                await queue.delete_message(message.id, message.pop_receipt)
            received += len(batch)
        figures["queue_receive_delete_per_s"] = received / (time.perf_counter() - started)
        figures["queue_send_16_per_s"] = await _timed(
            messages, lambda i: queue.send_message(content), concurrency=16
        )
        await queue.clear_messages()
        figures["queue_send_small_ms"] = await _latency_ms(singles, lambda i: queue.send_message(small))
        await queue.delete_queue()

    now = datetime.now(timezone.utc)
    async with TableServiceClient.from_connection_string(connection_string) as tables:
        history = await tables.create_table_if_not_exists("BenchFloorHistory")
        instances = await tables.create_table_if_not_exists("BenchFloorInstances")

        def transaction(size: int, prefix: str) -> Callable[[int], Awaitable[Any]]:
            def submit(i: int) -> Awaitable[Any]:
                # Appended to one instance's partition, one after the other, like a chain's steps.
                rows = _history_rows(prefix, size, now, first=i * size)
                # Through the engine's own transaction encoder, as history appends go.
                return submit_transaction(history, [Operation("insert", r) for r in rows])

            return submit

        figures["table_transaction_100_per_s"] = await _timed(transactions, transaction(100, "big"))
        # An episode of a chain: OrchestratorStarted, TaskCompleted, TaskScheduled, OrchestratorCompleted
        # and the sentinel.
        figures["table_transaction_5_ms"] = await _latency_ms(singles, transaction(5, "small"))

        def upsert(i: int) -> Awaitable[Any]:
            row = {
                "PartitionKey": f"instance-{i:05d}",
                "RowKey": "",
                "RuntimeStatus": "Running",
                "LastUpdatedTime": now,
                "ExecutionId": "exec",
            }
            return instances.upsert_entity(row, mode=UpdateMode.MERGE)

        if storage_pid is not None:
            figures["azurite_cpu_ms"] = await _azurite_cpu_ms(history, instances, now, singles, storage_pid)
        figures["table_upsert_per_s"] = await _timed(singles, upsert)
        figures["table_upsert_16_per_s"] = await _timed(singles, upsert, concurrency=16)
        await tables.delete_table("BenchFloorHistory")
        await tables.delete_table("BenchFloorInstances")

    # What those rates allow, for the shapes the design takes (see the README's Performance section).
    rows_per_s = 100 * figures["table_transaction_100_per_s"]
    figures["fanout_1000_floor_s"] = {
        # TaskScheduled + TaskCompleted rows per activity, 100 to a transaction.
        "history": 2 * 1000 / rows_per_s,
        # Activities travel in memory from their TaskScheduled rows: no queue messages.
        "queues": 0.0,
    }
    # One step of a chain waits for one small history transaction (the activity's result is
    # recorded by the episode that schedules the next one): sequential latencies, nothing to batch.
    figures["chain_step_floor_ms"] = figures["table_transaction_5_ms"]
    return figures


# -- the SDK's replay -----------------------------------------------------------------------


def _fan_out(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    count = int(context.get_input())
    results: list[int] = yield context.task_all([context.call_activity("Noop", i) for i in range(count)])
    return sum(results)


def _chain(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    count = int(context.get_input())
    total = 0
    for i in range(count):
        total += yield context.call_activity("Noop", i)
    return total


class _HistoryBuilder:
    """Events as the host stores and replays them: message events played, the new batch not."""

    def __init__(self, count: int, orchestrator: str) -> None:
        self.clock = datetime(2024, 1, 1, tzinfo=timezone.utc)
        self.events: list[h.HistoryEvent] = []
        self.count = count
        started = h.execution_started(
            instance_id="bench",
            execution_id="exec",
            name=orchestrator,
            input_text=json.dumps(json.dumps(count)),
            timestamp=self.clock,
        )
        self.episode([started], [])

    def tick(self) -> datetime:
        self.clock += timedelta(milliseconds=1)
        return self.clock

    def episode(self, received: list[h.HistoryEvent], decided: list[h.HistoryEvent]) -> None:
        now = self.tick()
        played = [{**e, "IsPlayed": True} for e in received]
        self.events += [h.orchestrator_started(now), *played, *decided, h.orchestrator_completed(now)]

    def final_payload(self, last: list[h.HistoryEvent]) -> str:
        """The trigger payload of the last episode: the whole history plus the final completions."""
        history = [*self.events, h.orchestrator_started(self.tick()), *last]
        return json.dumps(
            {
                "history": history,
                "input": json.dumps(self.count),
                "instanceId": "bench",
                "isReplaying": True,
                "parentInstanceId": None,
                "upperSchemaVersion": 1,
                "upperSchemaVersionNew": 2,
                "longRunningTimerIntervalDuration": "3.00:00:00",
                "maximumShortTimerDuration": "6.00:00:00",
                "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
            }
        )


def fan_out_payload(count: int) -> str:
    builder = _HistoryBuilder(count, "FanOut")
    scheduled = [h.task_scheduled(i, "Noop", builder.clock) for i in range(count)]
    builder.events[-1:-1] = scheduled  # the first episode scheduled every activity
    completions = [h.task_completed(i, json.dumps(i), builder.clock) for i in range(count)]
    return builder.final_payload(completions)


def chain_payload(count: int) -> str:
    builder = _HistoryBuilder(count, "Chain")
    builder.events[-1:-1] = [h.task_scheduled(0, "Noop", builder.clock)]
    for i in range(count - 1):
        builder.episode(
            [h.task_completed(i, json.dumps(i), builder.clock)],
            [h.task_scheduled(i + 1, "Noop", builder.clock)],
        )
    return builder.final_payload([h.task_completed(count - 1, json.dumps(count - 1), builder.clock)])


def replay_once(handle: Callable[[Any], Any], payload: str) -> tuple[float, dict[str, Any]]:
    """Seconds for the SDK to decode the payload and replay it; and the state it returned."""
    started = time.perf_counter()
    context = OrchestrationTriggerConverter.decode(meta.Datum(payload, "string"), trigger_metadata=None)
    result = handle(context)
    seconds = time.perf_counter() - started
    text = result.value if isinstance(result, meta.Datum) else result
    return seconds, json.loads(text)


def measure_replay(count: int, repeats: int = 3) -> dict[str, Any]:
    """Median replay time of the final history of a ``count`` fan-out and a ``count`` chain."""
    figures: dict[str, Any] = {"count": count}
    expected = count * (count - 1) // 2
    shapes: list[tuple[str, Callable[..., Any], Callable[[int], str]]] = [
        ("fanout", _fan_out, fan_out_payload),
        ("chain", _chain, chain_payload),
    ]
    for shape, function, make_payload in shapes:
        handle = df.Orchestrator.create(function)
        payload = make_payload(count)
        times = []
        for _ in range(repeats):
            seconds, state = replay_once(handle, payload)
            if not state.get("isDone") or state.get("output") != expected:
                raise RuntimeError(f"the hand-built {shape} history did not replay to its result: {state}")
            times.append(seconds)
        figures[f"{shape}_replay_s"] = sorted(times)[len(times) // 2]
        figures[f"{shape}_events"] = len(json.loads(payload)["history"])
    # Replay cost grows with the history, so replaying everything at each of a chain's N episodes
    # costs about N/2 final replays.
    figures["chain_full_replays_s"] = count / 2 * figures["chain_replay_s"]
    return figures
