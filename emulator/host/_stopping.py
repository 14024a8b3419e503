"""Stopping a host promptly, whatever its storage does.

Everything a host does counts only once it is checkpointed in storage, so a host that stops may
abandon what is in flight: the next owner of its partitions redoes it from the checkpoints, as it
does after a crash. Stopping therefore waits for in-flight work and for handing partitions and
leased messages back for a grace period at most (``--stop-grace-seconds`` or
``EMULATOR_STOP_GRACE_SECONDS``, 5 s by default). What storage has not answered by then is left
to expire: a partition's ownership lapses after 30 s at most, a message's lease after its
visibility timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger("emulator.host")

STOP_GRACE_ENV_VAR = "EMULATOR_STOP_GRACE_SECONDS"
DEFAULT_STOP_GRACE_SECONDS = 5.0
#: Steps that need no storage (closing clients and sockets) get this long even past the grace.
_LOCAL_STEP_SECONDS = 1.0
#: How long past the grace period a stopping process may take before it is ended regardless.
OVERDUE_SECONDS = 10.0


class InvalidStopGraceError(ValueError):
    """The grace period given is not a number of seconds."""


def parse_stop_grace(text: str, source: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InvalidStopGraceError(f"{source} must be a number of seconds (0 or more), not '{text}'.")
    return value


def stop_grace_from_environment() -> float:
    text = os.environ.get(STOP_GRACE_ENV_VAR, "").strip()
    return parse_stop_grace(text, STOP_GRACE_ENV_VAR) if text else DEFAULT_STOP_GRACE_SECONDS


class StopDeadline:
    """Runs the steps of a stop, each cut off when the grace period ends."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self._end = time.monotonic() + grace_seconds
        #: What was abandoned because the grace period ended first.
        self.cut_off: list[str] = []

    async def run(self, what: str, step: Awaitable[Any], *, local: bool = False) -> None:
        """Await ``step`` until the deadline (``local`` steps: at least a second more)."""
        remaining = self._end - time.monotonic()
        if local:
            remaining = max(remaining, _LOCAL_STEP_SECONDS)
        try:
            await asyncio.wait_for(step, max(remaining, 0.0))
        except asyncio.TimeoutError:
            self.cut_off.append(what)
        except Exception as exc:  # stopping goes on: the next host redoes what this left
            logger.debug("Stopping: %s failed (%s)", what, exc)

    def report(self) -> None:
        if self.cut_off:
            logger.warning(
                "The host stopped without %s: not done within the %g s grace period (%s); the next "
                "host takes the work over from its last checkpoints",
                " and ".join(dict.fromkeys(self.cut_off)),  # each step named once
                self.grace_seconds,
                STOP_GRACE_ENV_VAR,
            )


def exit_when_overdue(after_seconds: float, clean_up: Callable[[], None]) -> None:
    """End the process ``after_seconds`` from now unless it has ended by itself by then.

    The last resort of a stop: code of the app still running on a thread (an HTTP function
    waiting on storage, say) cannot be interrupted, and the interpreter waits for such threads.
    """

    def watch() -> None:
        time.sleep(after_seconds)
        logger.warning("The host has not exited %g s after it began to stop; exiting now", after_seconds)
        with contextlib.suppress(Exception):
            clean_up()
        os._exit(0)

    threading.Thread(target=watch, name="stop-watchdog", daemon=True).start()
