"""``python -m emulator durable``: the func durable commands against a running and a stopped host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from emulator.testing import BackgroundHost
from emulator.tools._cli import build_parser
from emulator.tools._durable_cli import run
from tests.conftest import REPO_ROOT, TEST_APPS, start_host
from tests.management.api_support import set_runtime_status, start, unique, wait_for

# The durable command line runs in processes of its own, on the task hub in storage.
pytestmark = pytest.mark.azure_storage

CLIENT_APP = TEST_APPS / "client_app"


class Cli:
    """Runs ``durable`` commands in-process, as ``python -m emulator durable ...`` would."""

    def __init__(self, capsys: pytest.CaptureFixture[str], hub: str | None = None) -> None:
        self._capsys = capsys
        self._hub = hub

    def __call__(self, *argv: str, expect: int = 0) -> str:
        extra = ["--script-root", str(CLIENT_APP)] + (["--task-hub-name", self._hub] if self._hub else [])
        args = build_parser().parse_args(["durable", *argv, *extra])
        self._capsys.readouterr()
        code = run(args)
        out, err = self._capsys.readouterr()
        assert code == expect, f"exit code {code}: {out}{err}"
        return out if expect == 0 else err

    def json(self, *argv: str) -> Any:
        return json.loads(self(*argv, "--json"))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], storage_connection: str) -> Cli:
    return Cli(capsys)


# -- against the running client_host (task hub ClientHub) -----------------------------------------


def test_start_new_with_inline_and_file_input(client_host: BackgroundHost, cli: Cli, tmp_path: Path) -> None:
    instance_id = unique("cli")
    out = cli("start-new", "--function-name", "Echo", "--id", instance_id, "--input", '{"inline": 1}')
    assert out.startswith("Started 'Echo' at ") and out.rstrip().endswith(f"Instance ID: '{instance_id}'.")
    # An in-line input is a string (Core Tools passes it on as is); the SDK parses it again.
    assert wait_for(client_host, instance_id, "Completed")["output"] == {"inline": 1}

    data = tmp_path / "input.json"
    data.write_text('{"from": "file"}', encoding="utf-8")
    started = cli.json("start-new", "--function-name", "Echo", "--input", f"@{data}")
    assert started["status"]["runtimeStatus"] == "Pending"
    assert wait_for(client_host, started["id"], "Completed")["output"] == {"from": "file"}
    assert "Could not find input file" in cli(
        "start-new", "--function-name", "Echo", "--input", "@missing.json", expect=1
    )


def test_get_runtime_status_and_get_history(client_host: BackgroundHost, cli: Cli) -> None:
    instance_id = start(client_host, "Echo", {"h": 1})["id"]
    wait_for(client_host, instance_id, "Completed")
    out = cli("get-runtime-status", "--id", instance_id)
    assert "Runtime status: Completed" in out and "Name:           Echo" in out
    assert "Input:" not in out and "Output:" not in out
    shown = cli("get-runtime-status", "--id", instance_id, "--show-input", "--show-output", "true")
    assert 'Input:          {"h": 1}' in shown and 'Output:         {"h": 1}' in shown
    status = cli.json("get-runtime-status", "--id", instance_id, "--show-output")
    assert status["instanceId"] == instance_id and status["output"] == {"h": 1} and status["input"] is None
    assert "Could not find an orchestration instance with id 'nobody'" in cli(
        "get-runtime-status", "--id", "nobody", expect=1
    )

    history = cli.json("get-history", "--id", instance_id)
    kinds = [e["EventType"] for e in history]
    assert kinds[:2] == ["OrchestratorStarted", "ExecutionStarted"] and "ExecutionCompleted" in kinds
    table = cli("get-history", "--id", instance_id)
    assert table.splitlines()[0].split() == ["Timestamp", "EventType", "EventId", "Detail"]
    assert "Name=Identity" in table and "OrchestrationStatus=Completed" in table


def test_get_instances_pages_and_filters(client_host: BackgroundHost, cli: Cli) -> None:
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    ids = [start(client_host, "Echo", {"i": i})["id"] for i in range(3)]
    for instance_id in ids:
        wait_for(client_host, instance_id, "Completed")
    after = since.isoformat()
    seen: list[str] = []
    token: str | None = None
    while True:
        extra = ["--continuation-token", token] if token else []
        page = cli.json("get-instances", "--created-after", after, "--top", "2", *extra)
        seen += [s["instanceId"] for s in page["instances"]]
        token = page["continuationToken"]
        if token is None:
            break
    assert set(ids) <= set(seen)
    completed = cli.json(
        "get-instances", "--created-after", after, "--runtime-status", "completed", "running"
    )
    assert set(ids) <= {s["instanceId"] for s in completed["instances"]}
    assert all(s["runtimeStatus"] in ("Completed", "Running") for s in completed["instances"])
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert cli.json("get-instances", "--created-after", future)["instances"] == []
    table = cli("get-instances", "--created-after", after, "--top", "1")
    assert "Continuation token for next set of results: '" in table
    with pytest.raises(SystemExit):
        build_parser().parse_args(["durable", "get-instances", "--runtime-status", "finished"])


def test_raise_event_terminate_suspend_and_resume(client_host: BackgroundHost, cli: Cli) -> None:
    waiting = start(client_host, "WaitForApproval")["id"]
    wait_for(client_host, waiting, "Running")
    out = cli("raise-event", "--id", waiting, "--event-name", "Approval", "--event-data", '{"by": "cli"}')
    assert out.strip() == f"Raised event 'Approval' to instance '{waiting}'."
    # In-line event data is a string, as with func durable.
    assert wait_for(client_host, waiting, "Completed")["output"] == {"approval": '{"by": "cli"}'}
    assert "has already finished" in cli("raise-event", "--id", waiting, "--event-data", "1", expect=1)

    sleeper = start(client_host, "Sleeper")["id"]
    wait_for(client_host, sleeper, "Running")
    assert cli("suspend", "--id", sleeper, "--reason", "pause").strip() == (
        f"Sent a suspend message to instance '{sleeper}'."
    )
    set_runtime_status(client_host, sleeper, "Suspended")
    assert "because instance is in the Suspended state" in cli("suspend", "--id", sleeper, expect=1)
    assert cli.json("resume", "--id", sleeper) == {"instanceId": sleeper, "operation": "resume"}
    assert cli("terminate", "--id", sleeper, "--reason", "done").strip() == (
        f"Sent a termination message to instance '{sleeper}'."
    )
    assert cli("terminate", "--id", "nobody", expect=1).strip() == (
        "error: Failed to find instance 'nobody'. No instance was terminated."
    )


def test_rewind(client_host: BackgroundHost, cli: Cli) -> None:
    instance_id = start(client_host, "FailsOnce", {"key": unique("cli-rewind")})["id"]
    wait_for(client_host, instance_id, "Failed")
    out = cli("rewind", "--id", instance_id, "--reason", "try again")
    assert out.splitlines() == [
        f"Rewind message sent to instance '{instance_id}'.",
        "Status before rewind: Failed",
        "Status after rewind: Pending",
    ]
    done = start(client_host, "Echo", {})["id"]
    wait_for(client_host, done, "Completed")
    assert "Orchestration instance not rewound. Must have a status of 'Failed'" in cli(
        "rewind", "--id", done, expect=1
    )


def test_purge_history(client_host: BackgroundHost, cli: Cli) -> None:
    window_start = datetime.now(timezone.utc) - timedelta(milliseconds=1)
    ids = [start(client_host, "Echo", {"p": i})["id"] for i in range(2)]
    window_end = datetime.now(timezone.utc) + timedelta(milliseconds=1)
    for instance_id in ids:
        wait_for(client_host, instance_id, "Completed")
    out = cli(
        "purge-history",
        "--created-after",
        window_start.isoformat(),
        "--created-before",
        window_end.isoformat(),
        "--runtime-status",
        "completed",
    )
    lines = out.splitlines()
    assert lines[0].startswith("Purged orchestration history for all instances created between '")
    assert lines[0].endswith(" and whose runtime status matched one of the following: [Completed]")
    assert lines[1] == "Instances deleted: 2"
    assert int(lines[2].removeprefix("Rows deleted: ")) >= 2 * 6
    assert "Could not find" in cli("get-runtime-status", "--id", ids[0], expect=1)


def test_the_module_entry_point_prints_json_on_stdout_and_nothing_else(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    instance_id = start(client_host, "Echo", {"sub": "process"})["id"]
    wait_for(client_host, instance_id, "Completed")
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "durable", "get-runtime-status", "--id", instance_id, "--json"],
        cwd=CLIENT_APP,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env_with_repo_on_path(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runtimeStatus"] == "Completed"


def _env_with_repo_on_path() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def test_the_storage_setting_and_task_hub_can_be_named(cli: Cli) -> None:
    message = cli("get-instances", "--connection-string-setting", "NoSuchSetting", expect=1)
    assert message.strip() == (
        "error: The storage connection setting 'NoSuchSetting' is not defined in local.settings.json "
        '"Values" or in the environment.'
    )
    assert "The task hub 'NoHubHere' does not exist" in cli(
        "get-instances", "--task-hub-name", "NoHubHere", expect=1
    )


def _one_line_error(text: str) -> str:
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert text.startswith("error: "), text
    return text[len("error: ") : -1]


def test_start_new_refuses_what_could_not_run_and_starts_nothing(
    capsys: pytest.CaptureFixture[str], storage_connection: str, later_hub: str, tmp_path: Path
) -> None:
    cli = Cli(capsys, hub=later_hub)
    not_json = "Could not deserialize the input to the orchestration instance into a valid JSON object"
    refused = cli("start-new", "--function-name", "Echo", "--input", "{not json", expect=1)
    assert _one_line_error(refused).startswith(f"{not_json} (Expecting property name")
    assert "quote a string input" in refused
    bad_file = tmp_path / "bad.json"
    bad_file.write_text("{'single': quotes}", encoding="utf-8")
    refused = cli("start-new", "--function-name", "Echo", "--input", f"@{bad_file}", expect=1)
    assert _one_line_error(refused).startswith(f"{not_json} (the file '{bad_file}': ")
    refused = cli("raise-event", "--id", "anyone", "--event-data", f"@{bad_file}", expect=1)
    assert _one_line_error(refused).startswith(f"{not_json} (the file '{bad_file}': ")
    refused = cli("start-new", "--function-name", "Echo", "--id", "a/b", expect=1)
    assert _one_line_error(refused).endswith("must not contain /, \\, #, ?, or control characters.')")
    refused = cli("start-new", "--function-name", "NoSuchOrchestrator", expect=1)
    assert _one_line_error(refused).startswith(
        "The function 'NoSuchOrchestrator' doesn't exist, is disabled, or is not an orchestrator "
        "function. Additional info: The following are the known orchestrator functions: '"
    )
    # None of them touched storage: the task hub was not even created.
    assert "does not exist" in cli("get-instances", expect=1)
    # A JSON string in-line, and the orchestrator's name in any case, are what the host takes.
    started = cli.json("start-new", "--function-name", "echo", "--input", '"text"')
    assert started["status"]["name"] == "Echo"
    assert cli("delete-task-hub").strip() == f"Task hub '{later_hub}' successfully deleted."


def test_an_invalid_task_hub_name_is_refused_in_one_line(cli: Cli) -> None:
    for command in (["get-instances"], ["start-new", "--function-name", "Echo"]):
        refused = cli(*command, "--task-hub-name", "bad!hub", expect=1)
        assert _one_line_error(refused) == (
            "Task hub name 'bad!hub' should contain only alphanumeric characters, start with a letter, "
            "and have length between 3 and 45."
        )


# -- against a stopped host ----------------------------------------------------------------------------


@pytest.fixture
def later_hub(monkeypatch: pytest.MonkeyPatch, storage_connection: str) -> Iterator[str]:
    hub = f"CliLater{unique('h').split('-')[1][:6]}"
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__durableTask__hubName", hub)
    yield hub


def test_commands_work_without_a_host_and_a_later_start_runs_the_instance(
    capsys: pytest.CaptureFixture[str], storage_connection: str, later_hub: str
) -> None:
    cli = Cli(capsys, hub=later_hub)
    assert "does not exist" in cli("get-instances", expect=1)
    started = cli.json("start-new", "--function-name", "Echo", "--input", '{"later": true}')
    instance_id = started["id"]
    assert cli.json("get-runtime-status", "--id", instance_id)["runtimeStatus"] == "Pending"
    assert [s["instanceId"] for s in cli.json("get-instances")["instances"]] == [instance_id]

    host = start_host(CLIENT_APP, storage_connection)
    try:
        assert host.host.storage is not None and host.host.storage.name == later_hub
        assert wait_for(host, instance_id, "Completed")["output"] == {"later": True}
    finally:
        host.stop()

    assert cli.json("get-runtime-status", "--id", instance_id, "--show-output")["output"] == {"later": True}
    assert cli("delete-task-hub").strip() == f"Task hub '{later_hub}' successfully deleted."
    assert "does not exist" in cli("get-instances", expect=1)
