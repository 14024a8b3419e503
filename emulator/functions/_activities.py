"""Activity execution: work items in memory in, completion events out to their orchestration.

The history is the durable record of an activity's work: an episode writes its ``TaskScheduled``
rows, and only then hands the work items to this host's dispatcher (no work-item queue message
on the critical path). A result goes back to its orchestration in memory and becomes durable in
the next episode's history; until then a crash loses only the run, and the host that next loads
the instance's history dispatches every scheduled activity that has no result yet (durability
docs/durability.md invariant 4: activities run at least once, and at most twice after one crash).

Activities run on the host that owns their instance's partition. They run in parallel up to
``maxConcurrentActivityFunctions``.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from emulator.app._app_index import AppIndex
from emulator.durable import _history as h
from emulator.durable._crash import crash_point
from emulator.durable._failure_log import function_failed
from emulator.durable._replay import HTTP_ACTIVITY
from emulator.durable._routing import ResultSink
from emulator.durable._timers import DurableClock
from emulator.durable._work_items import WorkItem
from emulator.functions._activity_worker import ActivityOutcome, run_activity, worker_thread_count
from emulator.functions._bindings import Bindings
from emulator.functions._http_activity import run_http_activity
from emulator.functions._invocations import InvocationLog
from emulator.functions._threads import WorkerThreads

logger = logging.getLogger("emulator.activities")


class ActivityDispatcher:
    def __init__(
        self,
        *,
        index: AppIndex,
        invocations: InvocationLog,
        clock: DurableClock,
        bindings: Bindings,
        results: ResultSink,
        max_concurrent: int,
        hub_name: str = "",
    ) -> None:
        self._clock = clock
        self._hub_name = hub_name
        self._index = index
        self._invocations = invocations
        self._max_concurrent = max(1, max_concurrent)
        #: Work items waiting for a runner, in the order they were handed over.
        self._waiting: collections.deque[WorkItem] = collections.deque()
        # Synchronous activities share a thread pool as big as the Python worker's
        # (PYTHON_THREADPOOL_THREAD_COUNT): more threads only fight over the GIL with the loop.
        self._threads = WorkerThreads(min(max_concurrent, worker_thread_count()), "activity")
        #: The runners: at most ``max_concurrent`` tasks, each running waiting items one by one
        #: (a task per item would hold a coroutine and a task for each of a big fan-out's items).
        self._tasks: set[asyncio.Task[None]] = set()
        #: Runners that have not returned (a returned one may still be in ``_tasks`` a moment).
        self._runners = 0
        #: The input and output bindings of activities that have more than their trigger.
        self._bindings = bindings
        #: Receives each finished work item with its TaskCompleted or TaskFailed event.
        self._results = results

    def dispatch(self, items: list[WorkItem]) -> None:
        """Run these work items; each result goes to ``results`` as soon as it is known."""
        self._waiting.extend(items)
        loop = asyncio.get_running_loop()
        for _ in range(min(self._max_concurrent - self._runners, len(self._waiting))):
            self._runners += 1
            task = loop.create_task(self._runner())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def busy(self) -> bool:
        return bool(self._tasks or self._waiting)

    async def close(self) -> None:
        self._waiting.clear()
        for task in list(self._tasks):
            task.cancel()
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            self._threads.shutdown()  # even when the stop's grace period cuts the wait short

    async def _runner(self) -> None:
        try:
            while self._waiting:
                item = self._waiting.popleft()
                try:
                    await self._run_item(item)
                except Exception:
                    # Its TaskScheduled row stays without a result: the next load of the history
                    # dispatches it again (invariant 4). The other items still run.
                    logger.exception("Activity '%s' of '%s' could not be run", item.name, item.instance_id)
        finally:
            self._runners -= 1

    async def _run_item(self, item: WorkItem) -> None:
        function = self._index.activity(item.name)
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
                    function,
                    item.input,
                    self._threads,
                    bindings=self._bindings,
                    instance_id=item.instance_id,
                )
                if outcome.failed:
                    record.succeeded = False
                    record.error = outcome.failure_reason
        crash_point("activity-after-run")
        now = self._clock.now()
        if outcome.failed:
            reason = outcome.failure_reason or ""
            function_failed(
                self._hub_name, item.name, "Activity", item.instance_id, reason, task_event_id=item.task_id
            )
            event = h.task_failed(item.task_id, reason, outcome.failure_details, now)
        else:
            event = h.task_completed(item.task_id, outcome.result, now)
        self._results(item, event)
        crash_point("activity-after-handoff")

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
