"""The pytest plugin: fixtures for testing a Durable Functions app on the emulator.

Registered through the package's ``pytest11`` entry point, so installing the package is enough.

* ``durable_azurite`` (session): Azurite on free loopback ports, its data on disk in a temp dir;
  found where the apps and tests are, else installed with npm on first use (``_app_folders``).
* ``durable_storage_connection`` (session): the session's storage connection string, also set as
  ``AzureWebJobsStorage`` for the session (as a variable set before ``func start`` would be):
  ``--durable-connection`` / ``durable_connection`` (a storage account of the user's), else
  ``durable_azurite``'s. With ``--task-hub=memory`` (or ``EMULATOR_TEST_TASK_HUB=memory``, or the
  ``durable_task_hub = memory`` ini setting) hosts keep their task hubs in the test process
  instead, no Azurite is started, and tests that use it are deselected.
* ``durable_host``: a running host for the app, shared by the tests that ask for the same
  configuration: the ``durable_script_root`` / ``durable_subprocess`` ini options, or a
  ``@pytest.mark.durable_host(script_root=..., subprocess=..., storage=..., ...)`` marker. It
  runs on a task hub of the session's own (deleted at the end) unless ``task_hub=`` names one
  or ``durable_session_task_hubs = false``.
* ``durable_client``: the SDK's ``DurableOrchestrationClient`` bound to ``durable_host``.
* ``durable_host_factory``: starts hosts of the test's own (each on a fresh task hub unless
  ``task_hub=`` names one), stopped when the test ends.
* ``durable_hosts`` (session): the pool behind all of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.app._settings import load_settings
from emulator.host._azurite import AzuriteServer
from emulator.testing._app_folders import session_azurite
from emulator.testing._durable_host import STORAGE_KINDS, DurableHost, environment
from emulator.testing._memory_hubs import MEMORY_CONNECTION
from emulator.testing._pool import DurableHostFactory, DurableHosts, HostOptionError

MARKER = "durable_host"
AZURITE_FIXTURE = "durable_azurite"
AZURE_MARKER = "azure_storage"
DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
#: The default of ``--task-hub``.
TASK_HUB_VARIABLE = "EMULATOR_TEST_TASK_HUB"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--task-hub",
        choices=STORAGE_KINDS,
        default=None,
        help=f"where the hosts keep their task hubs: azure (Azurite, the default) or memory "
        f"(in this process: no Node, no Azurite; tests that use Azurite themselves are deselected); "
        f"default from {TASK_HUB_VARIABLE}, else the durable_task_hub ini setting",
    )
    parser.addoption(
        "--durable-connection",
        default=None,
        metavar="CONNECTION_STRING_OR_SETTING",
        help="Azure Storage of your own for the hosts (a connection string, or the name of an environment "
        "variable or local.settings.json value holding one) instead of a session Azurite",
    )
    parser.addini(
        "durable_task_hub",
        "where the hosts keep their task hubs: azure (the default) or memory",
        default="",
    )
    parser.addini(
        "durable_connection",
        "Azure Storage of your own for the hosts, as --durable-connection",
        default="",
    )
    parser.addini(
        "durable_session_task_hubs",
        "shared hosts run on a task hub of the session's own, deleted at its end (default true); "
        "false: on the app's own task hub (host.json)",
        type="bool",
        default=True,
    )
    parser.addini(
        "durable_script_root",
        "folder of the function app the durable_host fixture runs, relative to the rootdir "
        "(default: the rootdir)",
        default="",
    )
    parser.addini(
        "durable_subprocess",
        "run the durable_host fixture's host in a child process (python -m emulator start)",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(script_root=None, subprocess=False, task_hub=None, storage=None, lease_seconds=None, "
        "crash_at=None, enforce_auth=False, env=None): the host the durable_host fixture gives this test "
        "(task_hub: a task hub name; storage: 'azure' or 'memory', else the session's)",
    )
    config.addinivalue_line(
        "markers",
        f"{AZURE_MARKER}: the test needs the Azure Storage task hub (it checks its rows, blobs or code, "
        "or runs hosts or tools in other processes); left out with --task-hub=memory",
    )


@pytest.fixture(scope="session")
def durable_azurite(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[AzuriteServer]:
    """Azurite for the session: free loopback ports, data on disk in a temp dir."""
    server = AzuriteServer.start(
        tmp_path_factory.mktemp("durable-azurite"), executable=session_azurite(pytestconfig)
    )
    try:
        yield server
    finally:
        server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On in-memory task hubs, leave out the tests that use Azurite themselves or check what the
    Azure Storage task hub stores (marked ``azure_storage``)."""
    if storage_kind(config) != "memory":
        return
    kept = [
        item
        for item in items
        if AZURITE_FIXTURE not in getattr(item, "fixturenames", ())
        and item.get_closest_marker(AZURE_MARKER) is None
    ]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def durable_storage_connection(request: pytest.FixtureRequest) -> Iterator[str]:
    """The session's storage connection string, also the apps' ``AzureWebJobsStorage``; with
    ``--task-hub=memory``, :data:`MEMORY_CONNECTION` (and no Azurite)."""
    if storage_kind(request.config) == "memory":
        # Bindings and triggers still need a storage setting; nothing uses it in these tests.
        with environment(
            {"AzureWebJobsStorage": os.environ.get("AzureWebJobsStorage") or DEVELOPMENT_STORAGE}
        ):
            yield MEMORY_CONNECTION
        return
    connection = azure_connection(request)
    with environment({"AzureWebJobsStorage": connection}):
        yield connection


