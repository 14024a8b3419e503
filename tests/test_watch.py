"""``python -m emulator start --watch``: a saved change reloads the app in place, durable state kept.

Each test runs the command on its own copy of tests/apps/watch_app (a task hub of its own, the
session's Azurite), edits the copy as an editor saves it, and watches the host's output.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emulator.testing._subprocess import SubprocessHost
from tests.support import get_status, request, start_orchestration, wait_for_status, wait_until

pytestmark = pytest.mark.timeout(180)

APP = Path(__file__).parent / "apps" / "watch_app"
RELOADED = "Reloaded the app ("


@dataclass
class WatchedApp:
    host: SubprocessHost
    root: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def save(self, name: str, old: str, new: str) -> None:
        """Replace ``old`` by ``new`` in the app's file ``name``, as an editor saves it."""
        path = self.root / name
        text = path.read_text()
        assert old in text, f"{old!r} is not in {name}"
        path.write_text(text.replace(old, new))

    def wait_for_output(self, text: str, count: int = 1, timeout: float = 60.0) -> str:
        """The output once ``text`` appears in it ``count`` times."""
        wait_until(lambda: self.output().count(text) >= count, timeout=timeout, interval=0.1)
        return self.output()

    def hello(self) -> str:
        reply = request("GET", f"{self.host.base_url}/api/hello")
        assert reply.status == 200, reply.body
        return reply.body.decode()


@pytest.fixture
def watched(tmp_path: Path, storage_connection: str) -> Iterator[WatchedApp]:
    root = tmp_path / "app"
    shutil.copytree(APP, root, ignore=shutil.ignore_patterns("__pycache__"))
    hub = f"Watch{uuid.uuid4().hex[:10]}"
    (root / "host.json").write_text(
        json.dumps({"version": "2.0", "extensions": {"durableTask": {"hubName": hub}}})
    )
    log = tmp_path / "host.log"
    host = SubprocessHost(root, connection_string=storage_connection, log_path=log, watch=True)
    with host:
        app = WatchedApp(host, root, log)
        app.wait_for_output("a saved change reloads the app")
        yield app


def _waiting_for_approval(app: WatchedApp) -> dict[str, Any]:
    """Start an Approval instance and wait until it waits for its event, its first activity done."""
    payload = start_orchestration(app.host.base_url, "Approval")

    def first_activity_done() -> bool:
        history = get_status(payload, showHistory=True).json().get("historyEvents") or []
        return any(event["EventType"] == "TaskCompleted" for event in history)

    wait_until(first_activity_done, timeout=60, interval=0.1)
    return payload


def _approve(payload: dict[str, Any]) -> None:
    url = payload["sendEventPostUri"].replace("{eventName}", "Approve")
    assert request("POST", url, "yes").status == 202


def test_an_edit_of_the_apps_own_module_changes_the_http_answer(watched: WatchedApp) -> None:
    assert watched.hello() == "v1"
    watched.save("greetings/__init__.py", '"v1"', '"v2"')
    output = watched.wait_for_output(RELOADED)
    assert watched.hello() == "v2"
    line = next(line for line in output.splitlines() if RELOADED in line)
    assert "greetings/__init__.py changed" in line and line.rstrip().endswith(" s"), line
    # One line per reload: the new host taking the partitions back and watchfiles' own line are not news.
    reload_output = output[output.index("a saved change reloads the app") :]
    assert "now owns" not in reload_output and "change detected" not in reload_output, reload_output
    assert "Traceback" not in output


def test_an_orchestration_waiting_for_an_event_goes_on_on_the_new_code(watched: WatchedApp) -> None:
    payload = _waiting_for_approval(watched)
    watched.save("greetings/__init__.py", '"v1"', '"v2"')
    watched.wait_for_output(RELOADED)
    _approve(payload)
    status = wait_for_status(payload["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed", status
    # The checkpoint's result of the first activity stays; the second ran on the new code.
    assert status["output"] == ["before v1", "yes", "after v2"]


def test_a_syntax_error_keeps_the_host_up_and_the_next_good_save_recovers(watched: WatchedApp) -> None:
    watched.save("greetings/__init__.py", 'TEXT = "v1"', 'TEXT = "v2"\ndef broken(:\n    pass')
    output = watched.wait_for_output("Reload failed (")
    failure = next(line for line in output.splitlines() if "Reload failed (" in line)
    assert f"{watched.root / 'greetings' / '__init__.py'}:4" in failure, failure
    assert "SyntaxError" in failure and "Traceback" not in output
    assert watched.hello() == "v1"  # the previous code still serves
    watched.save("greetings/__init__.py", "def broken(:\n    pass", "")
    watched.wait_for_output(RELOADED)
    assert watched.hello() == "v2"


def test_a_change_that_breaks_replay_fails_the_waiting_instance(watched: WatchedApp) -> None:
    payload = _waiting_for_approval(watched)
    watched.save(
        "function_app.py", 'call_activity("Mark", "before")', "create_timer(context.current_utc_datetime)"
    )
    watched.wait_for_output(RELOADED)
    _approve(payload)
    status = wait_for_status(payload["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Failed", status
    assert "Non-Deterministic workflow detected" in str(status["output"]), status


def test_the_watch_ignores_files_that_are_not_the_apps(watched: WatchedApp) -> None:
    (watched.root / "notes.txt").write_text("not code")
    (watched.root / "__azurite__").mkdir(exist_ok=True)
    (watched.root / "__azurite__" / "data.py").write_text("")
    watched.save("host.json", '"version"', '"version"')  # rewritten: host.json reloads
    output = watched.wait_for_output(RELOADED)
    time.sleep(1)
    assert watched.output().count(RELOADED) == 1, output
    line = next(line for line in output.splitlines() if RELOADED in line)
    assert "(host.json changed)" in line, line
