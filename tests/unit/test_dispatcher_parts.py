"""The orchestration dispatcher's parts on their own: reconcile (history and batch in, result out)
and the per-instance mailbox loop. No storage, no SDK."""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass

import pytest

from emulator.durable import _history as h
from emulator.durable import _mailbox
from emulator.durable._history import HistoryEvent, OrchestrationStatus
from emulator.durable._mailbox import Mailbox, MailboxLoop
from emulator.durable._reconcile import MESSAGE_ID, Delivery, HistoryIndex, Incoming, Reconciled, reconcile
from emulator.taskhub._interface import ControlMessage, MessageLease, StoredHistory

T0 = h.parse_timestamp("2024-01-01T00:00:00Z")
ID, EXECUTION = "i1", "e1"


def started(execution_id: str = EXECUTION) -> HistoryEvent:
    return h.execution_started(
        instance_id=ID, execution_id=execution_id, name="Main", input_text=None, timestamp=T0
    )


def running(*events: HistoryEvent, execution_id: str = EXECUTION) -> StoredHistory:
    """A stored history: the start of ``execution_id`` and ``events``."""
    return StoredHistory([h.orchestrator_started(T0), started(execution_id), *events], "etag", execution_id)


def incoming(
    *events: HistoryEvent, execution_id: str | None = EXECUTION, message_id: str | None = None
) -> list[Incoming]:
    """The events of one control message (with a queue handle when ``message_id`` is given)."""
    handle = None if message_id is None else MessageLease(message_id, f"control-00 {message_id}")
    delivery = Delivery(ControlMessage(ID, list(events), execution_id), handle, volatile=handle is None)
    return [(event, delivery) for event in events]


def sort(stored: StoredHistory, batch: list[Incoming]) -> Reconciled:
    snapshot = copy.deepcopy([event for event, _ in batch])
    result = reconcile(stored, HistoryIndex(stored.events).catch_up(), batch)
    assert [event for event, _ in batch] == snapshot, "reconcile changed an incoming event"
    return result


def names(events: list[HistoryEvent]) -> list[str]:
    return [h.event_type(e).name for e in events]


# -- reconcile --------------------------------------------------------------------------------


def test_a_result_of_a_scheduled_task_is_applied_and_its_duplicate_dropped() -> None:
    stored = running(h.task_scheduled(0, "A", T0))
    done = h.task_completed(0, '"x"', T0)
    again = h.task_completed(0, '"x"', T0)
    result = sort(stored, incoming(done, again))
    assert result.accepted == [done]
    assert result.deferred == []
    assert [event for event, _ in result.dropped] == [again]
    assert result.history is stored


def test_a_result_already_in_the_history_is_dropped() -> None:
    stored = running(h.task_scheduled(0, "A", T0), h.task_completed(0, '"x"', T0))
    late = h.task_completed(0, '"x"', T0)
    result = sort(stored, incoming(late))
    assert (result.accepted, result.deferred) == ([], [])
    assert [event for event, _ in result.dropped] == [late]


def test_a_result_whose_scheduling_has_not_landed_waits() -> None:
    early = h.task_completed(3, '"x"', T0)
    result = sort(running(), incoming(early))
    assert result.accepted == [] and result.dropped == []
    assert [event for event, _ in result.deferred] == [early]


def test_a_result_for_an_earlier_generation_is_dropped() -> None:
    stored = running(h.task_scheduled(0, "A", T0), execution_id="e2")
    stale = h.task_completed(0, '"x"', T0)
    result = sort(stored, incoming(stale, execution_id="e1"))
    assert result.accepted == [] and [event for event, _ in result.dropped] == [stale]


def test_events_for_an_instance_not_started_wait_for_the_start() -> None:
    raised = h.event_raised("Approval", '"yes"', T0)
    result = sort(StoredHistory([], None, None), incoming(raised, execution_id=None))
    assert result.accepted == [] and [event for event, _ in result.deferred] == [raised]


