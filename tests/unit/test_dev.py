"""The ``./dev`` script: each command sets up what it needs and no more."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO_ROOT


def _traced(*args: str) -> tuple[str, set[str]]:
    """Run ``./dev`` under ``bash -x``; what it printed and the functions of the script it called."""
    done = subprocess.run(
        ["bash", "-x", str(REPO_ROOT / "dev"), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    called = {line.lstrip("+ ").split()[0] for line in done.stderr.splitlines() if line.startswith("+")}
    return done.stdout, called


@pytest.mark.timeout(300)
def test_start_sets_up_what_running_needs_and_not_the_browser_of_a_test() -> None:
    output, called = _traced("start", "--help")
    assert "--script-root" in output  # the emulator's own help: the command ran to its end
    assert {"setup_python", "setup_node"} <= called
    assert "setup_chromium" not in called


def test_setup_and_test_still_set_up_chromium() -> None:
    # The function bodies, as bash reads them (sourcing runs `./dev help`, which only prints).
    script = f"set -- help; source {REPO_ROOT / 'dev'} >/dev/null; declare -f cmd_setup cmd_test"
    bodies = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    setup, _, test = bodies.partition("cmd_test ()")
    assert "setup_chromium" in setup and "cmd_setup" in test
