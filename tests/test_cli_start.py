"""``python -m emulator start`` when its storage account does not answer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from emulator.host._azurite import AzuriteEndpoints
from tests.conftest import REPO_ROOT


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(*options: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``python -m emulator start`` on the seed app; its exit code and everything it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "start", "--script-root", str(REPO_ROOT), *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_a_host_whose_storage_does_not_answer_says_so_and_exits() -> None:
    nobody = _closed_port()
    dead = AzuriteEndpoints(blob_port=nobody, queue_port=nobody, table_port=nobody).connection_string
    returncode, output = _start(
        "--port", str(_closed_port()), env={**os.environ, "AzureWebJobsStorage": dead}
    )
    assert returncode == 1, output
    assert "the storage account of AzureWebJobsStorage did not answer" in output
    assert "Traceback" not in output and "Unclosed" not in output


def test_a_grace_period_that_is_not_a_number_of_seconds_is_refused() -> None:
    returncode, output = _start("--stop-grace-seconds", "soon")
    assert returncode == 1, output
    assert "--stop-grace-seconds must be a number of seconds (0 or more), not 'soon'." in output
    assert "Traceback" not in output


def test_a_wildcard_origin_with_credentials_is_refused_as_func_start_refuses_it() -> None:
    nobody = _closed_port()
    dead = AzuriteEndpoints(blob_port=nobody, queue_port=nobody, table_port=nobody).connection_string
    returncode, output = _start(
        "--port",
        str(_closed_port()),
        "--cors",
        "*",
        "--cors-credentials",
        env={**os.environ, "AzureWebJobsStorage": dead},
    )
    assert returncode == 1, output
    assert "The CORS protocol does not allow specifying a wildcard (any) origin and credentials" in output
    assert "Traceback" not in output
