"""A failed orchestrator, activity or entity operation logs the extension's error line with its reason."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from emulator.testing import BackgroundHost
from tests.support import request, wait_for_status, wait_until


@pytest.fixture
def durable_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.ERROR, logger="emulator.durable"):
        yield caplog


def _failure_line(log: pytest.LogCaptureFixture, instance_id: str, function: str) -> str:
    """The error line about ``function`` of ``instance_id`` (it may follow the status by a moment)."""

    def find() -> str | None:
        prefix = f"{instance_id}: Function '{function}' failed"
        return next((r.getMessage() for r in list(log.records) if r.getMessage().startswith(prefix)), None)

    line: str = wait_until(find)
    return line


def _start(host: BackgroundHost, name: str) -> dict:
    reply = request("POST", f"{host.base_url}/api/start/{name}")
    assert reply.status == 202
    return dict(reply.json())


def test_a_failed_orchestration_logs_its_reason(
    errors_host: BackgroundHost, durable_log: pytest.LogCaptureFixture
) -> None:
    started = _start(errors_host, "RaisesAfterActivity")
    assert wait_for_status(started["statusQueryGetUri"])["runtimeStatus"] == "Failed"
    line = _failure_line(durable_log, started["id"], "RaisesAfterActivity (Orchestrator)")
    assert (
        " failed with an error. Reason: Orchestrator function 'RaisesAfterActivity' failed: "
        "the order total is negative. IsReplay: False. State: Failed. RuntimeStatus: Failed. "
        "HubName: ErrorsHub." in line
    )


def test_a_failed_activity_logs_its_reason_and_task_id(
    errors_host: BackgroundHost, durable_log: pytest.LogCaptureFixture
) -> None:
    started = _start(errors_host, "HandlesActivityFailure")
    assert wait_for_status(started["statusQueryGetUri"])["runtimeStatus"] == "Completed"
    line = _failure_line(durable_log, started["id"], "Explode (Activity)")
    assert " failed with an error. Reason: Activity function 'Explode' failed: KeyError: " in line
    assert "cannot handle bad input" in line and line.endswith("TaskEventId: 0")


def test_a_failed_entity_operation_logs_its_reason(
    errors_host: BackgroundHost, durable_log: pytest.LogCaptureFixture
) -> None:
    started = _start(errors_host, "CallsFailingEntity")
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["output"] == "the ledger cannot post", status
    line = _failure_line(durable_log, f"@ledger@{started['id']}", "Ledger (Entity)")
    assert " failed 'post' operation " in line
    assert " with an error. Reason: the ledger cannot post. IsReplay: False. State: Failed." in line
