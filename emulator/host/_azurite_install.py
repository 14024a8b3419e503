"""Installing the pinned Azurite with npm into a per-user cache, on first use.

So that ``pip install`` and ``durable-emulator start`` are the whole set-up where Node.js exists:
when no Azurite is found (see :func:`emulator.host._azurite.find_azurite_executable`), the host
and the pytest plugin run ``npm install azurite@<pin>`` once into
``$XDG_CACHE_HOME/durable-emulator/azurite-<pin>`` (``~/.cache/...`` without the variable) and use
it from then on. The pin, :data:`AZURITE_VERSION`, is the version of the repository's
``package.json``; it lives in this module so that an installed package (without the repository's
files) knows it too.

npm installs into a staging folder beside the cache entry, which is renamed into place only once
the launcher is there: an interrupted or failed install leaves nothing that looks installed, and
two processes installing at once both end up with one complete copy.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

logger = logging.getLogger("emulator.azurite")

#: The Azurite release the emulator runs (the repository's package.json pins the same).
AZURITE_VERSION = "3.37.0"
CACHE_ENV_VAR = "XDG_CACHE_HOME"
_INSTALL_TIMEOUT_SECONDS = 900.0
_PROGRESS_EVERY_SECONDS = 15.0


class AzuriteNotInstalledError(RuntimeError):
    """Azurite (or Node.js, which it runs on) cannot be found or installed."""


def executable_names() -> tuple[str, ...]:
    """The names npm gives the Azurite launcher in ``node_modules/.bin``."""
    if sys.platform == "win32":
        return ("azurite.cmd", "azurite")
    return ("azurite",)


def launcher_in(folder: Path) -> Path | None:
    """``folder/node_modules/.bin/azurite`` if it is there and executable."""
    for name in executable_names():
        candidate = folder / "node_modules" / ".bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def cache_dir(version: str = AZURITE_VERSION) -> Path:
    """Where the emulator installs Azurite ``version`` for this user."""
    base = os.environ.get(CACHE_ENV_VAR, "")
    if not base or not Path(base).is_absolute():
        if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
            base = os.environ["LOCALAPPDATA"]
        elif sys.platform == "darwin":
            base = str(Path.home() / "Library" / "Caches")
        else:
            base = str(Path.home() / ".cache")
    return Path(base) / "durable-emulator" / f"azurite-{version}"


def install_azurite(version: str = AZURITE_VERSION, *, target: Path | None = None) -> Path:
    """Install Azurite ``version`` with npm into ``target`` (default: :func:`cache_dir`); return its
    launcher. Already installed: returned at once. Raises :class:`AzuriteNotInstalledError` when
    Node.js or npm is not on PATH or npm fails."""
    target = target or cache_dir(version)
    found = launcher_in(target)
    if found is not None:
        return found
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        missing = "Node.js" if shutil.which("node") is None else "npm (it comes with Node.js)"
        raise AzuriteNotInstalledError(
            f"Azurite (the local Azure Storage emulator) runs on Node.js, and {missing} is not on PATH: "
            "install Node.js 18+ (https://nodejs.org or your package manager) and start again; "
            f"the emulator then installs Azurite {version} by itself."
        )
    staging = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _run_npm(npm, version, staging, target)
        if launcher_in(staging) is None:
            raise AzuriteNotInstalledError(
                f"npm installed Azurite {version} into {staging}, but node_modules/.bin/azurite is missing."
            )
        try:
            staging.rename(target)
        except OSError:
            if launcher_in(target) is None:  # not another process's complete copy: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    installed = launcher_in(target)
    assert installed is not None
    logger.info("Azurite %s is installed in %s", version, target)
    return installed


def _run_npm(npm: str, version: str, folder: Path, target: Path) -> None:
    manifest = {"name": "durable-emulator-azurite", "private": True, "dependencies": {"azurite": version}}
    (folder / "package.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    command = [npm, "install", "--no-audit", "--no-fund", "--no-update-notifier"]
    logger.info(
        "Azurite is not installed: installing Azurite %s with npm into %s (first use only, about a minute)",
        version,
        target,
    )
    started = time.monotonic()
    # npm's own output (its progress, its errors) goes to our stderr; a line every few seconds says
    # it is still going where that output is not shown (a captured pytest run, a log file).
    process = subprocess.Popen(command, cwd=folder, stdin=subprocess.DEVNULL, stdout=_stderr_fd())
    next_note = started + _PROGRESS_EVERY_SECONDS
    while process.poll() is None:
        now = time.monotonic()
        if now - started > _INSTALL_TIMEOUT_SECONDS:
            process.kill()
            process.wait()
            raise AzuriteNotInstalledError(
                f"npm install of Azurite {version} did not finish within {_INSTALL_TIMEOUT_SECONDS:g} s."
            )
        if now >= next_note:
            logger.info("Still installing Azurite with npm (%d s)...", now - started)
            next_note = now + _PROGRESS_EVERY_SECONDS
        time.sleep(0.2)
    if process.returncode != 0:
        raise AzuriteNotInstalledError(
            f"`npm install azurite@{version}` failed with exit code {process.returncode} (see npm's messages "
            f"above); install it yourself with `npm install azurite@{version}` in your function app folder."
        )
    logger.info("npm installed Azurite %s in %.0f s", version, time.monotonic() - started)


def _stderr_fd() -> int | None:
    """This process's stderr for a child, or None (inherit stdout) where it has no file descriptor."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
