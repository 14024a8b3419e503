"""User code runs with the app folder as its working directory, as the Functions host runs the worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emulator.testing._subprocess import SubprocessHost
from emulator.tools._cli import build_parser
from emulator.tools._durable_cli import run
from tests.conftest import TEST_APPS
from tests.support import request, wait_for_status

CWD_APP = TEST_APPS / "cwd_app"


def test_a_host_started_elsewhere_runs_the_app_in_its_folder(storage_connection: str) -> None:
    assert Path.cwd().resolve() != CWD_APP.resolve()  # started with --script-root from another folder
    with SubprocessHost(CWD_APP, connection_string=storage_connection) as host:
        reply = request("POST", f"{host.base_url}/api/start/ReadDataFile")
        assert reply.status == 202, reply.body
        status = wait_for_status(reply.json()["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {
        "cwd": str(CWD_APP.resolve()),
        "greeting": "Hello from the app folder",
        "at_import": "Hello from the app folder",
    }


def test_durable_start_new_imports_the_app_in_its_folder_and_keeps_the_callers(
    capsys: pytest.CaptureFixture[str], storage_connection: str
) -> None:
    before = os.getcwd()
    args = build_parser().parse_args(
        ["durable", "start-new", "--function-name", "ReadDataFile", "--script-root", str(CWD_APP)]
    )
    code = run(args)
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert out.startswith("Started 'ReadDataFile' at ")
    assert os.getcwd() == before
