"""The peers' own environment, ``bench/.venv-peers``: created and kept up to date here.

The peers (and the plotting and profiling tools) never enter the emulator's environment, so
their dependencies cannot change what the emulator runs with.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, ScenarioTimeout

PEERS_VENV = BENCH_DIR / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
PY_SPY = PEERS_VENV / "bin" / "py-spy"
#: Pinned so that peer figures compare like with like across runs.
PINS = ("durabletask==1.12.0", "dbos==3.4.0", "matplotlib==3.11.2", "py-spy==0.4.3")
_STAMP = PEERS_VENV / ".bench-pins.sha256"


def _pins_digest() -> str:
    return hashlib.sha256("\n".join(PINS).encode()).hexdigest()


def ensure_peers_env(log: Any = print) -> Path:
    """Create the environment and install the pinned packages unless it already has them."""
    if not PEERS_PYTHON.exists():
        log(f"creating {PEERS_VENV} ...")
        # The base interpreter, not the emulator's virtual environment.
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
    if _STAMP.exists() and _STAMP.read_text().strip() == _pins_digest():
        return PEERS_PYTHON
    log(f"installing {', '.join(PINS)} into {PEERS_VENV} (about a minute) ...")
    subprocess.run(
        [str(PEERS_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINS],
        check=True,
    )
    _STAMP.write_text(_pins_digest() + "\n")
    return PEERS_PYTHON


def installed_versions() -> dict[str, str]:
    return {pin.split("==")[0]: pin.split("==")[1] for pin in PINS}


def run_peer(system: str, shape: str, count: int, timeout: float) -> dict[str, Any]:
    """Run one peer scenario in its own process; its JSON figures (``seconds``, ``peak_rss_mb``...)."""
    command = [str(PEERS_PYTHON), str(BENCH_DIR / "peers.py"), system, shape, str(count)]
    command += ["--timeout", str(timeout)]
    # gRPC's C core reports a routine GOAWAY at shutdown on stderr: keep it quiet.
    env = {**os.environ, "GRPC_VERBOSITY": "ERROR", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("VIRTUAL_ENV", None)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout + 60, env=env, cwd=BENCH_DIR
        )
    except subprocess.TimeoutExpired:
        raise ScenarioTimeout(f"{system} {shape} {count} did not finish within {timeout:g} s") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-15:])
        raise RuntimeError(f"{system} {shape} {count} failed (exit {done.returncode}):\n{tail}")
    figures: dict[str, Any] = json.loads(lines[-1])
    if not figures.get("correct"):
        raise RuntimeError(f"{system} {shape} {count} returned a wrong result: {figures}")
    return figures


def plot(results_json: Path, output: Path) -> None:
    """Draw the fan-out plot with ``bench/plot.py`` in the peers' environment."""
    subprocess.run(
        [str(PEERS_PYTHON), str(BENCH_DIR / "plot.py"), str(results_json), "-o", str(output)],
        check=True,
        cwd=BENCH_DIR,
    )


def py_spy_available() -> bool:
    return PY_SPY.exists() and os.access(PY_SPY, os.X_OK)


__all__ = [
    "PEERS_PYTHON",
    "PEERS_VENV",
    "PINS",
    "PY_SPY",
    "ensure_peers_env",
    "installed_versions",
    "plot",
    "py_spy_available",
    "run_peer",
]
