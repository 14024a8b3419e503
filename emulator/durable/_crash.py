"""A test-only crash switch: kill the host with SIGKILL at a chosen point of its checkpoint order.

Set ``DURABLE_EMULATOR_CRASH_AT=<point>[:<n>]`` in the host's environment to die the n-th time
(default: the first) the point is reached. Crash-recovery tests use it to prove that every gap
between two durable writes is survivable. Unset, it costs one dictionary lookup per call.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

ENV_VAR = "DURABLE_EMULATOR_CRASH_AT"

#: The gaps in the orchestration and activity checkpoint order where a crash can land.
POINTS = {
    "start-after-pending": "a start is recorded in its Pending row only, no episode has run",
    "episode-after-send": "an episode sent its work, its history is not written yet",
    "history-between-batches": "one of several history transactions of an episode is written",
    "episode-after-history": "an episode's history is written, the Instances row is not updated",
    "episode-after-instance": "the Instances row is updated, the consumed messages are not deleted",
    "activity-after-run": "an activity ran, its result is not handed to its orchestration yet",
    "activity-after-handoff": "an activity's result waits in memory for the episode that records it",
}

_lock = threading.Lock()
_hits: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return None
    point, _, count = raw.partition(":")
    if point not in POINTS:
        raise ValueError(f"{ENV_VAR}={raw!r}: unknown crash point; known points: {', '.join(POINTS)}")
    return point, int(count or 1)


def crash_point(point: str) -> None:
    """Die here, now, without any clean-up, if the switch names this point."""
    target = _target()
    if target is None or target[0] != point:
        return
    with _lock:
        _hits[point] = _hits.get(point, 0) + 1
        if _hits[point] != target[1]:
            return
    sys.stderr.write(f"Crash switch: killing the host at '{point}' ({POINTS[point]})\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
