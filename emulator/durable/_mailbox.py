"""One instance's mailbox and the one task that works it off, for orchestrations and entities.

Each instance is handled by one actor at a time (docs/durability.md invariant 7 within a host):
what arrives while a step runs waits in ``pending`` and goes into the next step together, so a
fan-in of many completions costs few steps. A step that fails is retried with a backoff (the
step itself puts back what it took); the task ends when nothing is left to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")


@dataclass
class Mailbox(Generic[Item]):
    """What waits for one instance, and the task working it off (None when idle)."""

    instance_id: str
    pending: list[Item] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    #: What the step under way took (out of ``pending`` while it runs).
    in_flight: list[Item] = field(default_factory=list)
    #: Forgotten by its dispatcher (purged, or its partition lost): never kept again.
    dropped: bool = False


Box = TypeVar("Box", bound=Mailbox)

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0


class MailboxLoop(Generic[Box]):
    """Runs ``step`` on a mailbox while ``has_work`` says so, one task per mailbox.

    ``kind`` names the tasks (``kind:instance``); ``label`` begins the warning of a failed step.

    ``step`` returns False to stop early (only work that must wait is left). ``on_error`` is
    told of a failed step and returns whether to back off before the next (False: retry at
    once, e.g. after a conflict that a reload resolves). ``on_idle`` runs when the task ends.
    """

    def __init__(
        self,
        *,
        kind: str,
        label: str,
        logger: logging.Logger,
        step: Callable[[Box], Awaitable[bool]],
        has_work: Callable[[Box], bool],
        on_error: Callable[[Box, Exception], bool],
        on_idle: Callable[[Box], None],
    ) -> None:
        self._kind = kind
        self._label = label
        self._logger = logger
        self._step = step
        self._has_work = has_work
        self._on_error = on_error
        self._on_idle = on_idle

    def wake(self, mailbox: Box) -> None:
        """Make sure a task works the mailbox off (nothing to do if one already does)."""
        if mailbox.task is None and self._has_work(mailbox):
            mailbox.task = asyncio.get_running_loop().create_task(
                self._run(mailbox), name=f"{self._kind}:{mailbox.instance_id}"
            )

    async def _run(self, mailbox: Box) -> None:
        backoff = FIRST_BACKOFF
        try:
            while self._has_work(mailbox):
                try:
                    progressed = await self._step(mailbox)
                except Exception as exc:
                    if not self._on_error(mailbox, exc):
                        continue
                    # Storage went away or similar: what the step took is pending again; retry.
                    self._logger.warning(
                        "%s '%s' could not be completed (%s: %s); retrying in %.1f s",
                        self._label,
                        mailbox.instance_id,
                        type(exc).__name__,
                        exc,
                        backoff,
                    )
                    self._logger.debug("%s failure detail", self._kind, exc_info=True)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                backoff = FIRST_BACKOFF
                if not progressed:
                    break
        finally:
            mailbox.task = None
            self._on_idle(mailbox)
