"""Benchmark of the emulator against the performance targets and its peers: ``python bench/run.py``.

Runs every scenario of the performance issue end to end (fresh Azurite on disk and a fresh
``python -m emulator start`` per run; the clock runs from the HTTP start request to the status
query that first answers ``Completed``), the peers (durabletask's in-memory backend and DBOS on
SQLite, in ``bench/.venv-peers``, which this script creates) and the floors (raw Azurite rates and
the SDK's own replay time), then prints the figures. ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MAIN_VENV = REPO_ROOT / ".venv"
#: How long a run waits for the machine to quieten down before its first scenario (``--no-wait``).
QUIET_WAIT_SECONDS = 300.0


def _use_main_venv() -> None:
    """Re-run this script with the repository's virtual environment, which has the emulator."""
    python = MAIN_VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == MAIN_VENV.resolve():
        return
    if not python.exists():
        sys.exit(f"{MAIN_VENV} does not exist: run ./dev setup first.")
    os.execv(python, [str(python), *sys.argv])


def engine_digest() -> str:
    """A digest of the emulator's sources: figures are only comparable for the same engine."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "emulator").rglob("*.py")):
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def git_revision() -> str | None:
    import subprocess

    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def build_parser(scenarios: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py", description=(__doc__ or "").splitlines()[0].split(":")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few minutes")
    parser.add_argument(
        "--only",
        action="append",
        metavar="SCENARIO",
        help=f"run only these scenarios (repeat or comma-separate): {', '.join(scenarios)}",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="runs per figure; the median is shown"
    )
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=None,
        metavar="N",
        help="how long the soak scenario runs (default 2, quick 0.5)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write every figure to this JSON file")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="longest a single run may take before it is reported as a timeout (default 1200, quick 180)",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="start at once even while the load average is above half the CPUs (default: wait up to 5 min)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    _use_main_venv()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import dataclasses
    import json
    import platform
    import signal
    import tempfile
    import time
    from datetime import datetime, timezone
    from importlib import metadata

    from _common import load_average, wait_for_quiet
    from _peers_env import installed_versions
    from _report import Report, format_floors, format_table
    from _scenarios import SCENARIOS, Context, Results, Sizes

    from emulator.host._azurite import AZURITE_VERSION

    args = build_parser(list(SCENARIOS)).parse_args(argv)
    selected = list(SCENARIOS)
    if args.only:
        wanted = [name.strip() for item in args.only for name in item.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in SCENARIOS]
        if unknown:
            print(
                f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}",
                file=sys.stderr,
            )
            return 2
        selected = [name for name in SCENARIOS if name in wanted]
    if args.repeat < 1:
        print("--repeat must be at least 1", file=sys.stderr)
        return 2

    def say(text: str) -> None:
        print(text, flush=True)

    def stop_on_signal(signum: int, _frame: object) -> None:
        # Unwind like Ctrl-C, so every host and Azurite this run started is stopped.
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)

    quiet = 0.5 * (os.cpu_count() or 1)
    load = load_average() if args.no_wait else wait_for_quiet(quiet, QUIET_WAIT_SECONDS, say)
    started = time.perf_counter()
    meta = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "azurite": AZURITE_VERSION,
        "azure-functions-durable": metadata.version("azure-functions-durable"),
        "peers": installed_versions(),
        "load_average_1min_before": load,
        "git": git_revision(),
        "engine_digest": engine_digest(),
        "quick": args.quick,
        "repeat": args.repeat,
        "scenarios": selected,
    }
    say(
        f"Benchmark {'(quick) ' if args.quick else ''}on {meta['cpus']} CPUs, Python {meta['python']}, "
        f"Azurite {AZURITE_VERSION}, azure-functions-durable {meta['azure-functions-durable']}; "
        f"engine {meta['git']} (sources {meta['engine_digest']}); "
        f"load average {load if load is None else round(load, 2)} before the start"
    )
    if load is not None and load > quiet:
        say("warning: the machine is busy with other work; figures will be slower than on an idle machine")
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.soak_minutes is not None:
        sizes = dataclasses.replace(sizes, soak_minutes=args.soak_minutes)
    timeout = args.timeout if args.timeout is not None else (180.0 if args.quick else 1200.0)
    results = Results()
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="durable-bench-logs-") as work_dir:
        ctx = Context(sizes, args.repeat, timeout, results, Path(work_dir), args.quick, say)
        for name in selected:
            say(f"== {name}")
            try:
                SCENARIOS[name](ctx)
            except KeyboardInterrupt:
                say("interrupted: reporting what was measured")
                interrupted = True
                break
            except Exception as exc:
                message = (str(exc).splitlines() or [""])[0][:300]
                results.failures[name] = f"{type(exc).__name__}: {message}"
                say(f"  {name} FAILED: {type(exc).__name__}: {message}")
    elapsed = time.perf_counter() - started
    meta["elapsed_s"] = elapsed
    meta["load_average_1min_after"] = load_average()
    meta["engine_digest_after"] = engine_digest()

    rows = Report(results, sizes, args.quick).build()
    say("")
    if rows:
        say(format_table(rows))
        say(
            "time: median over runs; act/s: activities / time; host peak RSS: the emulator host process's "
            "peak resident memory (VmHWM), max over runs (peer rows: the peer's own process); "
            "CPU: seconds of CPU the host and Azurite used during the timed part; "
            "vs peer: emulator time / peer time at the same size (below 1x: the emulator is faster)."
        )
    floors = format_floors(results.floors)
    if floors:
        say("")
        say(floors)
    if results.failures:
        say("")
        say("Failures and timeouts:")
        for key, message in results.failures.items():
            say(f"  {key}: {message}")
    say("")
    after = meta["load_average_1min_after"]
    load_text = "unknown" if after is None else f"{after:.2f}"
    say(f"Total time {elapsed / 60:.1f} min; load average {load_text} at the end.")
    if meta["engine_digest_after"] != meta["engine_digest"]:
        say("warning: the emulator's sources changed during the run; scenarios ran on different engines")
    if args.json:
        payload = {"meta": meta, "table": [row.__dict__ for row in rows], **results.to_json()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        say(f"Figures written to {args.json}")
    if interrupted:
        return 130
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
