"""Storage outages: client operations retried for a bounded time, and the host's view of storage.

Azurite can stall or restart under a running host. Client operations (starts, queries, events,
purges, from HTTP, the SDK client or the command line) then retry each storage call on transient
errors for up to ``CLIENT_RETRY_SECONDS``, like the Azure SDKs' retry policies, so a short outage
only delays them; a request that does not answer within ``ATTEMPT_SECONDS`` counts as failed and is
sent again. What still fails raises :class:`StorageUnavailableError`, which the HTTP API answers
with 503 and a plain message. :class:`StorageHealth` logs one line when storage stops answering and
one when it answers again, and the host status reports the outage meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from emulator.taskhub._interface import TaskHub

logger = logging.getLogger("emulator.storage")

T = TypeVar("T")

#: How long a client operation keeps retrying one storage call before it gives up.
CLIENT_RETRY_SECONDS = 20.0
#: How long one storage request may go unanswered before it is sent again.
ATTEMPT_SECONDS = 10.0
_FIRST_BACKOFF_SECONDS = 0.25
_LONGEST_BACKOFF_SECONDS = 2.0


class StorageUnavailableError(Exception):
    """Storage did not answer a client operation within its retry time."""


class StorageHealth:
    """Whether the task hub's storage answers, as the host last found out."""

    def __init__(self, task_hub: TaskHub) -> None:
        self.endpoint = task_hub.endpoint
        #: Which failures are transient is the task hub's business.
        self._is_transient = task_hub.is_transient
        self._down = False

    @property
    def not_answering(self) -> str | None:
        """The one-line description of an outage under way, else None."""
        return f"storage at {self.endpoint} is not answering; retrying" if self._down else None

    def failed(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            logger.warning("%s (%s)", self.not_answering, _reason(exc))

    def answered(self) -> None:
        if self._down:
            self._down = False
            logger.info("storage at %s is answering again", self.endpoint)

    async def retry(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` until it succeeds, fails for a reason of its own, or time is up."""
        deadline = time.monotonic() + CLIENT_RETRY_SECONDS
        backoff = _FIRST_BACKOFF_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            try:
                result = await asyncio.wait_for(operation(), min(remaining, ATTEMPT_SECONDS))
            except Exception as exc:
                if not self._is_transient(exc):
                    raise
                self.failed(exc)
                if time.monotonic() + backoff >= deadline:
                    raise StorageUnavailableError(
                        f"The storage account at {self.endpoint} is not answering "
                        f"(retried for {CLIENT_RETRY_SECONDS:g} s); try again later."
                    ) from None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _LONGEST_BACKOFF_SECONDS)
                continue
            self.answered()
            return result


class _RetryingTaskHub:
    """A task hub whose every coroutine method goes through :meth:`StorageHealth.retry`."""

    def __init__(self, storage: TaskHub, health: StorageHealth) -> None:
        self._storage = storage
        self._health = health

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._storage, name)
        if not inspect.iscoroutinefunction(value):
            return value

        @functools.wraps(value)
        async def retried(*args: Any, **kwargs: Any) -> Any:
            return await self._health.retry(lambda: value(*args, **kwargs))

        return retried


def retrying(task_hub: TaskHub, health: StorageHealth) -> TaskHub:
    """``task_hub`` as client operations use it: each call retried through a short outage."""
    return cast("TaskHub", _RetryingTaskHub(task_hub, health))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {ATTEMPT_SECONDS:g} s"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
