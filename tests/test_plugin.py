"""The pytest plugin as users meet it: entry point, fixtures, time control and crash injection."""

from __future__ import annotations

import itertools
import os
import re
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import pytest

from emulator.host._azurite_install import cache_dir
from emulator.testing import DurableHost, DurableHostFactory, DurableHosts, assert_replays
from emulator.testing._app_folders import app_folders
from tests.conftest import REPO_ROOT, TEST_APPS
from tests.test_azurite_install import fake_npm, hide_azurite

pytest_plugins = ["pytester"]

PLUGIN_APP = TEST_APPS / "plugin_app"
COMPLETED = df.OrchestrationRuntimeStatus.Completed
on_plugin_app = pytest.mark.durable_host(str(PLUGIN_APP))
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def _gaps(times: list[str]) -> list[float]:
    moments = [datetime.fromisoformat(t) for t in times]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(moments)]


# -- discovery -----------------------------------------------------------------------------------


def test_the_entry_point_registers_fixtures_options_and_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    fixtures = pytester.runpytest("--fixtures").stdout.str()
    for fixture in (
        "durable_azurite",
        "durable_storage_connection",
        "durable_hosts",
        "durable_host",
        "durable_client",
        "durable_host_factory",
    ):
        assert re.search(rf"^{fixture}( \[session scope\])? -- ", fixtures, re.MULTILINE), fixture
    markers = pytester.runpytest("--markers").stdout.str()
    assert (
        "@pytest.mark.durable_host(script_root=None, subprocess=False, task_hub=None, storage=None" in markers
    )
    options = pytester.runpytest("--help").stdout.str()
    for option in (
        "durable_script_root",
        "durable_subprocess",
        "durable_task_hub",
        "durable_connection",
        "durable_session_task_hubs",
        "--task-hub={azure,memory}",
        "--durable-connection=CONNECTION_STRING_OR_SETTING",
    ):
        assert option in options, option


