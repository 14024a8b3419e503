"""Where the plugin's hosts keep their task hubs: in memory without Node, Azurite, or storage of the
user's own; and task hubs of the session's own, so a development host on the same app takes none
of a test session's work."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# Imported here, not in the tests: pytester drops the modules a test imports when it ends.
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from emulator.host._azurite import AzuriteServer
from emulator.taskhub.azure import open_task_hub
from emulator.testing import DurableHost, HostConfig
from emulator.testing._memory_hubs import MEMORY_CONNECTION
from emulator.testing.plugin import TASK_HUB_VARIABLE, storage_kind
from tests.plugin_loop_project import APP, PROCESS_LOG_CONFTEST, TESTS

pytest_plugins = ["pytester"]

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
HOST_JSON = '{"version": "2.0", "extensions": {"durableTask": {"hubName": "%s"}}}'
NODE_TOOLS = ("node", "npm", "npx", "azurite")


def _path_without_node() -> str:
    """PATH less every folder that holds Node, npm or Azurite."""
    folders = os.environ["PATH"].split(os.pathsep)
    kept = [f for f in folders if f and not any((Path(f) / tool).exists() for tool in NODE_TOOLS)]
    assert shutil.which("node", path=os.pathsep.join(kept)) is None
    return os.pathsep.join(kept)


def _user_project(pytester: pytest.Pytester, ini: str, hub: str = "LoopHub") -> None:
    pytester.makeini(INI + ini)
    pytester.makefile(".json", host=HOST_JSON % hub)
    pytester.makepyfile(function_app=APP)


# -- without Node --------------------------------------------------------------------------------


def test_twenty_orchestration_tests_pass_on_in_memory_task_hubs_without_node(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, record_property: Callable[[str, object], None]
) -> None:
    """The ini setting alone: fan-out, skipped timers, events, entities, retries, and no Azurite."""
    _user_project(pytester, "durable_task_hub = memory\n")
    pytester.makeconftest(PROCESS_LOG_CONFTEST)
    pytester.makepyfile(test_loop=TESTS)
    processes = pytester.path / "processes.log"
    monkeypatch.setenv("PROCESS_LOG", str(processes))
    monkeypatch.setenv("PATH", _path_without_node())
    monkeypatch.delenv(TASK_HUB_VARIABLE, raising=False)
    began = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)
    elapsed = time.monotonic() - began
    record_property("wall_seconds", round(elapsed, 1))
    print(f"20 orchestration tests on in-memory task hubs, without Node: {elapsed:.1f} s")
    result.assert_outcomes(passed=20)
    started = processes.read_text() if processes.exists() else ""
    assert not re.search("node|azurite|npm", started, re.IGNORECASE), started


def test_a_subprocess_host_on_in_memory_task_hubs_is_refused_in_one_line(pytester: pytest.Pytester) -> None:
    _user_project(pytester, "durable_task_hub = memory\n")
    pytester.makepyfile(
        test_crash="""
        import pytest

        @pytest.mark.durable_host(subprocess=True)
        def test_marker(durable_host):
            pass

        def test_factory(durable_host_factory):
            durable_host_factory(subprocess=True, crash_at="activity-after-run")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(errors=1, failed=1)
    said = (
        "subprocess=True (and crash_at=) needs Azure Storage: a host in another process cannot share "
        "this process's in-memory task hub (use --task-hub=azure or storage='azure')"
    )
    output = result.stdout.str()
    assert output.count(said) >= 2, output
    assert "Traceback" not in output and "HostOptionError" not in output


