"""Fan-out time against fan-out size for the emulator and its peers, as a PNG.

``python bench/plot.py bench/results/fanout.json -o bench/results/fanout.png``, run in the peers'
environment (``bench/.venv-peers``, which has matplotlib); ``bench/run.py`` writes the JSON
(its ``sweep`` scenario) and calls this script.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

STYLES = {
    "emulator": {"color": "#0b6bcb", "marker": "o", "linewidth": 2.5},
    "durabletask": {"color": "#d9730d", "marker": "s", "linewidth": 1.5},
    "dbos": {"color": "#2e7d32", "marker": "^", "linewidth": 1.5},
}


def _label_2_and_5(value: float, _position: int) -> str:
    """Minor ticks of a log axis: label 2 and 5 of each decade (0.2, 0.5, 2, 5, 20...)."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value))
    return f"{value:g}" if round(mantissa) in (2, 5) else ""


def draw(data: dict[str, object], output: Path) -> None:
    series = data["series"]
    labels = data.get("labels", {})
    assert isinstance(series, dict) and isinstance(labels, dict)
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    for system, points in series.items():
        if not points:
            continue
        counts = [p["count"] for p in points]
        seconds = [p["seconds"] for p in points]
        axes.plot(counts, seconds, label=labels.get(system, system), **STYLES.get(system, {}))
    axes.set_xscale("log")
    axes.set_yscale("log")
    sizes = sorted({p["count"] for points in series.values() for p in points})
    axes.set_xticks(sizes)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.yaxis.set_minor_formatter(FuncFormatter(_label_2_and_5))
    axes.set_xlabel("activities in one fan-out/fan-in (no-op activities)")
    axes.set_ylabel("seconds, start to completed")
    axes.set_title("Fan-out/fan-in time against size (2 CPUs, lower is better)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Plot fan-out time against size.")
    parser.add_argument(
        "results", type=Path, help="the JSON written by bench/run.py (bench/results/fanout.json)"
    )
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).parent / "results" / "fanout.png")
    args = parser.parse_args(argv)
    draw(json.loads(args.results.read_text()), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
