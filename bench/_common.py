"""Processes and HTTP for the benchmark: Azurite, emulator hosts in child processes, the client side.

Every emulator figure comes from a host started as a user starts it (``python -m emulator start``)
in its own process, so its memory is its own; Azurite runs on disk, on free ports, in a fresh
folder per scenario so no scenario inherits another's queues or tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from emulator.host._azurite import AzuriteServer, free_port

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
BENCH_APP = BENCH_DIR / "apps" / "bench_app"
RESULTS_DIR = BENCH_DIR / "results"


class ScenarioTimeout(Exception):
    """A run did not finish within its time limit; the message says where it stood."""


@dataclass
class Measurement:
    """One timed run."""

    seconds: float
    activities: int = 0
    peak_rss_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float | None:
        return self.activities / self.seconds if self.activities and self.seconds > 0 else None


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 200 values is the 198th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


# -- memory ---------------------------------------------------------------------------------


def _status_field(pid: int, name: str) -> float | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/PID/status, in MB (None where there is no /proc)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024.0
    return None


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size so far (the kernel's high-water mark)."""
    return _status_field(pid, "VmHWM")


def rss_mb(pid: int) -> float | None:
    return _status_field(pid, "VmRSS")


def cpu_seconds(pid: int | tuple[int, int]) -> float | None:
    """User + system CPU time the process (or ``(pid, tid)``: one thread) has used so far.

    None where there is no /proc.
    """
    path = f"/proc/{pid}/stat" if isinstance(pid, int) else f"/proc/{pid[0]}/task/{pid[1]}/stat"
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by some processes between :meth:`start` and :meth:`stop`."""

    def __init__(self, **pids: int | tuple[int, int]) -> None:
        self.pids = pids
        self._before: dict[str, float | None] = {}
        self.used: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        for name, pid in self.pids.items():
            before, after = self._before.get(name), cpu_seconds(pid)
            if before is not None and after is not None:
                self.used[name] = after - before
        return self.used


# -- Azurite --------------------------------------------------------------------------------


@contextlib.contextmanager
def azurite(label: str, ordered_lookups: bool = True) -> Iterator[AzuriteServer]:
    """A fresh Azurite with its data on disk in a temporary folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=f"durable-bench-{label}-"))
    server = AzuriteServer.start(folder / "azurite", ordered_lookups=ordered_lookups)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


# -- the emulator host in a child process ---------------------------------------------------


class HostProcess:
    """``python -m emulator start`` for one app, its storage set through ``AzureWebJobsStorage``."""

    def __init__(
        self,
        script_root: Path,
        connection_string: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.script_root = script_root
        self.connection_string = connection_string
        self.log_path = log_path
        self.port = free_port()
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        #: The Azurite process serving this host, for CPU figures.
        self.storage_pid: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def launch(self) -> None:
        """Start the process and return at once (``started_at`` is the moment before ``Popen``)."""
        env = {**os.environ, **self.extra_env, "AzureWebJobsStorage": self.connection_string}
        command = [sys.executable, "-m", "emulator", "start", "--script-root", str(self.script_root)]
        command += ["--port", str(self.port)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.started_at = time.perf_counter()
            # Same process group as the benchmark: Ctrl-C or a signal to the group reaches the host too.
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_serving(self, path: str, timeout: float = 60.0, want_status: int | None = 200) -> float:
        """Poll ``path`` until it answers (with ``want_status`` if given); seconds since launch."""
        import http.client

        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", path)
                status = connection.getresponse().status
                if want_status is None or status == want_status:
                    return time.perf_counter() - self.started_at
            except OSError:
                pass
            finally:
                connection.close()
            if time.monotonic() > deadline:
                raise ScenarioTimeout(f"the host did not answer {path} within {timeout:g} s")
            time.sleep(0.002)

    def check_alive(self) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise RuntimeError(f"the host exited with code {code}; log {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (the host shuts down cleanly), then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> HostProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the client side ------------------------------------------------------------------------


class Client:
    """What a user's script does: POST to the app's HTTP starter, follow ``statusQueryGetUri``."""

    def __init__(self, base_url: str, limit: int = 64) -> None:
        """``limit``: most connections open at once (0: no limit, for starting many at once)."""
        self.base_url = base_url
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(limit=self.limit)
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def start(self, orchestrator: str, body: Any = None) -> str:
        """Start an instance through the app's HTTP starter; return its status URL."""
        url = f"{self.base_url}/api/orchestrators/{orchestrator}"
        async with self.session.post(url, json=body) as reply:
            payload = await reply.json(content_type=None)
            if reply.status != 202:
                raise RuntimeError(f"starting {orchestrator} answered {reply.status}: {payload}")
        return str(payload["statusQueryGetUri"])

    async def status(self, status_url: str) -> tuple[int, dict[str, Any]]:
        async with self.session.get(status_url) as reply:
            return reply.status, await reply.json(content_type=None)

    async def wait_done(
        self, status_url: str, started: float, timeout: float, min_interval: float = 0.005
    ) -> tuple[float, dict[str, Any]]:
        """Poll until the instance leaves the running states; (seconds since ``started``, status).

        The pause between polls grows with the time already waited (1 % of it, between
        ``min_interval`` and 100 ms), so the overshoot stays small for short and long runs alike.
        """
        while True:
            code, body = await self.status(status_url)
            now = time.perf_counter()
            if code == 200:
                return now - started, body
            if code != 202:
                raise RuntimeError(f"the status query answered {code}: {body}")
            elapsed = now - started
            if elapsed > timeout:
                state, instance = body.get("runtimeStatus"), body.get("instanceId")
                raise ScenarioTimeout(f"still {state} after {timeout:g} s (instance {instance})")
            await asyncio.sleep(min(max(elapsed / 100.0, min_interval), 0.1))

    async def run(
        self, orchestrator: str, body: Any, timeout: float, min_interval: float = 0.005
    ) -> tuple[float, dict[str, Any]]:
        """One orchestration from the HTTP start to its final status; fails unless Completed."""
        started = time.perf_counter()
        status_url = await self.start(orchestrator, body)
        seconds, status = await self.wait_done(status_url, started, timeout, min_interval)
        if status.get("runtimeStatus") != "Completed":
            raise RuntimeError(f"{orchestrator} ended {status.get('runtimeStatus')}: {status.get('output')}")
        return seconds, status


def load_average() -> float | None:
    with contextlib.suppress(OSError):
        return os.getloadavg()[0]
    return None


def wait_for_quiet(limit: float, longest: float, say: Callable[[str], None]) -> float | None:
    """Wait, at most ``longest`` seconds, for the 1-minute load average to fall to ``limit``.

    A run started right after another (whose peers' sweep leaves the load average in the
    hundreds) would otherwise measure its first scenarios on a busy machine. Returns the load
    average at the end of the wait.
    """
    load = load_average()
    if load is None or load <= limit:
        return load
    say(
        f"waiting up to {longest:.0f} s for the load average ({load:.2f}) to fall to {limit:.2f}"
        " (--no-wait: start now)"
    )
    deadline = time.monotonic() + longest
    last_said = time.monotonic()
    while load is not None and load > limit and time.monotonic() < deadline:
        time.sleep(5)
        load = load_average()
        if time.monotonic() - last_said >= 30 and load is not None:
            say(f"  load average {load:.2f}")
            last_said = time.monotonic()
    return load
