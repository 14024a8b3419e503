"""The scenarios of the performance issue, each run end to end and recorded in a :class:`Results`.

Emulator figures: a fresh Azurite (on disk, free ports) and a fresh ``python -m emulator start``
per run; the clock runs from the HTTP start request to the status query that first answers
``Completed``. Peer figures: each run in its own process of the peers' environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _floors
import _hub_growth
import _hub_replay
import _peers_env
import _profile
import _soak
from _common import (
    BENCH_APP,
    REPO_ROOT,
    RESULTS_DIR,
    Client,
    CpuMeter,
    HostProcess,
    Measurement,
    ScenarioTimeout,
    azurite,
    load_average,
    median,
    peak_rss_mb,
    percentile,
    rss_mb,
)

PEERS = ("durabletask", "dbos")
PEER_LABELS = {"durabletask": "durabletask in-memory", "dbos": "DBOS on SQLite"}


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is: the issue's sizes, or small ones for a smoke run."""

    fanout: tuple[int, int]
    #: The big fan-out, measured against the larger of ``fanout`` (``fanout-100k``).
    fanout_big: int
    chain: tuple[int, ...]
    latency_runs: int
    cold_starts: int
    orders: int
    peers: int
    replay: int
    sweep: tuple[int, ...]
    profile_fanout: int
    profile_chain: int
    soak_minutes: float
    hub_growth: tuple[int, ...]

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            fanout=(1000, 10000),
            fanout_big=100000,
            chain=(100, 500, 1000),
            latency_runs=200,
            cold_starts=5,
            orders=500,
            peers=1000,
            replay=1000,
            sweep=(100, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000),
            profile_fanout=1000,
            profile_chain=200,
            soak_minutes=2.0,
            hub_growth=(0, 2000, 4000),
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            fanout=(100, 1000),
            fanout_big=20000,
            chain=(10, 50, 100),
            latency_runs=30,
            cold_starts=2,
            orders=50,
            peers=100,
            replay=200,
            sweep=(50, 100, 200, 500),
            profile_fanout=200,
            profile_chain=50,
            soak_minutes=0.5,
            hub_growth=(0, 500),
        )


@dataclass
class Results:
    """Every measurement of one invocation, by ``system/shape/size`` (e.g. ``emulator/fanout/1000``)."""

    runs: dict[str, list[Measurement]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    floors: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, measurement: Measurement) -> None:
        self.runs.setdefault(key, []).append(measurement)

    def seconds(self, key: str) -> float | None:
        runs = self.runs.get(key)
        return median([m.seconds for m in runs]) if runs else None

    def peak(self, key: str) -> float | None:
        peaks = [m.peak_rss_mb for m in self.runs.get(key, []) if m.peak_rss_mb is not None]
        return max(peaks) if peaks else None

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": {
                key: [
                    {
                        "seconds": m.seconds,
                        "activities": m.activities,
                        "peak_rss_mb": m.peak_rss_mb,
                        **m.extra,
                    }
                    for m in runs
                ]
                for key, runs in self.runs.items()
            },
            "failures": self.failures,
            "floors": self.floors,
            "profiles": self.profiles,
            **self.extra,
        }


@dataclass
class Context:
    sizes: Sizes
    repeat: int
    timeout: float
    results: Results
    work_dir: Path
    quick: bool = False
    say: Callable[[str], None] = print


# -- one emulator run -----------------------------------------------------------------------


@contextlib.contextmanager
def running_host(
    ctx: Context, label: str, app: Path = BENCH_APP, env: dict[str, str] | None = None
) -> Iterator[HostProcess]:
    """A fresh Azurite and a host for ``app`` serving HTTP; both stopped afterwards."""
    with azurite(label) as server:
        host = HostProcess(app, server.connection_string, ctx.work_dir / f"{label}.log", env)
        host.storage_pid = server.process.pid
        try:
            host.launch()
            # Any answer means the host serves HTTP (the root app has no GET route of its own).
            host.wait_until_serving("/runtime/webhooks/durabletask/instances/none", want_status=None)
            yield host
        except BaseException:
            if host.process is not None and host.process.poll() is not None:
                ctx.say(f"    host log tail:\n{host.log_tail()}")
            raise
        finally:
            host.stop()


