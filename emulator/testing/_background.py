"""Run emulator hosts on a background event loop, for synchronous test code.

All background hosts of a process share one event loop thread, as all functions of a Python
worker share one loop: the SDK's durable client keeps a process-wide aiohttp session that only
works on the loop that created it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

from emulator.durable._worker import close_client_sessions
from emulator.host._host import EmulatorHost, HostOptions

T = TypeVar("T")


class _WorkerLoop:
    """The process's one background event loop, started on first use."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None
    _hosts = 0

    @classmethod
    def acquire(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="emulator-worker-loop", daemon=True).start()
                cls._loop = loop
            cls._hosts += 1
            return cls._loop

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._hosts -= 1
            last = cls._hosts == 0
            loop = cls._loop
        if last and loop is not None:
            # The SDK never closes its shared client session; close it with the last host.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close_client_sessions(), loop).result(10)


class BackgroundHost:
    """A started :class:`EmulatorHost` served from the background loop until :meth:`stop`."""

    def __init__(self, options: HostOptions, start_timeout: float = 60.0) -> None:
        self.host = EmulatorHost(options)
        self._start_timeout = start_timeout
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        return self.host.base_url

    @property
    def running(self) -> bool:
        return self._loop is not None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the host's loop (e.g. to call storage directly) and return its result."""
        assert self._loop is not None, "the host is not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def advance_time(self, delta: timedelta) -> None:
        """Move the host's durable time forward; timers due by then fire at once."""
        assert self._loop is not None, "the host is not started"
        self._loop.call_soon_threadsafe(self.host.advance_time, delta)

    def start(self) -> BackgroundHost:
        self._loop = _WorkerLoop.acquire()
        try:
            self.run(self.host.start(), self._start_timeout)
        except concurrent.futures.TimeoutError:
            self._shutdown()
            raise TimeoutError(f"The emulator host did not start within {self._start_timeout} s") from None
        except BaseException:
            self._shutdown()
            raise
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._shutdown()

    def _shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.host.stop(), 60)
        self._loop = None
        _WorkerLoop.release()

    def __enter__(self) -> BackgroundHost:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