def storage_kind(config: pytest.Config) -> str:
    """azure or memory: ``--task-hub``, else ``EMULATOR_TEST_TASK_HUB``, else the ini setting."""
    chosen = (
        config.getoption("task_hub") or os.environ.get(TASK_HUB_VARIABLE) or config.getini("durable_task_hub")
    )
    kind = str(chosen or "azure").strip().lower()
    if kind not in STORAGE_KINDS:
        raise pytest.UsageError(f"durable_task_hub = {kind}: choose one of {', '.join(STORAGE_KINDS)}")
    return kind


def own_connection(config: pytest.Config, script_root: Path) -> str | None:
    """``--durable-connection`` / ``durable_connection``: a connection string, or the name of a
    setting holding one (the environment first, then the app's local.settings.json)."""
    value = str(config.getoption("durable_connection") or config.getini("durable_connection") or "").strip()
    if not value or "=" in value:
        return value or None
    setting = os.environ.get(value)
    if not setting:
        try:
            setting = load_settings(script_root).values.get(value)
        except Exception:  # no app there: the variable alone decides
            setting = None
    if not setting:
        raise pytest.UsageError(
            f"--durable-connection {value}: no such environment variable or local.settings.json value"
        )
    return setting


def azure_connection(request: pytest.FixtureRequest) -> str:
    """Azure Storage for the session's hosts: the user's own, else the session Azurite."""
    connection = own_connection(request.config, _default_root(request.config))
    if connection is None:
        azurite: AzuriteServer = request.getfixturevalue(AZURITE_FIXTURE)
        connection = azurite.connection_string
    return connection


def _default_root(config: pytest.Config) -> Path:
    root = str(config.getini("durable_script_root") or "")
    return (config.rootpath / root).resolve() if root else config.rootpath


@pytest.fixture(scope="session")
def durable_hosts(
    durable_storage_connection: str,
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[DurableHosts]:
    hosts = DurableHosts(
        durable_storage_connection,
        _default_root(pytestconfig),
        tmp_path_factory.mktemp("durable-hosts"),
        session_hubs=bool(pytestconfig.getini("durable_session_task_hubs")),
        azure_connection=lambda: azure_connection(request),
    )
    try:
        yield hosts
    finally:
        hosts.close()


@pytest.fixture
def durable_host(durable_hosts: DurableHosts, request: pytest.FixtureRequest) -> DurableHost:
    """The app's host: configured by the ``durable_host`` marker, else by the ini options."""
    options: dict[str, Any] = {"subprocess": bool(request.config.getini("durable_subprocess"))}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        if marker.args:
            options["script_root"] = marker.args[0]
        options.update(marker.kwargs)
    try:
        return durable_hosts.shared(**options)
    except HostOptionError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture
def durable_client(durable_host: DurableHost) -> Any:
    """The SDK's ``DurableOrchestrationClient`` for ``durable_host``; run its coroutines with
    ``durable_host.call(...)``."""
    return durable_host.client


@pytest.fixture
def durable_host_factory(durable_hosts: DurableHosts) -> Iterator[DurableHostFactory]:
    """Start hosts of the test's own; they are stopped when the test ends."""
    factory = _PluginHostFactory(durable_hosts)
    try:
        yield factory
    finally:
        factory.stop_all()


class _PluginHostFactory(DurableHostFactory):
    """Says in one line, as a test failure, what the session's storage cannot run."""

    def __call__(
        self, script_root: str | os.PathLike[str] | None = None, *, subprocess: bool = False, **options: Any
    ) -> DurableHost:
        try:
            return super().__call__(script_root, subprocess=subprocess, **options)
        except HostOptionError as err:
            pytest.fail(str(err), pytrace=False)


__all__ = ["DurableHost", "DurableHostFactory", "DurableHosts"]
