"""Activity execution: work-item messages in, completion events out.

A work-item message carries several activities. They run in parallel up to
``maxConcurrentActivityFunctions``; each result is made durable in its instance's control
queue before the work-item message is deleted (durability invariant 4), so a crash re-runs an
activity rather than losing its result. Completions that finish close together travel in one
control message per instance, which keeps fan-ins cheap.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from emulator import _history as h
from emulator._app_index import AppIndex
from emulator._crash import crash_point
from emulator._history import HistoryEvent
from emulator._http_activity import run_http_activity
from emulator._invocations import InvocationLog
from emulator._leases import LeaseKeeper
from emulator._replay import HTTP_ACTIVITY
from emulator._storage import ControlMessage, MessageHandle, ReceivedWork, TaskHubStorage, WorkItem
from emulator._timers import DurableClock
from emulator._worker import ActivityOutcome, run_activity

logger = logging.getLogger("emulator.activities")

ControlSink = Callable[[ControlMessage, MessageHandle | None], None]


@dataclass
class _PendingCompletion:
    item: WorkItem
    event: HistoryEvent
    done: asyncio.Future[None]


class CompletionSender:
    """Sends activity completions to control queues, batching those that are ready together."""

    def __init__(self, storage: TaskHubStorage, leases: LeaseKeeper, deliver: ControlSink) -> None:
        self._storage = storage
        self._leases = leases
        self._deliver = deliver
        self._pending: list[_PendingCompletion] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="completion-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def send(self, item: WorkItem, event: HistoryEvent) -> None:
        """Return once the completion is durable in the instance's control queue."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_PendingCompletion(item, event, done))
        self._wake.set()
        await done

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            by_instance: dict[tuple[str, str], list[_PendingCompletion]] = {}
            for completion in batch:
                key = (completion.item.instance_id, completion.item.execution_id)
                by_instance.setdefault(key, []).append(completion)
            await asyncio.gather(*(self._flush(key, group) for key, group in by_instance.items()))

    async def _flush(self, key: tuple[str, str], group: list[_PendingCompletion]) -> None:
        instance_id, execution_id = key
        message = ControlMessage(instance_id, [c.event for c in group], execution_id)
        try:
            handle = await self._storage.send_control(message, lease=self._leases.lease_seconds)
        except Exception as exc:
            for completion in group:
                if not completion.done.done():
                    completion.done.set_exception(exc)
            return
        self._deliver(message, handle)
        for completion in group:
            if not completion.done.done():
                completion.done.set_result(None)


class ActivityDispatcher:
    def __init__(
        self,
        *,
        storage: TaskHubStorage,
        index: AppIndex,
        invocations: InvocationLog,
        leases: LeaseKeeper,
        completions: CompletionSender,
        clock: DurableClock,
        max_concurrent: int,
    ) -> None:
        self._clock = clock
        self._storage = storage
        self._index = index
        self._invocations = invocations
        self._leases = leases
        self._completions = completions
        self._slots = asyncio.Semaphore(max_concurrent)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="activity"
        )
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, works: list[ReceivedWork]) -> None:
        for work in works:
            self._leases.hold(work.handle)
            task = asyncio.get_running_loop().create_task(self._run_message(work))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run_message(self, work: ReceivedWork) -> None:
        try:
            await asyncio.gather(*(self._run_item(item) for item in work.items))
        except Exception:
            # Leave the message to reappear after its lease: every item will run again.
            logger.exception("Could not record activity results; the work item will be retried")
            self._leases.release(work.handle)
            return
        crash_point("activity-after-result")
        self._leases.release(work.handle)
        await self._storage.delete_message(work.handle)

    async def _run_item(self, item: WorkItem) -> None:
        function = self._index.activity(item.name)
        async with self._slots:
            if item.name == HTTP_ACTIVITY and item.http_request is not None:
                outcome = await self._run_http(item)
            elif function is None:
                outcome = ActivityOutcome(
                    failure_reason=f"Activity function '{item.name}' does not exist.", failure_details=None
                )
            else:
                with self._invocations.invoke(
                    function.name, reason="(null)", instance_id=item.instance_id
                ) as record:
                    outcome = await run_activity(
                        function, item.input, self._executor, instance_id=item.instance_id
                    )
                    if outcome.failed:
                        record.succeeded = False
                        record.error = outcome.failure_reason
        crash_point("activity-after-run")
        now = self._clock.now()
        if outcome.failed:
            event = h.task_failed(item.task_id, outcome.failure_reason or "", outcome.failure_details, now)
        else:
            event = h.task_completed(item.task_id, outcome.result, now)
        await self._completions.send(item, event)

    async def _run_http(self, item: WorkItem) -> ActivityOutcome:
        assert item.http_request is not None
        with self._invocations.invoke(HTTP_ACTIVITY, reason="(null)", instance_id=item.instance_id) as record:
            try:
                return ActivityOutcome(result=await run_http_activity(item.http_request))
            except Exception as exc:
                record.succeeded = False
                record.error = f"{type(exc).__name__}: {exc}"
                reason = f"Activity function '{HTTP_ACTIVITY}' failed: {record.error}"
                return ActivityOutcome(failure_reason=reason, failure_details=None)
