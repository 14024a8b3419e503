"""Sustained load: ``FanOut(10)`` orchestrations started at a steady rate for minutes.

A developer's task hub grows all day, and so does every test hub that is not purged; this drives
one host the way a load script would (an HTTP start at a fixed rate, each instance's status
followed until it ends) and reports, minute by minute, what completed, how long each took, the
host's memory and the CPU the host and Azurite used. Starts are open-loop: a host that falls
behind does not slow the starts down, so a backlog shows as one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from _common import Client, cpu_seconds, percentile, rss_mb

#: Orchestrations started a second.
RATE = 20.0
#: Activities per orchestration, and its expected output (the sum of 0..WIDTH-1).
WIDTH = 10
EXPECTED = WIDTH * (WIDTH - 1) // 2
WINDOW_S = 60.0


@dataclass
class Window:
    """One minute of the run (or the whole of a shorter run)."""

    seconds: float = WINDOW_S
    started: int = 0
    completed: int = 0
    latencies: list[float] = field(default_factory=list)
    rss_mb: float | None = None
    host_cpu_s: float | None = None
    azurite_cpu_s: float | None = None

    def figures(self, index: int, instances: int) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "minute": index + 1,
            "started": self.started,
            "completed": self.completed,
            "completed_per_s": self.completed / self.seconds,
            "p50_ms": 1000 * percentile(lat, 0.5) if lat else None,
            "p99_ms": 1000 * percentile(lat, 0.99) if lat else None,
            "rss_mb": self.rss_mb,
            "host_cpu_s": self.host_cpu_s,
            "azurite_cpu_s": self.azurite_cpu_s,
            "instances_in_hub": instances,
        }


async def _follow(client: Client, status_url: str, started: float) -> tuple[float, dict[str, Any]]:
    """Poll until the instance ends; the pause grows with the wait (a tenth, 20 ms to 0.5 s), so a
    backlog of thousands of instances does not become a flood of status queries."""
    while True:
        code, body = await client.status(status_url)
        elapsed = time.perf_counter() - started
        if code != 202:
            return elapsed, body
        await asyncio.sleep(min(max(elapsed / 10.0, 0.02), 0.5))


async def drive(
    base_url: str, host_pid: int, azurite_pid: int | None, rate: float, minutes: float, say: Any
) -> dict[str, Any]:
    """Start ``rate`` instances a second for ``minutes``; the per-minute figures and the totals."""
    windows: list[Window] = []
    failures: list[str] = []
    begin = time.perf_counter()
    duration = minutes * 60.0
    span = min(WINDOW_S, duration)
    spans = max(1, round(duration / span))
    count = int(rate * duration)

    def window_at(moment: float) -> Window:
        index = int((moment - begin) // span)
        while len(windows) <= index:
            windows.append(Window(span))
        return windows[index]

    async with Client(base_url, limit=0) as client:

        async def one() -> None:
            started = time.perf_counter()
            window_at(started).started += 1
            try:
                url = await client.start("FanOut", WIDTH)
                seconds, body = await _follow(client, url, started)
            except Exception as exc:  # a failed start or status query is a figure, not a crash
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            if body.get("runtimeStatus") != "Completed" or body.get("output") != EXPECTED:
                state, output = body.get("runtimeStatus"), body.get("output")
                failures.append(f"{body.get('instanceId')}: {state} {output!r}")
                return
            if started - begin < duration:
                done = window_at(time.perf_counter())
                done.completed += 1
                done.latencies.append(seconds)

        async def sample() -> None:
            """Memory and CPU at each minute's end, and a progress line."""
            cpu = (cpu_seconds(host_pid), cpu_seconds(azurite_pid) if azurite_pid else None)
            for index in range(spans):
                await asyncio.sleep(max(0.0, begin + (index + 1) * span - time.perf_counter()))
                now_cpu = (cpu_seconds(host_pid), cpu_seconds(azurite_pid) if azurite_pid else None)
                window = window_at(begin + index * span)
                window.rss_mb = rss_mb(host_pid)
                if cpu[0] is not None and now_cpu[0] is not None:
                    window.host_cpu_s = now_cpu[0] - cpu[0]
                if cpu[1] is not None and now_cpu[1] is not None:
                    window.azurite_cpu_s = now_cpu[1] - cpu[1]
                cpu = now_cpu
                f = window.figures(index, sum(w.started for w in windows))
                say(
                    f"    minute {index + 1}: {f['completed_per_s']:.1f} completed/s, "
                    f"p50 {f['p50_ms'] or 0:.0f} ms, p99 {f['p99_ms'] or 0:.0f} ms, "
                    f"host RSS {f['rss_mb'] or 0:.0f} MB, CPU host {window.host_cpu_s or 0:.0f} s / "
                    f"Azurite {window.azurite_cpu_s or 0:.0f} s, {f['instances_in_hub']:,} instances"
                )

        sampler = asyncio.create_task(sample())
        tasks = set()
        for number in range(count):
            await asyncio.sleep(max(0.0, begin + number / rate - time.perf_counter()))
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await sampler
        backlog = len(tasks)
        # What was started still ends (or not) within a minute; only its failures count.
        if tasks:
            await asyncio.wait(tasks, timeout=60.0)
        for task in tasks:
            task.cancel()
    full = windows[:spans]
    return {
        "rate": rate,
        "minutes": minutes,
        "started": count,
        "completed": sum(w.completed for w in full),
        "backlog_at_end": backlog,
        "failures": failures[:10],
        "failure_count": len(failures),
        "windows": [w.figures(i, sum(x.started for x in windows[: i + 1])) for i, w in enumerate(full)],
    }


def verdict(result: dict[str, Any]) -> tuple[bool, str]:
    """Completions keep up in every minute after the first, p99 stays within 2x of the second
    minute's, and the host's memory stays within 10 % of its size after the first minute."""
    windows = result["windows"]
    rate = result["rate"]
    settled = windows[1:] or windows
    slowest = min(w["completed_per_s"] for w in settled)
    keeps_up = slowest >= 0.95 * rate and result["backlog_at_end"] <= 5 * rate
    p99s = [w["p99_ms"] for w in settled if w["p99_ms"] is not None]
    steady = bool(p99s) and max(p99s) <= 2 * p99s[0]
    rss = [w["rss_mb"] for w in windows if w["rss_mb"] is not None]
    flat = len(rss) < 2 or rss[-1] <= 1.10 * rss[0]
    ok = keeps_up and steady and flat and not result["failure_count"]
    note = (
        f"slowest minute {slowest:.1f}/s, backlog {result['backlog_at_end']}, "
        f"p99 {p99s[0]:.0f} -> {p99s[-1]:.0f} ms, RSS {rss[0]:.0f} -> {rss[-1]:.0f} MB"
        if p99s and rss
        else "no completions"
    )
    if result["failure_count"]:
        note += f", {result['failure_count']} failed"
    return ok, note
