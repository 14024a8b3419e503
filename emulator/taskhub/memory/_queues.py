"""Control queues in memory: leased, at-least-once delivery, as an Azure Storage queue gives it.

A received message is invisible while its lease runs and visible again once the lease lapses
(``time.monotonic()``); only :meth:`ControlQueues.complete` removes it. Every lease carries a
receipt that changes on each receive and renewal, so a host whose lease lapsed and whose message
another host received since can neither renew nor complete it (docs/durability.md).

Receivers that find nothing wait for a send instead of polling: hosts on other threads (and
loops) may share one task hub, so waiters are woken through their own loop.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
import time
import uuid
from dataclasses import dataclass

from emulator.taskhub._interface import ControlMessage, MessageLease


@dataclass
class HeldMessage(MessageLease):
    """A lease on one message of one partition's queue."""

    partition: int = 0
    receipt: int = 0


@dataclass
class _Entry:
    message: ControlMessage
    visible_at: float
    receipt: int


class _Waiters:
    """Futures of receivers waiting for a partition's queue, on whatever loop each runs."""

    def __init__(self) -> None:
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def add(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((loop, future))
        return future

    def remove(self, future: asyncio.Future[None]) -> None:
        self._waiting = [(loop, f) for loop, f in self._waiting if f is not future]

    def wake_all(self) -> None:
        waiting, self._waiting = self._waiting, []
        for loop, future in waiting:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _stored(message: ControlMessage) -> ControlMessage:
    """A copy as a queue would keep it: nothing shared with the sender, ``new_instance`` dropped."""
    return ControlMessage(message.instance_id, copy.deepcopy(message.events), message.execution_id)


class ControlQueues:
    """One queue per partition."""

    def __init__(self, partition_count: int, *, receive_wait: float) -> None:
        #: How long a receive of an empty queue waits for a message before it returns none.
        self.receive_wait = receive_wait
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._queues: list[dict[str, _Entry]] = [{} for _ in range(partition_count)]
        self._waiters = [_Waiters() for _ in range(partition_count)]

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues:
                queue.clear()

    def send(
        self, partition: int, message: ControlMessage, *, delay: float, lease: float | None
    ) -> HeldMessage:
        started = time.monotonic()
        # Sent with a lease, the message is the sender's from birth: it surfaces only if the
        # sender neither completes nor renews it in time.
        hidden = max(delay, lease or 0.0)
        with self._lock:
            message_id, receipt = uuid.uuid4().hex, next(self._ids)
            self._queues[partition][message_id] = _Entry(_stored(message), started + hidden, receipt)
            self._waiters[partition].wake_all()
        label = f"control-{partition:02d}/{message_id}"
        return HeldMessage(message_id, label, started, partition, receipt)

    async def receive(
        self, partition: int, lease: float, max_messages: int
    ) -> list[tuple[ControlMessage, MessageLease]]:
        deadline = time.monotonic() + self.receive_wait
        while True:
            now = time.monotonic()
            with self._lock:
                taken = self._take_visible(partition, now, lease, max_messages)
                if taken or now >= deadline:
                    return taken
                # Wake at the next send, or when a hidden message becomes visible.
                next_visible = min((e.visible_at for e in self._queues[partition].values()), default=deadline)
                future = self._waiters[partition].add()
            try:
                await asyncio.wait_for(asyncio.shield(future), max(0.0, min(deadline, next_visible) - now))
            except asyncio.TimeoutError:
                pass
            finally:
                with self._lock:
                    self._waiters[partition].remove(future)

    def _take_visible(
        self, partition: int, now: float, lease: float, max_messages: int
    ) -> list[tuple[ControlMessage, MessageLease]]:
        taken: list[tuple[ControlMessage, MessageLease]] = []
        for message_id, entry in self._queues[partition].items():
            if len(taken) >= max_messages:
                break
            if entry.visible_at > now:
                continue
            entry.visible_at = now + lease
            entry.receipt = next(self._ids)
            label = f"control-{partition:02d}/{message_id}"
            held = HeldMessage(message_id, label, now, partition, entry.receipt)
            taken.append((_stored(entry.message), held))
        return taken

    def renew(self, held: MessageLease, lease: float) -> bool:
        assert isinstance(held, HeldMessage), held
        started = time.monotonic()
        with self._lock:
            entry = self._queues[held.partition].get(held.message_id)
            if entry is None or entry.receipt != held.receipt:
                return False  # completed, or received by someone else after our lease lapsed
            entry.visible_at = started + lease
            entry.receipt = held.receipt = next(self._ids)
            if lease <= 0:
                self._waiters[held.partition].wake_all()
        held.leased_at = started
        return True

    def complete(self, held: MessageLease) -> None:
        assert isinstance(held, HeldMessage), held
        with self._lock:
            queue = self._queues[held.partition]
            entry = queue.get(held.message_id)
            # A stale receipt: another receiver holds it now; its copy is deduplicated downstream.
            if entry is not None and entry.receipt == held.receipt:
                del queue[held.message_id]

    def pending(self, partition: int) -> int:
        """How many messages the partition's queue holds, visible or not."""
        with self._lock:
            return len(self._queues[partition])