def test_a_user_project_needs_nothing_but_the_installed_package(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An app folder with its tests and no conftest: the plugin finds the app at the rootdir.

    Without a node_modules beside the package (a non-editable install), the pinned Azurite is
    installed into an empty user cache by an npm that links the repository's node_modules."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_npm(bin_dir, tmp_path / "npm-calls.txt")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    pytester.makeini(INI)
    pytester.makefile(".json", host='{"version": "2.0"}')
    pytester.makepyfile(
        function_app=textwrap.dedent(
            """
            import azure.durable_functions as df

            app = df.DFApp()

            @app.activity_trigger(input_name="name")
            def Shout(name: str) -> str:
                return name.upper()

            @app.orchestration_trigger(context_name="context")
            def Loud(context):
                return (yield context.call_activity("Shout", context.get_input()))
            """
        ),
        test_app=textwrap.dedent(
            """
            def test_loud(durable_host, durable_client):
                status = durable_host.run_orchestration("Loud", "hi")
                assert status.output == "HI"
                assert durable_host.config.script_root == durable_host.config.script_root.cwd()
                assert durable_client.__class__.__name__ == "DurableOrchestrationClient"

            def test_factory(durable_host_factory, durable_host):
                own = durable_host_factory()
                assert own.hub_name != durable_host.hub_name
                assert own.run_orchestration("Loud", "x").output == "X"
            """
        ),
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=2)


def test_the_plugin_installs_azurite_on_first_use_and_says_so_on_the_terminal(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir = hide_azurite(tmp_path, monkeypatch)
    calls = fake_npm(bin_dir, tmp_path / "npm-calls.txt")
    monkeypatch.chdir(pytester.path)
    pytester.makeini(INI)
    pytester.makepyfile(
        test_storage="def test_azurite(durable_azurite):\n    assert durable_azurite.running\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider")  # in this process, where Azurite is hidden
    result.assert_outcomes(passed=1)
    said = "durable_emulator: Azurite is not installed; installing Azurite 3.37.0 with npm into"
    result.stdout.fnmatch_lines([f"{said} {cache_dir()} (first use only*"])
    assert calls.is_file()


def test_azurite_is_looked_for_where_the_app_and_its_tests_are(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "durable_script_root = app\n")
    (pytester.path / "app" / "tests").mkdir(parents=True)
    config = pytester.parseconfig("app/tests/test_x.py::test_one", str(pytester.path / "other"))
    assert app_folders(config) == [
        pytester.path / "app",
        pytester.path / "app" / "tests" / "test_x.py",
        pytester.path / "other",
        config.rootpath,
    ]


# -- hosts ---------------------------------------------------------------------------------------


def test_shared_hosts_are_reused_per_configuration(durable_hosts: DurableHosts) -> None:
    first = durable_hosts.shared(PLUGIN_APP)
    assert durable_hosts.shared(str(PLUGIN_APP)) is first
    assert first.hub_name == "PluginHub"
    other = durable_hosts.shared(PLUGIN_APP, lease_seconds=30)
    # One shared host per app: another configuration replaces it.
    assert other is not first and not first.alive and other.alive
    assert durable_hosts.shared(PLUGIN_APP) is not other
    assert not other.alive


def test_host_options_are_checked(durable_hosts: DurableHosts) -> None:
    with pytest.raises(TypeError, match="unknown host option"):
        durable_hosts.shared(PLUGIN_APP, lease=3)
    with pytest.raises(ValueError, match="subprocess"):
        durable_hosts.shared(PLUGIN_APP, crash_at="activity-after-run")


@on_plugin_app
def test_the_marker_picks_the_app(durable_host: DurableHost) -> None:
    assert durable_host.config.script_root == PLUGIN_APP
    status = durable_host.run_orchestration("Greet", ["ann", "bo"])
    assert status.runtime_status == COMPLETED
    assert status.output == ["Hello ann", "Hello bo"]


def test_without_a_marker_the_host_runs_the_rootdir_app(durable_host: DurableHost) -> None:
    assert durable_host.config.script_root == REPO_ROOT
    assert durable_host.hub_name == "SeedHub"


@on_plugin_app
def test_the_client_fixture_is_the_sdks_own(durable_host: DurableHost, durable_client: Any) -> None:
    assert isinstance(durable_client, df.DurableOrchestrationClient)
    instance_id = durable_host.call(durable_client.start_new("WaitForApproval"))
    # The SDK client sends event data JSON-encoded once more: the orchestrator gets that text.
    durable_host.call(durable_client.raise_event(instance_id, "Approval", "yes"))
    assert durable_host.wait_for(instance_id).output == 'answer: "yes"'
    status = durable_host.call(durable_client.get_status(instance_id))
    assert status.runtime_status == COMPLETED


@on_plugin_app
def test_the_history_helper_gives_the_get_history_shape(durable_host: DurableHost, tmp_path: Path) -> None:
    instance_id = durable_host.run_orchestration("Greet", ["x"]).instance_id
    history = durable_host.history(instance_id)
    assert [e["EventType"] for e in history] == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
        "OrchestratorCompleted",
        "OrchestratorStarted",
        "TaskCompleted",
        "ExecutionCompleted",
        "OrchestratorCompleted",
    ]
    assert history[-2]["OrchestrationStatus"] == "Completed"
    saved = durable_host.save_history(instance_id, tmp_path / "golden" / "greet.json")
    assert_replays(saved, script_root=PLUGIN_APP)


@on_plugin_app
def test_wait_for_times_out_with_the_status(durable_host: DurableHost) -> None:
    instance_id = durable_host.start_orchestration("WaitForApproval")
    with pytest.raises(TimeoutError, match="still Running"):
        durable_host.wait_for(instance_id, timeout=0.3)
    durable_host.raise_event(instance_id, "Approval", "no")
    assert durable_host.wait_for(instance_id).output == "answer: no"


# -- durable time --------------------------------------------------------------------------------


@on_plugin_app
def test_skipping_timers_runs_five_minutes_of_timers_in_a_moment(durable_host: DurableHost) -> None:
    began = time.monotonic()
    status = durable_host.run_orchestration("Reminders", {"count": 5, "minutes": 1}, skip_timers=True)
    elapsed = time.monotonic() - began
    assert status.output["greeting"] == "Hello after the timers"
    gaps = _gaps(status.output["seen"])
    assert len(gaps) == 5 and all(gap >= 60 for gap in gaps)
    assert elapsed < 5, f"five 1-minute timers took {elapsed:.1f} s of wall time"


@on_plugin_app
def test_skipping_timers_looks_into_sub_orchestrations(durable_host: DurableHost) -> None:
    status = durable_host.run_orchestration(
        "RemindersInChild", {"count": 2, "minutes": 30}, skip_timers=True, timeout=15
    )
    assert status.output == "Hello after the timers"


@on_plugin_app
def test_time_moves_only_when_told(durable_host: DurableHost) -> None:
    instance_id = durable_host.start_orchestration("Reminders", {"count": 1, "minutes": 10})
    deadline = time.monotonic() + 30
    while not any(e["EventType"] == "TimerCreated" for e in durable_host.history(instance_id)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    assert durable_host.get_status(instance_id).runtime_status == df.OrchestrationRuntimeStatus.Running
    before = durable_host.now()
    durable_host.advance_time(timedelta(minutes=10))
    assert durable_host.now() - before >= timedelta(minutes=10)
    status = durable_host.wait_for(instance_id, timeout=15)
    assert _gaps(status.output["seen"])[0] >= 600


@pytest.mark.azure_storage
def test_time_control_needs_an_in_process_host(durable_host_factory: DurableHostFactory) -> None:
    host = durable_host_factory(PLUGIN_APP, subprocess=True)
    with pytest.raises(RuntimeError, match="in-process"):
        host.advance_time(60)
    with pytest.raises(RuntimeError, match="in-process"):
        host.wait_for("anything", skip_timers=True)


# -- crashes -------------------------------------------------------------------------------------


# Activities take a while, so the kill finds the orchestration's own checkpoint complete, and a
# kill polled from outside lands before the first activity finishes even on a loaded machine.
SLOW_HELLO = {"HELLO_DELAY_SECONDS": "1.5"}


@pytest.mark.azure_storage
def test_a_host_killed_by_the_crash_switch_finishes_after_a_restart(
    durable_host_factory: DurableHostFactory,
) -> None:
    host = durable_host_factory(PLUGIN_APP, subprocess=True, crash_at="activity-after-run", env=SLOW_HELLO)
    instance_id = host.start_orchestration("Greet", ["a", "b"])
    assert host.wait_exit(timeout=60) == -9
    assert "Crash switch: killing the host at 'activity-after-run'" in host.log_text()
    host.restart()
    assert host.wait_for(instance_id).output == ["Hello a", "Hello b"]


@pytest.mark.azure_storage
def test_kill_when_stops_the_host_at_a_chosen_point_of_an_instance(
    durable_host_factory: DurableHostFactory,
) -> None:
    host = durable_host_factory(PLUGIN_APP, subprocess=True, env=SLOW_HELLO)
    instance_id = host.start_orchestration("Greet", ["a", "b", "c"])
    seen = host.kill_when(
        instance_id, lambda history: any(e["EventType"] == "TaskScheduled" for e in history)
    )
    assert not host.alive
    assert not any(e["EventType"] == "TaskCompleted" for e in seen)
    host.restart()
    assert host.wait_for(instance_id).output == ["Hello a", "Hello b", "Hello c"]


def test_factory_hosts_get_fresh_task_hubs_and_stop_with_the_test(durable_hosts: DurableHosts) -> None:
    factory = DurableHostFactory(durable_hosts)
    first, second = factory(PLUGIN_APP), factory(PLUGIN_APP)
    named = factory(PLUGIN_APP, task_hub="PluginShared")
    assert len({first.hub_name, second.hub_name, "PluginHub"}) == 3
    assert first.hub_name.startswith("PluginHubT")
    assert named.hub_name == "PluginShared"
    assert first.run_orchestration("Greet", ["z"]).output == ["Hello z"]
    factory.stop_all()
    assert not any(host.alive for host in (first, second, named))


@pytest.mark.azure_storage
@pytest.mark.durable_host(str(PLUGIN_APP), subprocess=True)
def test_the_marker_can_ask_for_a_subprocess_host(durable_host: DurableHost) -> None:
    assert durable_host.process is not None and durable_host.background is None
    assert durable_host.run_orchestration("Greet", ["p"]).output == ["Hello p"]
