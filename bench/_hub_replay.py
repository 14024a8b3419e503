"""The ``hub-replay`` scenario: ``replay --task-hub`` over 1,000 running instances of 100 events.

The task hub is written straight into a fresh Azurite (no host runs): Chain instances of the
bench app each stopped after 24 of their activities, which makes 100 history events apiece.
The clock runs around ``python -m emulator replay --task-hub ...`` as CI would run it, app
import included; the command's own figure (reading and replaying, without the import) is shown
beside it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

from _common import BENCH_APP, REPO_ROOT, azurite

from emulator.durable import _history as h
from emulator.durable._history import HistoryEvent, OrchestrationStatus
from emulator.taskhub._interface import InstanceRecord, InstanceUpdate
from emulator.taskhub.azure import open_task_hub

HUB = "BenchReplayHub"
#: Activities done per instance: 4 events for the first episode and 4 for each completion.
DONE_ACTIVITIES = 24
_WRITERS = 32


def chain_history(instance_id: str, execution_id: str) -> list[HistoryEvent]:
    """The history of ``Chain(1000)`` waiting for its 25th activity: 100 events."""
    moment = h.utcnow() - timedelta(hours=1)
    events = [
        h.orchestrator_started(moment),
        h.execution_started(
            instance_id=instance_id,
            execution_id=execution_id,
            name="Chain",
            input_text=json.dumps("1000"),
            timestamp=moment,
        ),
        h.task_scheduled(0, "Noop", moment, "0"),
        h.orchestrator_completed(moment),
    ]
    for done in range(DONE_ACTIVITIES):
        moment += timedelta(milliseconds=20)
        events += [
            h.orchestrator_started(moment),
            h.task_completed(done, str(done), moment),
            h.task_scheduled(done + 1, "Noop", moment, str(done + 1)),
            h.orchestrator_completed(moment),
        ]
    return events


async def write_hub(connection_string: str, count: int) -> None:
    """``count`` running Chain instances, written as the emulator's host writes them."""
    hub = open_task_hub(connection_string, HUB)
    await hub.create()
    gate = asyncio.Semaphore(_WRITERS)

    async def write(number: int) -> None:
        instance_id = f"chain-{number:05d}"
        execution_id = h.new_execution_id()
        now = h.utcnow()
        record = InstanceRecord(
            instance_id, "Chain", OrchestrationStatus.Pending, execution_id, now, now, input="1000"
        )
        async with gate:
            await hub.write_pending_instance(record, None)
            await hub.append_history(
                instance_id, execution_id, 0, chain_history(instance_id, execution_id), None
            )
            await hub.update_instance(
                instance_id, InstanceUpdate(now, runtime_status=OrchestrationStatus.Running)
            )

    try:
        await asyncio.gather(*(write(n) for n in range(count)))
    finally:
        await hub.close()


def measure(count: int, timeout: float) -> dict[str, Any]:
    """Write the hub, then time the check; raises when it does not pass every instance."""
    with azurite("hub-replay") as server:
        started = time.perf_counter()
        asyncio.run(write_hub(server.connection_string, count))
        written = time.perf_counter() - started
        command = [sys.executable, "-m", "emulator", "replay", "--task-hub", HUB]
        command += ["--script-root", str(BENCH_APP), "--connection", server.connection_string, "--json"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"replay --task-hub exited {done.returncode}: {(done.stderr or done.stdout)[-300:]}"
        )
    result = json.loads(done.stdout)
    if result["counts"]["ok"] != count:
        raise RuntimeError(f"expected {count} instances OK, got {result['counts']}")
    return {
        "instances": count,
        "events_per_instance": len(chain_history("x", "y")),
        "seconds": seconds,
        "check_seconds": result["seconds"],
        "write_seconds": written,
    }
