"""An app whose host.json selects another durable storage provider runs on the emulator's back end."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from emulator.testing._subprocess import SubprocessHost
from tests.conftest import REPO_ROOT, TEST_APPS
from tests.support import request, wait_for_status

SCHEDULER_APP = TEST_APPS / "scheduler_app"


def _table_names(connection: str) -> set[str]:
    from azure.data.tables import TableServiceClient

    with TableServiceClient.from_connection_string(connection) as service:
        return {table.name for table in service.list_tables()}


def test_a_durable_task_scheduler_app_runs_on_azurite_in_its_task_hub(
    storage_connection: str, tmp_path: Path
) -> None:
    # A scheduler task hub name may hold a hyphen; Azure Storage names may not.
    hub = f"sched-{uuid.uuid4().hex[:8]}"
    stored = hub.replace("-", "")
    log = tmp_path / "host.log"
    with SubprocessHost(
        SCHEDULER_APP, connection_string=storage_connection, env={"TASKHUB_NAME": hub}, log_path=log
    ) as host:
        reply = request("POST", f"{host.base_url}/api/start/Greet", "scheduler")
        assert reply.status == 202, reply.body
        status = wait_for_status(reply.json()["statusQueryGetUri"])
        assert status["runtimeStatus"] == "Completed" and status["output"] == "Hello scheduler!"
        assert f"taskHub={stored}&" in reply.json()["statusQueryGetUri"]
    assert f"{stored}Instances" in _table_names(storage_connection)
    notice = [line for line in log.read_text().splitlines() if "storageProvider type" in line]
    assert len(notice) == 1, log.read_text()
    assert notice[0].endswith(
        "host.json selects the Durable Task Scheduler (storageProvider type 'azureManaged'); the emulator "
        "runs the app unchanged with its durable state in Azure Storage from 'AzureWebJobsStorage', "
        f"task hub '{hub}' (stored as '{stored}'), and does not use "
        "'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'."
    )


def _run_start(script_root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "emulator", "start", "--script-root", str(script_root), "--port", "0"]
    return subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_back_end_that_cannot_start_ends_the_host_with_one_line(tmp_path: Path) -> None:
    # A scheduler connection string where an Azure Storage one belongs: the Tables SDK refuses it.
    done = _run_start(
        REPO_ROOT, {"AzureWebJobsStorage": "Endpoint=http://localhost:8080;Authentication=None"}
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "Could not start the durable back end" in line]
    assert len(errors) == 1, output
    assert errors[0].endswith(
        "Could not start the durable back end on the storage of 'AzureWebJobsStorage' (task hub "
        "'SeedHub'): ValueError: Connection string missing required connection details."
    )
