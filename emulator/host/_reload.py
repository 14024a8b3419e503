"""``start --watch``: reload the app in place when its files change, durable state kept.

A reload imports the app afresh first, with the running host untouched: an app that no longer
loads (a syntax error, say) is reported on one line and the host keeps serving the code it had,
until the next save that loads. Then the host stops as on Ctrl+C (work in flight is handed back
to the task hub) and a new host starts on the new code, the same port, the same storage
connection (Azurite keeps running) and the same task hub. Instances resume from their
checkpoints on the new code: the new host has no orchestrations in memory, so each replays its
history from the start, and code that no longer decides what the history recorded fails with the
replay check's message (``emulator.durable._replay_check``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

import watchfiles

from emulator.app._app_index import FIX_AND_START_AGAIN, FUNCTION_JSON, is_app_file
from emulator.app._settings import AppLoadError
from emulator.host._host import EmulatorHost

logger = logging.getLogger("emulator.host")

#: The files of an app whose change reloads it (besides its Python files).
SETTINGS_FILES = frozenset({"host.json", "local.settings.json", FUNCTION_JSON})
#: Folders of the script root that hold no app code (Azurite's data is written while the host runs).
IGNORED_DIRS = frozenset({"__azurite__", ".azurite"})


class AppFilesFilter(watchfiles.DefaultFilter):
    """Python files, host.json, local.settings.json and function.json files of the app."""

    def __init__(self, root: Path) -> None:
        super().__init__(ignore_dirs=(*watchfiles.DefaultFilter.ignore_dirs, *IGNORED_DIRS))
        self._root = root

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        name = os.path.basename(path)
        if not (name.endswith(".py") or name in SETTINGS_FILES) or not super().__call__(change, path):
            return False
        # Not the emulator's own sources (beside the seed app in this repository) nor installed packages.
        return is_app_file(path, self._root)


def forget_app_modules(root: Path) -> dict[str, ModuleType]:
    """Drop the app's modules from ``sys.modules`` (so the next import runs them again); returns them."""
    forgotten: dict[str, ModuleType] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        # Namespace packages (an app's folder without __init__.py) have a __path__ but no __file__.
        files = [file] if file else list(getattr(module, "__path__", []) or [])
        if files and all(is_app_file(f, root) for f in files):
            forgotten[name] = sys.modules.pop(name)
    return forgotten


def describe_changes(changes: Iterable[tuple[watchfiles.Change, str]], root: Path) -> str:
    """``function_app.py, activities/greet.py changed`` (at most three names, then a count)."""
    names = sorted({_relative(path, root) for _, path in changes})
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{shown} changed"


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Only warnings and errors from logger ``name`` meanwhile."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    try:
        yield
    finally:
        log.setLevel(level)


class HostReloader:
    """Holds the running host and replaces it with one on the new code at each change."""

    def __init__(self, host: EmulatorHost) -> None:
        self.host = host
        #: False after a host that did not start again (it has been stopped already).
        self._running = True

    @property
    def root(self) -> Path:
        return self.host.options.script_root

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload at each batch of changes until ``stop`` is set."""
        # watchfiles logs "N changes detected" at INFO before each batch: the reload's own line says more.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        async for changes in watchfiles.awatch(
            self.root, watch_filter=AppFilesFilter(self.root), stop_event=stop, debounce=400
        ):
            await self.reload(describe_changes(changes, self.root))

    async def stop(self) -> None:
        """Stop the host serving now (a reload that did not start one has stopped it already)."""
        if self._running:
            self._running = False
            await self.host.stop()

    async def reload(self, what: str) -> bool:
        """Load the app afresh and swap hosts; False (the old host still serving) when it does not load."""
        began = time.monotonic()
        old = self.host
        fresh = EmulatorHost(old.options)
        fresh.invocations = old.invocations  # the dashboard's list of invocations goes on
        forgotten = forget_app_modules(self.root)
        environment = {name: os.environ.pop(name) for name in old.exported_settings if name in os.environ}
        try:
            fresh.load()
        except AppLoadError as exc:
            # The running code keeps its modules (a function importing lazily must not find the broken one)
            # and its settings.
            forget_app_modules(self.root)
            sys.modules.update(forgotten)
            for name in fresh.exported_settings:
                os.environ.pop(name, None)
            os.environ.update(environment)
            message = str(exc).removesuffix(FIX_AND_START_AGAIN)
            logger.error(
                "Reload failed (%s): %s The host keeps the previous code until a save that loads.",
                what,
                message,
            )
            return False
        if self._running:
            await old.stop()
        self.host, self._running = fresh, False
        try:
            with _quiet("emulator.partitions"):  # taking the partitions back is no news
                await fresh.start(announce=False)
        except Exception as exc:  # the port taken meanwhile, storage gone: the next save tries again
            logger.error(
                "Reload failed (%s): the host did not start again: %s: %s", what, type(exc).__name__, exc
            )
            await fresh.stop()
            return False
        self._running = True
        logger.info("Reloaded the app (%s) in %.2f s", what, time.monotonic() - began)
        return True
