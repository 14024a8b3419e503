"""The activity dispatcher runs its work items from one queue on at most maxConcurrentActivityFunctions
runners, and in-memory results of one execution share one delivery."""

from __future__ import annotations

import asyncio
from typing import cast

from emulator.app._app_index import AppIndex
from emulator.durable import _history as h
from emulator.durable._history import EventType, HistoryEvent
from emulator.durable._instance import OrchestrationInstance
from emulator.durable._timers import DurableClock
from emulator.durable._work_items import WorkItem
from emulator.functions._activities import ActivityDispatcher
from emulator.functions._bindings import Bindings
from emulator.functions._invocations import InvocationLog


class _NoFunctions:
    """An app index without activities: every item fails at once, without a thread."""

    def activity(self, name: str) -> None:
        return None


def test_a_big_fan_out_waits_in_one_queue_for_a_few_runners() -> None:
    results: list[tuple[WorkItem, HistoryEvent]] = []

    async def scenario() -> tuple[int, bool]:
        dispatcher = ActivityDispatcher(
            index=cast(AppIndex, _NoFunctions()),
            invocations=InvocationLog(),
            clock=DurableClock(),
            bindings=Bindings(),
            results=lambda item, event: results.append((item, event)),
            max_concurrent=3,
        )
        dispatcher.dispatch([WorkItem("i1", "e1", n, "Missing", None) for n in range(50)])
        tasks = len(dispatcher._tasks)  # a task per runner, none per item
        busy = dispatcher.busy
        while dispatcher.busy:
            await asyncio.sleep(0)
        # Work handed over once the runners have ended starts runners again.
        dispatcher.dispatch([WorkItem("i1", "e1", 50, "Missing", None)])
        while dispatcher.busy:
            await asyncio.sleep(0)
        await dispatcher.close()
        return tasks, busy

    tasks, busy = asyncio.run(scenario())
    assert tasks == 3 and busy
    assert [item.task_id for item, _ in results] == list(range(51))
    assert all(h.event_type(event) == EventType.TaskFailed for _, event in results)


def test_results_of_one_execution_share_a_delivery_and_a_new_execution_gets_its_own() -> None:
    instance = OrchestrationInstance("i1")
    first = instance.results_delivery("e1")
    assert instance.results_delivery("e1") is first
    assert first.volatile and first.handle is None and first.message.execution_id == "e1"
    later = instance.results_delivery("e2")
    assert later is not first and later.message.execution_id == "e2"