def test_the_option_the_variable_and_the_ini_setting_choose_in_that_order(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TASK_HUB_VARIABLE, raising=False)
    pytester.makeini(INI)
    assert storage_kind(pytester.parseconfig()) == "azure"  # the default
    pytester.makeini(INI + "durable_task_hub = memory\n")
    assert storage_kind(pytester.parseconfig()) == "memory"
    assert storage_kind(pytester.parseconfig("--task-hub=azure")) == "azure"
    monkeypatch.setenv(TASK_HUB_VARIABLE, "azure")
    assert storage_kind(pytester.parseconfig()) == "azure"
    assert storage_kind(pytester.parseconfig("--task-hub=memory")) == "memory"
    monkeypatch.delenv(TASK_HUB_VARIABLE)
    pytester.makeini(INI + "durable_task_hub = disk\n")
    with pytest.raises(pytest.UsageError, match="durable_task_hub = disk: choose one of azure, memory"):
        storage_kind(pytester.parseconfig())


# -- your own storage, and the marker's storage= ----------------------------------------------------


def test_the_plugin_uses_storage_of_your_own_and_the_marker_picks_memory_per_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, durable_azurite: AzuriteServer
) -> None:
    """``--durable-connection`` names a setting holding this suite's Azurite: the session starts no
    Azurite of its own, and ``storage="memory"`` moves one test to an in-memory task hub."""
    _user_project(pytester, "")
    monkeypatch.delenv(TASK_HUB_VARIABLE, raising=False)
    monkeypatch.setenv("MY_TEST_STORAGE", durable_azurite.connection_string)
    monkeypatch.setenv("EXPECTED_STORAGE", durable_azurite.connection_string)
    pytester.makepyfile(
        test_storage=f"""
        import os
        import pytest

        def test_on_your_storage(durable_host, durable_storage_connection):
            assert durable_storage_connection == os.environ["EXPECTED_STORAGE"]
            assert os.environ["AzureWebJobsStorage"] == os.environ["EXPECTED_STORAGE"]
            assert durable_host.connection_string == os.environ["EXPECTED_STORAGE"]
            assert durable_host.run_orchestration("FanOut", ["a"]).output == ["Hello a"]

        @pytest.mark.durable_host(storage="azure")
        def test_on_azure(durable_host):
            assert durable_host.connection_string == os.environ["EXPECTED_STORAGE"]

        @pytest.mark.durable_host(storage="memory")
        def test_in_memory(durable_host):
            assert durable_host.connection_string == {MEMORY_CONNECTION!r}
            assert durable_host.run_orchestration("FanOut", ["m"]).output == ["Hello m"]
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--durable-connection=MY_TEST_STORAGE", "--setup-show", timeout=240
    )
    result.assert_outcomes(passed=3)
    assert "durable_azurite" not in result.stdout.str()
    # On an in-memory session, storage="azure" takes the storage given.
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--task-hub=memory",
        "--durable-connection=MY_TEST_STORAGE",
        "-k",
        "azure or memory",
    )
    result.assert_outcomes(passed=2, deselected=1)
    # The same through the ini setting, with the connection string itself.
    pytester.makeini(INI + f"durable_connection = {durable_azurite.connection_string}\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--setup-show", timeout=240)
    result.assert_outcomes(passed=3)
    assert "durable_azurite" not in result.stdout.str()


# -- isolated task hubs ----------------------------------------------------------------------------


ISOLATED_TEST = """
import json
import os
import sys
import textwrap
import time

def test_a_timer(durable_host):
    began = time.monotonic()
    status = durable_host.run_orchestration(
        "Reminders", {"count": 1, "minutes": 1}, skip_timers=True, timeout=20
    )
    assert status.output >= 60
    with open(os.environ["SEEN"], "w") as seen:
        json.dump({"hub": durable_host.hub_name, "id": status.instance_id,
                   "seconds": time.monotonic() - began}, seen)
"""


def test_a_session_runs_on_a_task_hub_of_its_own_beside_a_development_host(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, durable_azurite: AzuriteServer
) -> None:
    """A development host on the app's own task hub (same app, same Azurite) takes none of the
    session's instances; the session's task hub is deleted when it ends."""
    connection = durable_azurite.connection_string
    _user_project(pytester, "", hub="DevLoopHub")
    pytester.makepyfile(test_timer=ISOLATED_TEST)
    seen = pytester.path / "seen.json"
    monkeypatch.setenv("SEEN", str(seen))
    monkeypatch.delenv(TASK_HUB_VARIABLE, raising=False)
    with DurableHost(HostConfig(pytester.path), connection).start() as development:
        assert development.hub_name == "DevLoopHub"
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", f"--durable-connection={connection}", timeout=240
        )
        result.assert_outcomes(passed=1)
        ran = json.loads(seen.read_text())
        assert re.fullmatch(r"test[0-9a-f]{8}", ran["hub"]), ran
        assert ran["seconds"] < 20
        # The development host's task hub never saw the session's instance.
        assert development.run_orchestration("FanOut", ["dev"]).output == ["Hello dev"]
        assert not _instance_in(connection, "DevLoopHub", ran["id"])
    assert _storage_of(connection, ran["hub"]) == [], "the session's task hub is left behind"
    assert len(_storage_of(connection, "DevLoopHub")) == 3 + 2 + 5  # the app's own hub stays


def test_the_marker_can_name_the_task_hub_which_the_session_keeps(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, durable_azurite: AzuriteServer
) -> None:
    connection = durable_azurite.connection_string
    _user_project(pytester, "")
    monkeypatch.delenv(TASK_HUB_VARIABLE, raising=False)
    pytester.makepyfile(
        test_named="""
        import pytest

        @pytest.mark.durable_host(task_hub="KeptLoopHub")
        def test_named(durable_host):
            assert durable_host.hub_name == "KeptLoopHub"
            assert durable_host.run_orchestration("FanOut", ["k"]).output == ["Hello k"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--durable-connection={connection}")
    result.assert_outcomes(passed=1)
    assert "table KeptLoopHubInstances" in _storage_of(connection, "KeptLoopHub")


def _storage_of(connection: str, hub: str) -> list[str]:
    """The task hub's tables, queues and blob containers."""
    prefix = hub.lower()
    with TableServiceClient.from_connection_string(connection) as tables:
        found = [f"table {t.name}" for t in tables.list_tables() if t.name.lower().startswith(prefix)]
    with QueueServiceClient.from_connection_string(connection) as queues:
        found += [f"queue {q.name}" for q in queues.list_queues(name_starts_with=prefix)]
    with BlobServiceClient.from_connection_string(connection) as blobs:
        found += [f"container {c.name}" for c in blobs.list_containers(name_starts_with=prefix)]
    return sorted(found)


def _instance_in(connection: str, hub: str, instance_id: str) -> bool:
    async def read() -> bool:
        task_hub = open_task_hub(connection, hub)
        try:
            return await task_hub.read_instance(instance_id) is not None
        finally:
            await task_hub.close()

    return asyncio.run(read())


# -- breakpoint() ---------------------------------------------------------------------------------


def test_breakpoint_in_an_activity_stops_an_in_process_host_under_pytest(pytester: pytest.Pytester) -> None:
    """pytest suspends its capture while pdb's prompt is open: no ``-s`` needed."""
    _user_project(pytester, "durable_task_hub = memory\n")
    pytester.makepyfile(
        test_debug="""
        def test_stops(durable_host):
            assert durable_host.run_orchestration("Debugged", "x").output == "seen x"
        """
    )
    app = pytester.path / "function_app.py"
    app.write_text(
        app.read_text()
        + textwrap.dedent(
            """

            @app.activity_trigger(input_name="name")
            def Inspect(name: str) -> str:
                breakpoint()
                return f"seen {name}"


            @app.orchestration_trigger(context_name="context")
            def Debugged(context):
                return (yield context.call_activity("Inspect", context.get_input()))
            """
        )
    )
    result = pytester.run(
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", stdin=b"p 'at ' + name\nc\n", timeout=120
    )
    result.assert_outcomes(passed=1)
    output = result.stdout.str()
    assert "PDB set_trace (IO-capturing turned off)" in output, output
    assert "(Pdb) 'at x'" in output
