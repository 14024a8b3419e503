"""Offline replay from tests: keep golden histories in the repository and check the code against them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from emulator.app._app_index import AppIndex
from emulator.tools._history_files import load_history, read_history_file
from emulator.tools._offline_replay import ReplayReport, load_app_for_replay, replay_saved

HistoryInput = str | os.PathLike[str] | list[Any] | dict[str, Any]

# Importing an app runs its module code: once per app folder and test session is enough.
_apps: dict[Path, AppIndex] = {}


def app_index(root: Path) -> AppIndex:
    """The app at ``root``, imported once per session."""
    index = _apps.get(root)
    if index is None:
        index = _apps[root] = load_app_for_replay(root)
    return index


def replay_history(
    history: HistoryInput,
    *,
    script_root: str | os.PathLike[str] | None = None,
    instance_id: str | None = None,
) -> ReplayReport:
    """Replay a saved history (a file, or its parsed JSON) against the app at ``script_root``
    (default: the current directory). ``report.ok`` tells whether the code agrees with it and
    ``report.format()`` shows, per sequence id, what history recorded and what the code does now."""
    index = app_index(Path(script_root or Path.cwd()).resolve())
    if isinstance(history, (list, dict)):
        return replay_saved(load_history(history, instance_id=instance_id), index)
    path = Path(history)
    return replay_saved(read_history_file(path, instance_id=instance_id), index, label=str(path))


def assert_replays(
    history: HistoryInput,
    *,
    script_root: str | os.PathLike[str] | None = None,
    instance_id: str | None = None,
) -> ReplayReport:
    """:func:`replay_history`, failing the test with the diff when the code no longer agrees."""
    report = replay_history(history, script_root=script_root, instance_id=instance_id)
    if not report.ok:
        raise AssertionError(report.format())
    return report