async def _orchestrate(
    host: HostProcess, orchestrator: str, body: Any, timeout: float
) -> tuple[float, dict[str, Any]]:
    async with Client(host.base_url) as client:
        return await client.run(orchestrator, body, timeout)


def _cpu_meter(host: HostProcess) -> CpuMeter:
    # The host's main thread runs its event loop: every request and episode passes through it.
    pids: dict[str, int | tuple[int, int]] = {"host": host.pid, "host_loop": (host.pid, host.pid)}
    if host.storage_pid is not None:
        pids["azurite"] = host.storage_pid
    return CpuMeter(**pids)


def _cpu_figures(meter: CpuMeter) -> dict[str, Any]:
    return {f"{name}_cpu_s": seconds for name, seconds in meter.stop().items()}


def emulator_run(
    ctx: Context, shape: str, count: int, *, profile_path: Path | None = None
) -> tuple[Measurement, _profile.Profile | None]:
    """One FanOut or Chain of ``count`` no-op activities on a fresh host (after one warm-up call)."""
    orchestrator = {"fanout": "FanOut", "chain": "Chain"}[shape]
    with running_host(ctx, f"{shape}-{count}") as host:
        asyncio.run(_orchestrate(host, "Single", None, 60))  # warm-up
        sampler = _profile.Sampler(host.pid, profile_path) if profile_path else None
        cpu = _cpu_meter(host).start()
        try:
            seconds, status = asyncio.run(_orchestrate(host, orchestrator, count, ctx.timeout))
        finally:
            profile = sampler.stop() if sampler else None
        if status.get("output") != count * (count - 1) // 2:
            raise RuntimeError(f"{orchestrator}({count}) returned {status.get('output')!r}")
        measurement = Measurement(seconds, count, peak_rss_mb(host.pid), _cpu_figures(cpu))
    return measurement, profile


def _emulator_measurement(ctx: Context, shape: str, count: int) -> Measurement:
    return emulator_run(ctx, shape, count)[0]


def _record(ctx: Context, key: str, title: str, run: Callable[[], Measurement]) -> Measurement | None:
    """Run ``run`` ``ctx.repeat`` times into ``key``; a failure or timeout is recorded, not raised."""
    last = None
    for attempt in range(1, ctx.repeat + 1):
        started = time.perf_counter()
        try:
            last = run()
        except ScenarioTimeout as exc:
            ctx.results.failures[key] = f"timeout: {exc}"
            ctx.say(f"  {title} [{attempt}/{ctx.repeat}]: TIMEOUT ({exc})")
            return None
        except Exception as exc:
            message = (str(exc).splitlines() or [""])[0][:300]
            ctx.results.failures[key] = f"{type(exc).__name__}: {message}"
            spent = time.perf_counter() - started
            ctx.say(f"  {title} [{attempt}/{ctx.repeat}]: FAILED after {spent:.1f} s: {message}")
            return None
        load = load_average()
        if load is not None:
            last.extra.setdefault("load_1min", load)
        ctx.results.add(key, last)
        rate = f", {last.per_second:,.0f} activities/s" if last.per_second else ""
        memory = f", peak RSS {last.peak_rss_mb:.0f} MB" if last.peak_rss_mb else ""
        ctx.say(f"  {title} [{attempt}/{ctx.repeat}]: {last.seconds:.3f} s{rate}{memory}")
    return last


# -- scenarios ------------------------------------------------------------------------------


def scenario_fanout(ctx: Context) -> None:
    for count in ctx.sizes.fanout:
        _record(
            ctx,
            f"emulator/fanout/{count}",
            f"fan-out {count:,}",
            functools.partial(_emulator_measurement, ctx, "fanout", count),
        )


