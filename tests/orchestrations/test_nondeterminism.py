"""Orchestrators that decide differently on a replay fail as on the real host, live sessions or not."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.durable import _replay_check
from emulator.durable._replay_check import SETTING
from emulator.durable._worker import OrchestratorSession
from emulator.testing import DurableHost, HostConfig
from tests.support import start_orchestration, wait_for_status

APP = Path(__file__).resolve().parents[1] / "apps" / "nondeterminism_app"
HOST_MESSAGE = "Non-Deterministic workflow detected: A previous execution of this orchestration scheduled "


@pytest.fixture(scope="module")
def checked_host(storage_connection: str) -> Iterator[DurableHost]:
    host = DurableHost(HostConfig(APP, task_hub="NondeterminismChecked"), storage_connection).start()
    yield host
    host.stop()


def _run(host: DurableHost, name: str, body: object = None) -> dict[str, object]:
    return wait_for_status(start_orchestration(host.base_url, name, body)["statusQueryGetUri"])


@pytest.mark.parametrize("name", ["RandomBranch", "UuidBranch", "ClockBranch", "EnvironmentBranch"])
def test_a_branch_decided_outside_the_history_fails_the_instance_with_the_hosts_message(
    checked_host: DurableHost, name: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = f"NONDETERMINISM_FLAG_{name.upper()}"
    monkeypatch.setenv(flag, "")  # SetFlag sets it; restored afterwards
    with caplog.at_level(logging.WARNING, logger="emulator.orchestrations"):
        status = _run(checked_host, name, flag)
    assert status["runtimeStatus"] == "Failed"
    output = str(status["output"])
    assert output.startswith(f"Orchestrator function '{name}' failed: {HOST_MESSAGE}"), output
    assert output.endswith(
        "Was a change made to the orchestrator code after this instance had already started running?"
    )
    # The log shows where another run of the code departs from the history, per sequence id.
    report = caplog.text
    assert f"Orchestration '{name}' ({status['instanceId']}) is not deterministic:" in report
    assert f"NONDETERMINISM in '{name}' (instance '{status['instanceId']}')" in report
    assert "  history: TaskScheduled '" in report and "  code:    TaskScheduled '" in report


def test_the_diff_names_the_decision_the_replay_changed(
    checked_host: DurableHost, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NONDETERMINISM_FLAG_DIFF", "")
    with caplog.at_level(logging.WARNING, logger="emulator.orchestrations"):
        status = _run(checked_host, "EnvironmentBranch", "NONDETERMINISM_FLAG_DIFF")
    assert status["output"] == (
        f"Orchestrator function 'EnvironmentBranch' failed: {HOST_MESSAGE}an activity task with sequence "
        "ID 0 named 'SetFlag' (version ''), but the current orchestration replay instead scheduled an "
        "activity task named 'A' with this sequence number. Was a change made to the orchestrator code "
        "after this instance had already started running?"
    )
    assert "    seq 0  history: TaskScheduled 'SetFlag'\n           code:    TaskScheduled 'A'" in caplog.text


def test_the_episode_that_ends_an_execution_is_always_checked(
    checked_host: DurableHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No replay at growing intervals: only the check before the completion is committed.
    monkeypatch.setattr(_replay_check, "REPLAY_GROWTH", 10**9)
    monkeypatch.setenv("NONDETERMINISM_FLAG_LAST", "")
    status = _run(checked_host, "EnvironmentBranch", "NONDETERMINISM_FLAG_LAST")
    assert status["runtimeStatus"] == "Failed"
    expected = f"Orchestrator function 'EnvironmentBranch' failed: {HOST_MESSAGE}"
    assert str(status["output"]).startswith(expected)


def test_a_chain_is_replayed_from_the_start_each_time_its_history_has_doubled_and_at_its_end(
    checked_host: DurableHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    replayed: list[int] = []
    replay = OrchestratorSession._replay

    def spy(session: OrchestratorSession, history: Any, source: Any) -> Any:
        replayed.append(len(history))
        return replay(session, history, source)

    monkeypatch.setattr(OrchestratorSession, "_replay", spy)
    status = _run(checked_host, "Chain", 60)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == sum(range(60))
    # A few replays of growing histories (the last with all 60 results), not one per step.
    assert 3 <= len(replayed) <= 8, replayed
    checks = replayed[:-1]
    assert all(later >= 2 * earlier - 4 for earlier, later in itertools.pairwise(checks)), replayed
    # The last one ran over the whole history: four rows per step (the episode's markers, the
    # result and the next activity), the 60th result included.
    assert replayed[-1] >= 4 * 60


def test_code_guarded_by_is_replaying_runs_once_in_the_episode_that_is_checked(
    checked_host: DurableHost, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    status = _run(checked_host, "NotesOnce", str(notes))
    assert status["runtimeStatus"] == "Completed"
    # The live orchestration ran the last episode, then a replay decided it again.
    assert notes.read_text(encoding="utf-8") == "after 1\n"


def test_deterministic_orchestrations_are_unaffected(checked_host: DurableHost) -> None:
    status = _run(checked_host, "Deterministic")
    assert status["runtimeStatus"] == "Completed", status["output"]
    output = status["output"]
    assert isinstance(output, dict)
    assert output["fan"] == [0, 1, 2, 3, 4]
    assert len(set(output["ids"])) == 2


def test_the_check_can_be_turned_off(storage_connection: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SETTING, "false")
    monkeypatch.setenv("NONDETERMINISM_FLAG_OFF", "")
    host = DurableHost(HostConfig(APP, task_hub="NondeterminismUnchecked"), storage_connection).start()
    try:
        # The live orchestration never runs its code again: what decided the branch goes unseen.
        status = _run(host, "EnvironmentBranch", "NONDETERMINISM_FLAG_OFF")
    finally:
        host.stop()
    assert status["runtimeStatus"] == "Completed", status["output"]
