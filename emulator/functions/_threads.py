"""Threads for the app's synchronous code, cheaper per call than ``loop.run_in_executor``.

A fan-out hands thousands of tiny calls (activities, orchestrator steps) to threads. For each call
``run_in_executor`` builds a concurrent Future with its own Condition, wraps it in an asyncio Future
and writes once to the event loop's wake-up pipe. Here calls wait in one queue, each thread takes the
next one, and finished calls go back to the loop in batches: one wake-up for all the calls that
finish while the loop is busy.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple["asyncio.Future[Any]", Callable[[], Any]]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


class WorkerThreads:
    """Up to ``max_workers`` threads, started as calls need them, that run calls from one loop."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max_workers = max(1, max_workers)
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._finished: collections.deque[_Outcome] = collections.deque()
        self._lock = threading.Lock()
        self._wake_up_sent = False
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Calls handed over and not yet delivered (counted on the loop's thread only).
        self._outstanding = 0
        self._closed = False

    def run(self, function: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``function`` on one of the threads; the future completes on the calling loop."""
        if self._closed:
            raise RuntimeError(f"the {self._name} threads are shut down")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((future, function))
        self._outstanding += 1
        if self._outstanding > len(self._threads) and len(self._threads) < self._max_workers:
            thread = threading.Thread(
                target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return future

    def shutdown(self) -> None:
        """Cancel the calls still waiting; the threads end after their current call."""
        self._closed = True
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            if call is not None:
                call[0].cancel()
        for _ in self._threads:
            self._calls.put(None)

    def _work(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            future, function = call
            try:
                outcome: _Outcome = (future, function(), None)
            except StopIteration as exc:  # a future cannot carry it (it would end a coroutine)
                outcome = (future, None, RuntimeError(f"StopIteration: {exc}"))
            except BaseException as exc:  # the caller decides, as with concurrent.futures
                outcome = (future, None, exc)
            self._finished.append(outcome)
            with self._lock:
                if self._wake_up_sent:
                    continue  # the pending delivery takes this outcome too
                self._wake_up_sent = True
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:
                return  # the loop is closed: nobody waits for the outcome

    def _deliver(self) -> None:
        # Reset the flag before draining: an outcome appended after this either is drained
        # below or sends a wake-up of its own.
        with self._lock:
            self._wake_up_sent = False
        while self._finished:
            future, result, error = self._finished.popleft()
            self._outstanding -= 1
            if future.cancelled():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