def scenario_fanout_big(ctx: Context) -> None:
    """The 100,000-way fan-out (quick: 20,000): minutes of work, so a scenario of its own."""
    count = ctx.sizes.fanout_big
    _record(
        ctx,
        f"emulator/fanout/{count}",
        f"fan-out {count:,}",
        functools.partial(_emulator_measurement, ctx, "fanout", count),
    )
    # The same history appended straight to Azurite at both sizes: how linear the storage is.
    figures = []
    try:
        for size in (ctx.sizes.fanout[1], count):
            with azurite(f"floors-fanout-{size}") as server:
                ctx.say(f"  storage floor: the history of a {size:,}-way fan-out appended, no host ...")
                figures.append(
                    asyncio.run(
                        _floors.measure_fanout_history(server.connection_string, size, server.process.pid)
                    )
                )
    except Exception as exc:
        ctx.results.failures["floors/fanout-history"] = f"{type(exc).__name__}: {exc}"
        ctx.say(f"  storage floor FAILED: {exc}")
        return
    ctx.results.floors["fanout_history"] = figures


def scenario_chain(ctx: Context) -> None:
    for count in ctx.sizes.chain:
        _record(
            ctx,
            f"emulator/chain/{count}",
            f"chain {count:,}",
            functools.partial(_emulator_measurement, ctx, "chain", count),
        )


def scenario_latency(ctx: Context) -> None:
    runs = ctx.sizes.latency_runs

    async def measure(host: HostProcess) -> list[float]:
        async with Client(host.base_url) as client:
            for _ in range(5):
                await client.run("Single", None, 60)
            times = []
            for _ in range(runs):
                # Status queries back to back (one in flight, 1 % of the time waited apart): a
                # fixed pause would add up to its own length to every figure.
                seconds, _status = await client.run("Single", None, min(ctx.timeout, 60), 0.0)
                times.append(seconds)
            return times

    def run() -> Measurement:
        with running_host(ctx, "latency") as host:
            cpu = _cpu_meter(host).start()
            times = asyncio.run(measure(host))
            peak = peak_rss_mb(host.pid)
            figures = _cpu_figures(cpu)
        figures.update(p99=percentile(times, 0.99), p50=median(times), max=max(times), runs=len(times))
        return Measurement(median(times), 1, peak, figures)

    _record(ctx, "emulator/latency/1", f"one-activity orchestration x {runs}", run)


def scenario_cold_start(ctx: Context) -> None:
    """Process start to the first HTTP 200, Azurite running; the first start also creates the hub.

    The host answers a plain HTTP function before its durable back end (storage clients, task
    hub, partitions) has started; the time until the host status answers, once all of that is
    up, is recorded beside it.
    """

    def start_once(connection_string: str, label: str) -> Measurement:
        host = HostProcess(BENCH_APP, connection_string, ctx.work_dir / f"{label}.log")
        try:
            host.launch()
            seconds = host.wait_until_serving("/api/ping", timeout=min(ctx.timeout, 120))
            ready = host.wait_until_serving("/admin/host/status", timeout=min(ctx.timeout, 120))
            return Measurement(seconds, 0, peak_rss_mb(host.pid), {"ready_s": ready})
        finally:
            host.stop()

    with azurite("cold-start") as server:
        _record(
            ctx,
            "emulator/cold-start-new-hub/1",
            "cold start, new task hub",
            lambda: start_once(server.connection_string, "cold-new"),
        )
        for i in range(ctx.sizes.cold_starts):
            _record(
                ctx,
                "emulator/cold-start/1",
                f"cold start {i + 1}/{ctx.sizes.cold_starts}",
                lambda: start_once(server.connection_string, "cold"),
            )


def scenario_orders(ctx: Context) -> None:
    """N ProcessOrder instances started at once: the repository's orchestrator, no-op activities."""
    _orders(ctx, BENCH_APP, "orders", "ProcessOrder at once")


def scenario_orders_app(ctx: Context) -> None:
    """N ProcessOrder instances of the repository's own app (its table-storage activities)."""
    _orders(ctx, REPO_ROOT, "orders-app", "ProcessOrder at once, the app's own activities")


