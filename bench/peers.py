"""One peer scenario in this process: ``python bench/peers.py SYSTEM SHAPE N``.

Runs in the peers' environment (``bench/.venv-peers``, created by ``bench/run.py``), never in the
emulator's. SYSTEM is ``durabletask`` (its in-process ``InMemoryOrchestrationBackend``, reached by
its worker and client over loopback gRPC) or ``dbos`` (DBOS on a fresh SQLite file); SHAPE is
``fanout`` (N no-op activities in parallel, then fan-in) or ``chain`` (N no-op activities one
after the other). The clock runs from scheduling the workflow to holding its result, after the
runtime has started, like the emulator's HTTP start to ``Completed``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

TIMEOUT_SECONDS = 900.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_durabletask(shape: str, count: int, timeout: float) -> dict[str, Any]:
    from durabletask import client, task, worker
    from durabletask.testing import InMemoryOrchestrationBackend

    def noop(ctx: task.ActivityContext, value: int) -> int:
        return value

    def fan_out(ctx: task.OrchestrationContext, n: int) -> Any:
        results = yield task.when_all([ctx.call_activity(noop, input=i) for i in range(n)])
        return sum(results)

    def chain(ctx: task.OrchestrationContext, n: int) -> Any:
        total = 0
        for i in range(n):
            total += yield ctx.call_activity(noop, input=i)
        return total

    port = _free_port()
    # The default history cap (10,000 events) is below what a 10,000-way fan-out records.
    backend = InMemoryOrchestrationBackend(max_history_size=10 * count + 100, port=port)
    backend.start()
    address = f"localhost:{port}"
    runner = worker.TaskHubGrpcWorker(host_address=address)
    runner.add_orchestrator(fan_out)
    runner.add_orchestrator(chain)
    runner.add_activity(noop)
    runner.start()
    hub = client.TaskHubGrpcClient(host_address=address)
    try:
        orchestrator = fan_out if shape == "fanout" else chain
        started = time.perf_counter()
        instance_id = hub.schedule_new_orchestration(orchestrator, input=count)
        state = hub.wait_for_orchestration_completion(instance_id, timeout=int(timeout))
        seconds = time.perf_counter() - started
        status = state.runtime_status.name if state is not None else "Unknown"
        output = json.loads(state.serialized_output) if state and state.serialized_output else None
    finally:
        runner.stop()
        backend.stop()
    return {"seconds": seconds, "status": status, "output": output}


def run_dbos(shape: str, count: int, timeout: float) -> dict[str, Any]:
    from dbos import DBOS, DBOSConfig

    folder = Path(tempfile.mkdtemp(prefix="bench-dbos-"))
    config: DBOSConfig = {
        "name": "bench",
        "system_database_url": f"sqlite:///{folder / 'dbos.sqlite'}",
        "log_level": "WARNING",
    }
    DBOS(config=config)

    @DBOS.step()
    async def noop(value: int) -> int:
        return value

    @DBOS.workflow()
    async def fan_out(n: int) -> int:
        results = await asyncio.gather(*(noop(i) for i in range(n)))
        return sum(results)

    @DBOS.workflow()
    async def chain(n: int) -> int:
        total = 0
        for i in range(n):
            total += await noop(i)
        return total

    async def timed() -> tuple[float, Any]:
        workflow = fan_out if shape == "fanout" else chain
        started = time.perf_counter()
        handle = await DBOS.start_workflow_async(workflow, count)
        output = await asyncio.wait_for(handle.get_result(), timeout)
        return time.perf_counter() - started, output

    DBOS.launch()
    try:
        seconds, output = asyncio.run(timed())
    finally:
        DBOS.destroy()
    return {"seconds": seconds, "status": "Completed", "output": output}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("system", choices=["durabletask", "dbos"])
    parser.add_argument("shape", choices=["fanout", "chain"])
    parser.add_argument("count", type=int)
    parser.add_argument("--timeout", type=float, default=TIMEOUT_SECONDS)
    args = parser.parse_args(argv)
    os.environ.setdefault("DBOS__CLOUD", "false")
    runners = {"durabletask": run_durabletask, "dbos": run_dbos}
    figures = runners[args.system](args.shape, args.count, args.timeout)
    expected = args.count * (args.count - 1) // 2
    figures.update(
        system=args.system,
        version=metadata.version(args.system),
        shape=args.shape,
        count=args.count,
        correct=figures.get("output") == expected,
        peak_rss_mb=_peak_rss_mb(),
    )
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
