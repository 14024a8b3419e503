"""Sampling profiles of a running host with py-spy (from the peers' environment).

py-spy samples every thread of the host process from outside, without changing it; only threads
that are running are sampled, so the shares are shares of the host's CPU time. The raw collapsed
stacks are kept beside the summary for flame graphs.
"""

from __future__ import annotations

import collections
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from _peers_env import PY_SPY

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass
class Profile:
    samples: int
    #: (function, share of samples with it anywhere on the stack)
    inclusive: list[tuple[str, float]] = field(default_factory=list)
    #: (function, share of samples with it on top of the stack)
    own: list[tuple[str, float]] = field(default_factory=list)
    #: (thread group, share of samples)
    threads: list[tuple[str, float]] = field(default_factory=list)
    #: Samples left out because the thread was waiting (see IDLE_LEAVES).
    idle: int = 0
    raw_path: Path | None = None


class Sampler:
    """``py-spy record`` attached to a process until :meth:`stop`."""

    def __init__(self, pid: int, raw_path: Path, rate: int = 250) -> None:
        self.raw_path = raw_path
        raw_path.parent.mkdir(parents=True, exist_ok=True)
        command = [str(PY_SPY), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
        command += ["--threads", "--function", "--nonblocking", "--output", str(raw_path)]
        self._log = raw_path.with_suffix(".log").open("wb")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    def stop(self, top: int = 25) -> Profile:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()
        if not self.raw_path.exists():
            log = self.raw_path.with_suffix(".log").read_text(errors="replace")
            raise RuntimeError(f"py-spy wrote no profile:\n{log[-2000:]}")
        return summarize(self.raw_path, top)


def _short(frame: str) -> str:
    """``name (path/to/pkg/module.py:12)`` -> ``pkg/module.py:name``."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file").replace("\\", "/")
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    parts = path.split("/")
    return f"{'/'.join(parts[-2:])}:{match.group('function')}"


#: Innermost frames that mean the thread waits (for work, I/O or a lock) rather than computes.
IDLE_LEAVES = frozenset(
    {
        "futures/thread.py:_worker",
        "selectors.py:EpollSelector.select",
        "threading.py:Condition.wait",
        "threading.py:Event.wait",
        "threading.py:Thread.join",
        "queue.py:Queue.get",
    }
)
#: Frames on every stack of their thread (interpreter start-up, the event loop, thread pools):
#: left out of the cumulative ranking, which would otherwise open with them.
FRAMEWORK_FILES = frozenset(
    {
        "<frozen runpy>",
        "asyncio/runners.py",
        "asyncio/base_events.py",
        "asyncio/events.py",
        "threading.py",
        "futures/thread.py",
        "emulator/__main__.py",
        "emulator/tools/_cli.py",
    }
)


def _thread_group(root: str) -> str:
    # "thread (1234): orchestrator_3" -> "orchestrator"; the event loop runs on MainThread.
    name = root.split(":", 1)[1].strip() if ":" in root else root
    return re.sub(r"[_-]?\d+$", "", name) or name


def summarize(raw_path: Path, top: int = 25) -> Profile:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        names = [_short(f) for f in frames[1:]]
        if not names or names[-1] in IDLE_LEAVES:
            idle += count
            continue
        total += count
        threads[_thread_group(frames[0])] += count
        for name in set(names):
            if name.rsplit(":", 1)[0] not in FRAMEWORK_FILES:
                inclusive[name] += count
        own[names[-1]] += count
    if total == 0:
        return Profile(0, idle=idle, raw_path=raw_path)

    def shares(counter: collections.Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, count / total) for name, count in counter.most_common(n)]

    return Profile(total, shares(inclusive, top), shares(own, top), shares(threads, 8), idle, raw_path)


def format_profile(title: str, profile: Profile) -> str:
    counts = f"{profile.samples} samples of busy host threads, {profile.idle} of waiting ones left out"
    lines = [f"{title}: {counts} (py-spy)"]
    lines.append("  by thread: " + ", ".join(f"{name} {share:.0%}" for name, share in profile.threads))
    lines.append(
        "  top functions by cumulative share (the function or what it calls; event loop frames left out):"
    )
    lines += [f"    {share:6.1%}  {name}" for name, share in profile.inclusive]
    lines.append("  top functions by own share (on top of the stack):")
    lines += [f"    {share:6.1%}  {name}" for name, share in profile.own[:15]]
    if profile.raw_path is not None:
        lines.append(f"  collapsed stacks: {profile.raw_path}")
    return "\n".join(lines)