def _orders(ctx: Context, app: Path, shape: str, title: str) -> None:
    count = ctx.sizes.orders
    _record(ctx, f"emulator/{shape}/{count}", f"{count} {title}", lambda: orders_run(ctx, app, shape)[0])


def orders_run(
    ctx: Context, app: Path, shape: str, *, profile_path: Path | None = None
) -> tuple[Measurement, _profile.Profile | None]:
    """``ctx.sizes.orders`` ProcessOrder started at once on a fresh host (after one warm-up order)."""
    count = ctx.sizes.orders

    async def measure(host: HostProcess) -> tuple[float, float, dict[str, int], str | None]:
        async with Client(host.base_url, limit=0) as client:
            await client.run("ProcessOrder", None, 60)  # warm-up: creates the app's tables
            started = time.perf_counter()
            urls = await asyncio.gather(*(client.start("ProcessOrder") for _ in range(count)))
            all_started = time.perf_counter() - started
            seconds = 0.0
            outcomes: dict[str, int] = {}
            first_error = None
            # Wait for every order, even after one fails: how many fail is part of the figure.
            for url in urls:
                seconds, status = await client.wait_done(url, started, ctx.timeout, min_interval=0.01)
                outcome = str(status.get("runtimeStatus"))
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if outcome != "Completed" and first_error is None:
                    first_error = str(status.get("output"))
            return seconds, all_started, outcomes, first_error

    env = {"PROCESS_CUSTOMER_DELAY_SECONDS": "0"}
    with running_host(ctx, shape, app, env) as host:
        before = rss_mb(host.pid)
        # The profile also covers the warm-up order: one of count + 1.
        sampler = _profile.Sampler(host.pid, profile_path) if profile_path else None
        cpu = _cpu_meter(host).start()
        try:
            seconds, all_started, outcomes, first_error = asyncio.run(measure(host))
        finally:
            profile = sampler.stop() if sampler else None
        peak = peak_rss_mb(host.pid)
        figures = _cpu_figures(cpu)
    figures.update(starts_accepted_s=all_started, rss_before_mb=before, outcomes=outcomes)
    if first_error is not None:
        figures["first_error"] = first_error.splitlines()[0][:300]
        failed = count - outcomes.get("Completed", 0)
        ctx.say(f"  {failed} of {count} orders did not complete; the first: {figures['first_error']}")
    return Measurement(seconds, 5 * count, peak, figures), profile


def _peer_measurement(system: str, shape: str, count: int, timeout: float) -> Measurement:
    figures = _peers_env.run_peer(system, shape, count, timeout)
    return Measurement(figures["seconds"], count, figures.get("peak_rss_mb"), {"version": figures["version"]})


def scenario_peers(ctx: Context) -> None:
    _peers_env.ensure_peers_env(ctx.say)
    count = ctx.sizes.peers
    for system in PEERS:
        for shape in ("fanout", "chain"):
            _record(
                ctx,
                f"{system}/{shape}/{count}",
                f"{PEER_LABELS[system]} {shape} {count:,}",
                functools.partial(_peer_measurement, system, shape, count, ctx.timeout),
            )


def scenario_floors(ctx: Context) -> None:
    quick = ctx.sizes.replay < 1000
    try:
        with azurite("floors") as server:
            ctx.say("  storage floor: raw Azurite operations ...")
            ctx.results.floors["storage"] = asyncio.run(
                _floors.measure_storage(server.connection_string, quick, server.process.pid)
            )
        with azurite("floors-orders") as server:
            # A fresh Azurite, as the orders scenario gets: its costs grow with the rows stored.
            ctx.say(
                f"  storage floor: {ctx.sizes.orders} ProcessOrder's storage requests at once, no host ..."
            )
            ctx.results.floors["storage"]["orders"] = asyncio.run(
                _floors.measure_orders_storage(server.connection_string, ctx.sizes.orders, server.process.pid)
            )
    except Exception as exc:
        ctx.results.failures["floors/storage"] = f"{type(exc).__name__}: {exc}"
        ctx.say(f"  storage floor FAILED: {exc}")
    try:
        ctx.results.floors["hub_growth"] = _hub_growth.measure_hub_growth(
            ctx.sizes.hub_growth, 4.0 if quick else 10.0, ctx.say
        )
    except Exception as exc:
        ctx.results.failures["floors/hub-growth"] = f"{type(exc).__name__}: {exc}"
        ctx.say(f"  hub growth floor FAILED: {exc}")
    ctx.say(f"  replay floor: the SDK replaying final histories of {ctx.sizes.replay:,} activities ...")
    ctx.results.floors["replay"] = _floors.measure_replay(ctx.sizes.replay)


