"""The threads that run the app's synchronous code: results, errors, limits and shutdown."""

from __future__ import annotations

import asyncio
import functools
import threading

import pytest

from emulator.functions._threads import WorkerThreads


async def test_every_call_returns_its_own_result_on_the_loop() -> None:
    threads = WorkerThreads(4, "test")

    def square(n: int) -> int:
        return n * n

    try:
        results = await asyncio.gather(*(threads.run(functools.partial(square, n)) for n in range(500)))
    finally:
        threads.shutdown()
    assert results == [n * n for n in range(500)]


async def test_an_exception_reaches_the_caller_and_the_threads_keep_serving() -> None:
    threads = WorkerThreads(2, "test")

    def fail() -> None:
        raise ValueError("bad input")

    def stop() -> None:
        raise StopIteration

    try:
        with pytest.raises(ValueError, match="bad input"):
            await threads.run(fail)
        # A future cannot carry StopIteration: it arrives as a RuntimeError.
        with pytest.raises(RuntimeError, match="StopIteration"):
            await threads.run(stop)
        assert await threads.run(lambda: "still here") == "still here"
    finally:
        threads.shutdown()


async def test_calls_run_in_parallel_up_to_the_limit_and_no_further() -> None:
    threads = WorkerThreads(3, "test")
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()

    def call() -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(5)
        with lock:
            running -= 1
        return threading.current_thread().name

    try:
        futures = [threads.run(call) for _ in range(10)]
        await asyncio.sleep(0.2)
        release.set()
        names = await asyncio.gather(*futures)
    finally:
        threads.shutdown()
    assert peak == 3
    assert set(names) == {"test_0", "test_1", "test_2"}


async def test_shutdown_cancels_the_calls_still_waiting() -> None:
    threads = WorkerThreads(1, "test")
    started, release = threading.Event(), threading.Event()

    def block() -> str:
        started.set()
        release.wait(5)
        return "done"

    running = threads.run(block)
    waiting = threads.run(lambda: "never")
    assert await asyncio.to_thread(started.wait, 5)
    threads.shutdown()
    release.set()
    assert waiting.cancelled()
    assert await running == "done"
    with pytest.raises(RuntimeError, match="shut down"):
        threads.run(lambda: None)
