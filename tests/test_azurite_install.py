"""Finding Azurite where the app is, and installing the pinned one with npm on first use.

The npm of these tests is a stand-in that "installs" the repository's node_modules (a link to it),
so no test downloads anything; everything around it is the real path: the emulator writes the
manifest, runs npm, finds the launcher in the cache and starts that Azurite.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

import emulator.host._azurite as azurite_module
from emulator.host._azurite import AzuriteNotInstalledError, AzuriteServer, find_azurite_executable
from emulator.host._azurite_install import AZURITE_VERSION, cache_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_AZURITE = REPO_ROOT / "node_modules" / ".bin" / "azurite"

pytestmark = pytest.mark.timeout(120)

FAKE_NPM = """#!{python}
# Stands in for `npm install`: records the call, then links the repository's node_modules.
import json, os, sys
with open({calls!r}, "a") as calls:
    calls.write(os.getcwd() + " " + " ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:2] != ["install"]:
    sys.exit(2)
with open("package.json") as manifest:
    if json.load(manifest)["dependencies"] != {{"azurite": {version!r}}}:
        sys.exit(3)
os.symlink({modules!r}, "node_modules")
print("added 1 package in 0s", file=sys.stderr)
"""


def fake_npm(bin_dir: Path, calls: Path) -> Path:
    """An ``npm`` in ``bin_dir`` that installs by linking the repository's node_modules."""
    body = FAKE_NPM.format(
        python=sys.executable,
        calls=str(calls),
        version=AZURITE_VERSION,
        modules=str(REPO_ROOT / "node_modules"),
    )
    return _script(bin_dir / "npm", body)


def _script(path: Path, body: str) -> Path:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def no_azurite_around(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return hide_azurite(tmp_path, monkeypatch)


def hide_azurite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nowhere to find Azurite: not beside the package, not in the (empty) cache, not on PATH,
    not in the current folder; ``node`` stays on PATH, in the folder returned."""
    node = shutil.which("node")
    assert node is not None and REPO_AZURITE.exists(), "run ./dev setup"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "node").symlink_to(node)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(azurite_module, "REPO_ROOT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    return bin_dir


def test_the_pinned_version_is_the_repository_one() -> None:
    package = json.loads((REPO_ROOT / "package.json").read_text())
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    assert package["dependencies"]["azurite"] == AZURITE_VERSION
    assert lock["packages"]["node_modules/azurite"]["version"] == AZURITE_VERSION


def test_the_cache_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "durable-emulator" / f"azurite-{AZURITE_VERSION}"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "durable-emulator" / f"azurite-{AZURITE_VERSION}"


def test_azurite_is_installed_with_npm_on_first_use_and_then_reused(
    no_azurite_around: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = tmp_path / "npm-calls.txt"
    fake_npm(no_azurite_around, calls)
    assert find_azurite_executable() is None
    with (
        caplog.at_level(logging.INFO, logger="emulator.azurite"),
        AzuriteServer.start(tmp_path / "data") as server,
    ):
        assert server.running and server.endpoints.all_listening()
        args = server.process.args
        assert isinstance(args, list) and Path(args[0]) == cache_dir() / "node_modules" / ".bin" / "azurite"
    assert f"installing Azurite {AZURITE_VERSION} with npm into {cache_dir()}" in caplog.text
    assert "npm installed Azurite" in caplog.text
    # npm ran once, in a staging folder beside the cache entry, which is gone now.
    (staged, arguments) = calls.read_text().strip().split(" ", 1)
    assert Path(staged).parent == cache_dir().parent and arguments.startswith("install")
    assert sorted(p.name for p in cache_dir().parent.iterdir()) == [cache_dir().name]
    # Found in the cache from then on, without npm.
    assert find_azurite_executable() == cache_dir() / "node_modules" / ".bin" / "azurite"
    with AzuriteServer.start(tmp_path / "data") as server:
        assert server.running
    assert len(calls.read_text().splitlines()) == 1


def test_a_failed_npm_install_leaves_nothing_behind(no_azurite_around: Path, tmp_path: Path) -> None:
    _script(no_azurite_around / "npm", "#!/bin/sh\necho 'npm ERR! network unreachable' >&2\nexit 1\n")
    with pytest.raises(AzuriteNotInstalledError, match="failed with exit code 1") as raised:
        AzuriteServer.start(tmp_path / "data", search_roots=[tmp_path / "app"])
    assert f"looked for node_modules/.bin/azurite in {tmp_path / 'site-packages'}" in str(raised.value)
    assert not cache_dir().parent.exists() or not any(cache_dir().parent.iterdir())


def test_without_node_the_message_is_one_line_naming_the_places(
    no_azurite_around: Path, tmp_path: Path
) -> None:
    (no_azurite_around / "node").unlink()
    with pytest.raises(AzuriteNotInstalledError) as raised:
        AzuriteServer.start(tmp_path / "data", search_roots=[tmp_path / "app"])
    message = str(raised.value)
    assert "\n" not in message
    assert "Node.js is not on PATH" in message and "installs Azurite 3.37.0 by itself" in message
    assert f"{tmp_path / 'app'}, {tmp_path} and the folders above them" in message
    assert f"in the cache {cache_dir()}" in message


def test_azurite_is_found_where_the_app_is_whatever_the_current_folder(
    no_azurite_around: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An app with its own Azurite, run from another folder and asked about its tests folder:
    # found the way Node.js finds node_modules, in the folders above.
    app = tmp_path / "app"
    (app / "tests").mkdir(parents=True)
    (app / "node_modules").symlink_to(REPO_ROOT / "node_modules")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert find_azurite_executable() is None
    assert find_azurite_executable([app / "tests"]) == app / "node_modules" / ".bin" / "azurite"
    assert os.access(app / "node_modules" / ".bin" / "azurite", os.X_OK)