def scenario_sweep(ctx: Context) -> None:
    """Fan-out time against size for the emulator and the peers (reusing sizes already measured)."""
    for count in ctx.sizes.sweep:
        key = f"emulator/fanout/{count}"
        if key not in ctx.results.runs and key not in ctx.results.failures:
            _record(
                ctx, key, f"fan-out {count:,}", functools.partial(_emulator_measurement, ctx, "fanout", count)
            )
    _peers_env.ensure_peers_env(ctx.say)
    for system in PEERS:
        for count in ctx.sizes.sweep:
            key = f"{system}/fanout/{count}"
            if key in ctx.results.runs or key in ctx.results.failures:
                continue  # measured (or failed) already, by the peers scenario
            reason = _skip_peer_size(ctx, system, count)
            if reason:
                ctx.results.failures[key] = f"skipped: {reason}"
                ctx.say(f"  {PEER_LABELS[system]} fanout {count:,}: skipped ({reason})")
                continue
            _record(
                ctx,
                key,
                f"{PEER_LABELS[system]} fanout {count:,}",
                functools.partial(_peer_measurement, system, "fanout", count, ctx.timeout),
            )
    series: dict[str, list[dict[str, float]]] = {}
    for system in ("emulator", *PEERS):
        points = []
        for count in ctx.sizes.sweep:
            seconds = ctx.results.seconds(f"{system}/fanout/{count}")
            if seconds is not None:
                points.append({"count": count, "seconds": seconds})
        series[system] = points
    versions = _peers_env.installed_versions()
    data = {
        "series": series,
        "labels": {
            "emulator": "this emulator (Azurite on disk)",
            "durabletask": f"durabletask {versions['durabletask']} in-memory backend",
            "dbos": f"DBOS {versions['dbos']} on SQLite",
        },
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    # A smoke run must not replace the figures of a full one.
    stem = "fanout-quick" if ctx.quick else "fanout"
    sweep_json = RESULTS_DIR / f"{stem}.json"
    sweep_json.write_text(json.dumps(data, indent=2) + "\n")
    ctx.results.extra["sweep"] = data
    try:
        _peers_env.plot(sweep_json, RESULTS_DIR / f"{stem}.png")
        ctx.say(f"  plot: {RESULTS_DIR / f'{stem}.png'}")
    except Exception as exc:
        ctx.results.failures["sweep/plot"] = f"{type(exc).__name__}: {exc}"
        ctx.say(f"  plot FAILED: {exc}")


def _skip_peer_size(ctx: Context, system: str, count: int) -> str | None:
    """Why a peer's sweep should not run ``count``: a smaller size failed, or would time out.

    The time is extrapolated from the two largest sizes measured (a power law through them):
    the peers grow faster than linearly, and a run that ends in a timeout costs the whole timeout.
    """
    smaller = [n for n in ctx.sizes.sweep if n < count]
    for n in smaller:
        failure = ctx.results.failures.get(f"{system}/fanout/{n}")
        if failure:
            return f"{n:,} was skipped" if failure.startswith("skipped") else f"{n:,} failed"
    measured = [(n, t) for n in smaller if (t := ctx.results.seconds(f"{system}/fanout/{n}")) is not None]
    if len(measured) < 2:
        return None
    (n1, t1), (n2, t2) = measured[-2:]
    exponent = max(1.0, math.log(t2 / t1) / math.log(n2 / n1)) if t1 > 0 and t2 > t1 else 1.0
    expected = t2 * (count / n2) ** exponent
    if expected > ctx.timeout:
        return (
            f"about {expected:,.0f} s expected from {n1:,} and {n2:,}, past the {ctx.timeout:,.0f} s timeout"
        )
    return None


def scenario_soak(ctx: Context) -> None:
    """``_soak.RATE`` ``FanOut(10)`` starts a second for ``Sizes.soak_minutes`` (``--soak-minutes``)."""
    minutes = ctx.sizes.soak_minutes

    def run() -> Measurement:
        with running_host(ctx, "soak") as host:
            asyncio.run(_orchestrate(host, "Single", None, 60))  # warm-up
            result = asyncio.run(
                _soak.drive(host.base_url, host.pid, host.storage_pid, _soak.RATE, minutes, ctx.say)
            )
            peak = peak_rss_mb(host.pid)
        return Measurement(minutes * 60, result["completed"] * _soak.WIDTH, peak, {"soak": result})

    _record(
        ctx,
        f"emulator/soak/{_soak.RATE:g}",
        f"{_soak.RATE:g} FanOut({_soak.WIDTH})/s for {minutes:g} min",
        run,
    )


def scenario_hub_replay(ctx: Context) -> None:
    """``replay --task-hub`` over 1,000 running instances of 100 events (quick: 200)."""
    count = 200 if ctx.quick else 1000
    try:
        figures = _hub_replay.measure(count, ctx.timeout)
    except Exception as exc:
        ctx.results.failures["hub-replay"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        ctx.say(f"  hub replay FAILED: {exc}")
        return
    ctx.results.extra["hub_replay"] = figures
    ctx.say(
        f"  hub replay: {count:,} running instances of {figures['events_per_instance']} events checked in "
        f"{figures['seconds']:.2f} s ({count / figures['seconds']:,.0f} instances/s; "
        f"{figures['check_seconds']:.2f} s reading and replaying, the rest starting and importing the app)"
    )


def scenario_profile(ctx: Context) -> None:
    """Where the host spends its CPU during a fan-out and a chain (py-spy; not timed figures)."""
    _peers_env.ensure_peers_env(ctx.say)
    if not _peers_env.py_spy_available():
        ctx.results.failures["profile"] = "py-spy is not installed in the peers' environment"
        return
    runs: list[tuple[str, int, Callable[..., tuple[Measurement, _profile.Profile | None]]]] = [
        (shape, count, functools.partial(emulator_run, ctx, shape, count))
        for shape, count in (("fanout", ctx.sizes.profile_fanout), ("chain", ctx.sizes.profile_chain))
    ]
    runs.append(("orders", ctx.sizes.orders, functools.partial(orders_run, ctx, BENCH_APP, "orders")))
    for shape, count, run in runs:
        raw = RESULTS_DIR / f"profile-{shape}-{count}.txt"
        try:
            measurement, profile = run(profile_path=raw)
        except Exception as exc:
            ctx.results.failures[f"profile/{shape}"] = f"{type(exc).__name__}: {exc}"
            ctx.say(f"  profile of {shape} {count:,} FAILED: {exc}")
            continue
        assert profile is not None
        title = f"host profile, {shape} {count:,} ({measurement.seconds:.2f} s under the profiler)"
        text = _profile.format_profile(title, profile)
        ctx.results.profiles[f"{shape}/{count}"] = text
        ctx.say(text)


SCENARIOS: dict[str, Callable[[Context], None]] = {
    "fanout": scenario_fanout,
    "fanout-100k": scenario_fanout_big,
    "chain": scenario_chain,
    "latency": scenario_latency,
    "cold-start": scenario_cold_start,
    "orders": scenario_orders,
    "orders-app": scenario_orders_app,
    "peers": scenario_peers,
    "floors": scenario_floors,
    "profile": scenario_profile,
    "hub-replay": scenario_hub_replay,
    "soak": scenario_soak,
    "sweep": scenario_sweep,
}
