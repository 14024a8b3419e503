"""Invocation records and the host's per-invocation log lines.

Every function the host runs (HTTP trigger, orchestrator episode, activity) goes through
:func:`InvocationLog.invoke`, so users see the same "Executing/Executed" lines as under
``func start`` and tests can read when each invocation really started and ended.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

logger = logging.getLogger("emulator.functions")
#: Invocation ids only tell invocations apart: no system call for randomness per invocation.
_ids = random.Random()


@dataclass(slots=True)
class InvocationRecord:
    """One function invocation as the host saw it."""

    function_name: str
    invocation_id: str
    started: datetime
    ended: datetime | None = None
    succeeded: bool | None = None
    instance_id: str | None = None
    error: str | None = None
    reason: str = field(default="", repr=False)

    @property
    def duration_ms(self) -> float | None:
        if self.ended is None:
            return None
        return (self.ended - self.started).total_seconds() * 1000.0


class InvocationLog:
    """A bounded, thread-safe record of recent invocations (activities run in threads).

    Bounded at 10,000: each record is about 300 bytes, and at 100,000 the log alone was a
    tenth of a host's memory after a 100,000-way fan-out (or a day of steady load).
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._records: collections.deque[InvocationRecord] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()

    def records(self, function_name: str | None = None) -> list[InvocationRecord]:
        with self._lock:
            items = list(self._records)
        if function_name is None:
            return items
        wanted = function_name.lower()
        return [r for r in items if r.function_name.lower() == wanted]

    @contextlib.contextmanager
    def invoke(
        self, function_name: str, *, reason: str, instance_id: str | None = None, quiet: bool = False
    ) -> Iterator[InvocationRecord]:
        """Record one invocation; log it like the Functions host unless ``quiet``.

        ``quiet`` is for orchestrator replays, which the real host does not log as new work.
        """
        record = InvocationRecord(
            function_name=function_name,
            invocation_id=str(uuid.UUID(int=_ids.getrandbits(128), version=4)),
            started=datetime.now(timezone.utc),
            instance_id=instance_id,
            reason=reason,
        )
        level = logging.DEBUG if quiet else logging.INFO
        logger.log(
            level,
            "Executing 'Functions.%s' (Reason='%s', Id=%s)%s",
            function_name,
            reason,
            record.invocation_id,
            f" instance {instance_id}" if instance_id else "",
        )
        t0 = time.perf_counter()
        try:
            yield record
        except BaseException as exc:
            record.succeeded = False
            record.error = f"{type(exc).__name__}: {exc}"
            raise
        else:
            if record.succeeded is None:
                record.succeeded = True
        finally:
            record.ended = datetime.now(timezone.utc)
            with self._lock:
                self._records.append(record)
            outcome = "Succeeded" if record.succeeded else "Failed"
            logger.log(
                level if record.succeeded else logging.ERROR,
                "Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)%s",
                function_name,
                outcome,
                record.invocation_id,
                round((time.perf_counter() - t0) * 1000),
                f": {record.error}" if record.error else "",
            )