def test_a_start_applies_and_a_second_start_of_the_same_execution_is_dropped() -> None:
    first, second = started(), started()
    result = sort(StoredHistory([], None, None), incoming(first, second))
    assert result.accepted == [first]
    assert [event for event, _ in result.dropped] == [second]


def test_a_new_execution_over_a_finished_one_starts_a_fresh_history() -> None:
    stored = running(h.execution_completed(1, OrchestrationStatus.Completed, '"done"', T0))
    new_start = started("e2")
    result = sort(stored, incoming(new_start, execution_id="e2"))
    assert result.accepted == [new_start]
    assert result.history is not stored
    assert (result.history.events, result.history.execution_id, result.history.version) == ([], None, "etag")


def test_events_after_the_end_are_dropped() -> None:
    stored = running(h.execution_completed(1, OrchestrationStatus.Completed, None, T0))
    raised = h.event_raised("Late", None, T0)
    result = sort(stored, incoming(raised, execution_id=None))
    assert result.accepted == [] and [event for event, _ in result.dropped] == [raised]


def test_a_suspended_instance_takes_only_resume_and_terminate() -> None:
    stored = running(h.execution_suspended("pause", T0))
    raised = h.event_raised("Approval", None, T0)
    resumed = h.execution_resumed("go", T0)
    result = sort(stored, incoming(raised, execution_id=None) + incoming(resumed, execution_id=None))
    assert [event for event, _ in result.deferred] == [raised]
    assert result.accepted == [resumed]


def test_a_terminate_drops_what_follows_it_in_the_batch() -> None:
    stored = running(h.task_scheduled(0, "A", T0))
    terminated = h.execution_terminated("stop", T0)
    done = h.task_completed(0, None, T0)
    result = sort(stored, incoming(terminated, execution_id=None) + incoming(done))
    assert result.accepted == [terminated]
    assert [event for event, _ in result.dropped] == [done]


def test_a_raised_event_is_applied_as_a_copy_that_names_its_queue_message() -> None:
    raised = h.event_raised("Approval", '"yes"', T0)
    result = sort(running(), incoming(raised, execution_id=None, message_id="m1"))
    assert len(result.accepted) == 1
    applied = result.accepted[0]
    assert applied is not raised and MESSAGE_ID not in raised
    assert applied == {**raised, MESSAGE_ID: "m1:0"}


def test_a_redelivered_raised_event_is_dropped() -> None:
    delivered = {**h.event_raised("Approval", '"yes"', T0), MESSAGE_ID: "m1:0"}
    again = h.event_raised("Approval", '"yes"', T0)
    other = h.event_raised("Approval", '"no"', T0)
    batch = incoming(again, execution_id=None, message_id="m1") + incoming(
        other, execution_id=None, message_id="m2"
    )
    result = sort(running(delivered), batch)
    assert [event for event, _ in result.dropped] == [again]
    assert result.accepted == [{**other, MESSAGE_ID: "m2:0"}]


def test_the_index_catches_up_with_appended_rows() -> None:
    stored = running(h.task_scheduled(0, "A", T0))
    index = HistoryIndex(stored.events).catch_up()
    assert (index.scheduled, index.completed, index.finished) == ({0}, set(), False)
    stored.events.extend(
        [h.task_completed(0, None, T0), h.execution_completed(1, OrchestrationStatus.Completed, None, T0)]
    )
    index.catch_up()
    assert (index.completed, index.finished, index.count) == ({0}, True, len(stored.events))


# -- the mailbox loop -------------------------------------------------------------------------


@dataclass
class _Box(Mailbox[str]):
    steps: int = 0


