"""Durable time: the host's clock and the durable timers waiting on it.

A timer is a TimerFired message in the instance's control queue, leased to this host while it
waits in memory for its fire time; a host that dies leaves the message to reappear and be
scheduled again by whoever polls it next, so timers survive restarts. Firing follows the
host's clock rather than queue visibility, which is what lets tests move time forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from emulator.durable import _history as h
from emulator.durable._history import EventType
from emulator.durable._leases import LeaseKeeper
from emulator.durable._routing import ControlSink
from emulator.taskhub._interface import ControlMessage, MessageLease

logger = logging.getLogger("emulator.timers")


class DurableClock:
    """Wall-clock UTC plus an offset that tests may move forward (never back)."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return h.utcnow() + self._offset

    @property
    def offset(self) -> timedelta:
        return self._offset

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError("durable time only moves forward")
        self._offset += delta
        for listener in self._listeners:
            listener()

    def on_advance(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)


def fire_time(message: ControlMessage) -> datetime | None:
    """When a message may be applied: the latest FireAt of its timer events, None if none."""
    times = [
        h.parse_timestamp(str(e["FireAt"])) for e in message.events if h.event_type(e) == EventType.TimerFired
    ]
    return max(times) if times else None


class TimerScheduler:
    def __init__(self, clock: DurableClock, leases: LeaseKeeper, deliver: ControlSink) -> None:
        self._clock = clock
        self._leases = leases
        self._deliver = deliver
        self._heap: list[tuple[datetime, int, ControlMessage, MessageLease | None]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        clock.on_advance(self._wake.set)

    def __len__(self) -> int:
        return len(self._heap)

    def next_fire_time(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def schedule(self, message: ControlMessage, handle: MessageLease | None, fire_at: datetime) -> None:
        if handle is not None:
            self._leases.hold(handle)
        heapq.heappush(self._heap, (fire_at, next(self._order), message, handle))
        self._wake.set()

    def route(self, message: ControlMessage, handle: MessageLease | None) -> None:
        """Deliver a control message now, or hold it until its timers are due."""
        due = fire_time(message)
        if due is not None and due > self._clock.now():
            self.schedule(message, handle, due)
        else:
            self._deliver(message, handle)

    def drop(self, belongs: Callable[[str], bool]) -> list[MessageLease]:
        """Forget timers of instances another host now owns; return their message handles."""
        dropped = [entry for entry in self._heap if belongs(entry[2].instance_id)]
        self._heap = [entry for entry in self._heap if not belongs(entry[2].instance_id)]
        heapq.heapify(self._heap)
        return [handle for _, _, _, handle in dropped if handle is not None]

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="durable-timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            now = self._clock.now()
            while self._heap and self._heap[0][0] <= now:
                _, _, message, handle = heapq.heappop(self._heap)
                if handle is not None:
                    self._leases.release(handle)
                logger.debug("Timer due for instance '%s'", message.instance_id)
                self._deliver(message, handle)
            timeout = None
            if self._heap:
                timeout = max((self._heap[0][0] - now).total_seconds(), 0.0)
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
