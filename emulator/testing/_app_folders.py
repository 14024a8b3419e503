"""Where a test session's function apps are, and the Azurite installed beside them (or for the user)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from emulator.host._azurite import find_azurite_executable, find_or_install_azurite
from emulator.host._azurite_install import AZURITE_VERSION, cache_dir


def app_folders(config: pytest.Config) -> list[Path]:
    """The ``durable_script_root`` app, the test paths named on the command line and the rootdir.

    Azurite is looked for in each and in the folders above them (see
    ``emulator.host._azurite.search_places``), so an app's own ``node_modules`` is found however
    pytest was started: from another folder, or with a rootdir that is not the app.
    """
    folders: list[Path] = []
    root = str(config.getini("durable_script_root") or "")
    if root:
        folders.append((config.rootpath / root).resolve())
    for arg in config.args:
        path = Path(arg.split("::", 1)[0])
        if not path.is_absolute():
            path = config.invocation_params.dir / path
        folders.append(path.resolve())
    folders.append(config.rootpath)
    return list(dict.fromkeys(folders))


def session_azurite(config: pytest.Config) -> Path:
    """The Azurite launcher for the session: found near the apps, else installed with npm, which
    then prints its progress on the terminal rather than into pytest's capture."""
    folders = app_folders(config)
    if find_azurite_executable(folders) is not None:
        return find_or_install_azurite(folders)
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.write_line(
                f"durable_emulator: Azurite is not installed; installing Azurite {AZURITE_VERSION} with npm "
                f"into {cache_dir()} (first use only, about a minute)"
            )
        return find_or_install_azurite(folders)
