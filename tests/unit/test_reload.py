"""What ``start --watch`` reloads on and which modules a reload imports afresh."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import watchfiles

from emulator.host._reload import AppFilesFilter, describe_changes, forget_app_modules

ROOT = Path(__file__).resolve().parents[2]  # the seed app, with the emulator's sources beside it


def test_the_filter_takes_the_apps_code_and_settings_only(tmp_path: Path) -> None:
    accepts = AppFilesFilter(tmp_path)
    modified = watchfiles.Change.modified
    for name in (
        "function_app.py",
        "activities/greet.py",
        "host.json",
        "local.settings.json",
        "Hi/function.json",
    ):
        assert accepts(modified, str(tmp_path / name)), name
    for name in ("notes.txt", "__azurite__/x.py", ".venv/lib/site.py", "__pycache__/a.pyc", "data.json"):
        assert not accepts(modified, str(tmp_path / name)), name
    assert not AppFilesFilter(ROOT)(modified, str(ROOT / "emulator" / "host" / "_reload.py"))
    assert AppFilesFilter(ROOT)(modified, str(ROOT / "orchestrators" / "hello.py"))


def test_the_apps_modules_are_forgotten_and_nothing_else(tmp_path: Path) -> None:
    own = ModuleType("watched_helper")
    own.__file__ = str(tmp_path / "watched_helper.py")
    package = ModuleType("watched_pkg")  # a namespace package: a __path__, no __file__
    package.__path__ = [str(tmp_path / "watched_pkg")]
    sys.modules.update(watched_helper=own, watched_pkg=package)
    try:
        forgotten = forget_app_modules(tmp_path)
        assert forgotten == {"watched_helper": own, "watched_pkg": package}
        assert "watched_helper" not in sys.modules and "json" in sys.modules
        assert "emulator.host._reload" in sys.modules and not forget_app_modules(tmp_path)
    finally:
        for name in ("watched_helper", "watched_pkg"):
            sys.modules.pop(name, None)


def test_a_change_is_named_relative_to_the_app(tmp_path: Path) -> None:
    changes = {(watchfiles.Change.modified, str(tmp_path / f"m{i}.py")) for i in range(5)}
    assert describe_changes(changes, tmp_path) == "m0.py, m1.py, m2.py and 2 more changed"
