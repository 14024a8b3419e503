"""Write constraints.txt: the exact versions of every package our own runs install, on each Python.

Usage: ``./dev lock`` (or ``python tools/lock.py [PYTHON ...]``). For each supported Python found
(pyenv versions, then ``python3.X`` on PATH) it installs the project with its ``dev`` extra and the
app's requirements.txt into a fresh virtual environment, newest versions within the ranges, and
records what pip chose. A package whose version differs between Pythons gets one line per version
with a ``python_version`` marker, so one file serves every Python (pip applies only the lines whose
marker holds). Packages that only some Pythons need (backports) are pinned for all: constraints on
packages that are not installed do nothing.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
HEADER = """\
# The exact versions of our own runs (./dev setup, ./dev test, ./dev pythons, CI), written by ./dev lock.
# pyproject.toml states the ranges a user's app may install the package with; this file only pins those
# ranges for reproducible runs here. Lines with a python_version marker apply to those Pythons only.
"""


def find_python(minor: str) -> str | None:
    """The interpreter for one minor version: pyenv's newest patch release, else python3.X on PATH."""
    try:
        names = subprocess.run(
            ["pyenv", "versions", "--bare"], capture_output=True, text=True, check=True
        ).stdout.split()
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        names, root = [], ""
    patches = [n for n in names if n.startswith(minor + ".") and n[len(minor) + 1 :].isdigit()]
    if patches:
        newest = max(patches, key=lambda n: int(n.rsplit(".", 1)[1]))
        return f"{root}/versions/{newest}/bin/python"
    found = subprocess.run(["sh", "-c", f"command -v python{minor}"], capture_output=True, text=True)
    return found.stdout.strip() or None


def frozen(python: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as venv:
        subprocess.run([python, "-m", "venv", venv], check=True)
        pip = [f"{venv}/bin/python", "-m", "pip", "--disable-pip-version-check", "--quiet"]
        subprocess.run(
            [*pip, "install", "-e", f"{ROOT}[dev]", "-r", str(ROOT / "requirements.txt")], check=True
        )
        out = subprocess.run(
            [*pip, "freeze", "--exclude-editable"], capture_output=True, text=True, check=True
        )
    pins = {}
    for line in out.stdout.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[name.lower()] = version
    return pins


def lines(by_minor: dict[str, dict[str, str]]) -> list[str]:
    names = sorted({name for pins in by_minor.values() for name in pins})
    out = []
    for name in names:
        versions = {minor: pins[name] for minor, pins in by_minor.items() if name in pins}
        if len(set(versions.values())) == 1:
            out.append(f"{name}=={next(iter(versions.values()))}")
            continue
        # One line per run of consecutive Pythons with the same version.
        minors = sorted(versions, key=lambda m: tuple(map(int, m.split("."))))
        runs: list[list[str]] = []
        for minor in minors:
            if runs and versions[runs[-1][0]] == versions[minor]:
                runs[-1].append(minor)
            else:
                runs.append([minor])
        for i, run in enumerate(runs):
            low = "" if i == 0 else f'python_version >= "{run[0]}"'
            high = "" if i == len(runs) - 1 else f'python_version < "{runs[i + 1][0]}"'
            marker = " and ".join(part for part in (low, high) if part)
            out.append(f"{name}=={versions[run[0]]}; {marker}")
    return out


def main(argv: list[str]) -> int:
    by_minor: dict[str, dict[str, str]] = {}
    for minor in SUPPORTED:
        python = find_python(minor)
        if python is None:
            print(f"Python {minor}: not found (pyenv versions, python{minor} on PATH); not locked")
            continue
        print(f"Python {minor}: resolving with {python}", flush=True)
        by_minor[minor] = frozen(python)
    if not by_minor:
        print("no supported Python found", file=sys.stderr)
        return 1
    (ROOT / "constraints.txt").write_text(HEADER + "\n".join(lines(by_minor)) + "\n")
    print(f"wrote constraints.txt for Python {', '.join(by_minor)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