class _Worker:
    """Steps that take every pending item; the first ``failures`` steps fail after taking them."""

    def __init__(self, failures: int = 0, progress: bool = True) -> None:
        self.batches: list[list[str]] = []
        self.errors: list[Exception] = []
        self.idle: list[list[str]] = []
        self.failures = failures
        self.progress = progress
        self.gate = asyncio.Event()
        self.gate.set()
        self.loop: MailboxLoop[_Box] = MailboxLoop(
            kind="test",
            label="Step of",
            logger=logging.getLogger("test.mailbox"),
            step=self.step,
            has_work=lambda box: bool(box.pending),
            on_error=self.failed,
            on_idle=lambda box: self.idle.append(list(box.pending)),
        )

    async def step(self, box: _Box) -> bool:
        batch, box.pending = box.pending, []
        box.in_flight = batch
        try:
            await self.gate.wait()
            box.steps += 1
            if self.failures:
                self.failures -= 1
                raise RuntimeError("storage went away")
            self.batches.append(batch)
            return self.progress
        except Exception:
            box.pending = batch + box.pending
            raise
        finally:
            box.in_flight = []

    def failed(self, box: _Box, exc: Exception) -> bool:
        self.errors.append(exc)
        return False  # retry at once: the test need not wait out a backoff


async def _settled(box: _Box) -> None:
    while box.task is not None:
        await asyncio.sleep(0)


async def test_items_that_arrive_during_a_step_go_into_the_next_one_together() -> None:
    worker, box = _Worker(), _Box("i1")
    worker.gate.clear()
    box.pending.append("a")
    worker.loop.wake(box)
    await asyncio.sleep(0)
    assert box.in_flight == ["a"]
    box.pending += ["b", "c"]
    worker.loop.wake(box)  # a task already works the mailbox: no second one
    worker.gate.set()
    await _settled(box)
    assert worker.batches == [["a"], ["b", "c"]]
    assert worker.idle == [[]]


async def test_a_failed_step_is_retried_with_what_it_took() -> None:
    worker, box = _Worker(failures=2), _Box("i1")
    box.pending.append("a")
    worker.loop.wake(box)
    await _settled(box)
    assert worker.batches == [["a"]]
    assert box.steps == 3 and len(worker.errors) == 2


async def test_a_step_that_makes_no_progress_ends_the_task_and_leaves_the_rest() -> None:
    worker, box = _Worker(progress=False), _Box("i1")
    worker.gate.clear()
    box.pending.append("a")
    worker.loop.wake(box)
    await asyncio.sleep(0)
    box.pending.append("b")
    worker.gate.set()
    await _settled(box)
    assert worker.batches == [["a"]]
    assert worker.idle == [["b"]]


async def test_an_empty_mailbox_starts_no_task() -> None:
    worker, box = _Worker(), _Box("i1")
    worker.loop.wake(box)
    assert box.task is None and worker.idle == []


async def test_a_failure_that_asks_for_a_backoff_waits_before_the_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_mailbox, "FIRST_BACKOFF", 0.05)
    worker, box = _Worker(failures=1), _Box("i1")
    worker.loop = MailboxLoop(
        kind="test",
        label="Step of",
        logger=logging.getLogger("test.mailbox"),
        step=worker.step,
        has_work=lambda b: bool(b.pending),
        on_error=lambda b, exc: True,
        on_idle=lambda b: None,
    )
    box.pending.append("a")
    loop = asyncio.get_running_loop()
    began = loop.time()
    worker.loop.wake(box)
    await _settled(box)
    assert loop.time() - began >= 0.05
    assert worker.batches == [["a"]] and box.steps == 2


def test_an_episode_takes_at_most_its_share_of_results_without_parting_a_message() -> None:
    from emulator.durable._orchestrations import MAX_EPISODE_EVENTS, _take_batch

    results = Delivery(ControlMessage(ID, [], EXECUTION), None, volatile=True)
    pending = [(h.task_completed(n, "1", T0), results) for n in range(MAX_EPISODE_EVENTS + 5)]
    batch, left = _take_batch(pending)
    assert len(batch) == MAX_EPISODE_EVENTS and left == pending[MAX_EPISODE_EVENTS:]
    # A queue message is acknowledged once all its events are applied: never split across episodes.
    events = [h.event_raised("Go", None, T0) for _ in range(3)]
    message = incoming(*events, message_id="m1")
    parted = [*pending[: MAX_EPISODE_EVENTS - 1], *message]
    assert _take_batch(parted) == (parted, [])
    assert _take_batch(pending[:10]) == (pending[:10], [])
