"""Where a test session's function apps are, for finding the Azurite installed beside them."""

from __future__ import annotations

from pathlib import Path

import pytest


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
