"""The pytest plugin: fixtures for testing a Durable Functions app on the emulator.

Registered through the package's ``pytest11`` entry point, so installing the package is enough.

* ``durable_azurite`` (session): Azurite on free loopback ports, its data on disk in a temp dir;
  found where the apps and tests are, else installed with npm on first use (``_app_folders``).
* ``durable_storage_connection`` (session): its connection string, also set as
  ``AzureWebJobsStorage`` for the session (as a variable set before ``func start`` would be).
  With ``--task-hub=memory`` (or ``EMULATOR_TEST_TASK_HUB=memory``) hosts keep their task hubs
  in the test process instead, no Azurite is started, and tests that use it are deselected.
* ``durable_host``: a running host for the app, shared by the tests that ask for the same
  configuration: the ``durable_script_root`` / ``durable_subprocess`` ini options, or a
  ``@pytest.mark.durable_host(script_root=..., subprocess=..., ...)`` marker.
* ``durable_client``: the SDK's ``DurableOrchestrationClient`` bound to ``durable_host``.
* ``durable_host_factory``: starts hosts of the test's own (each on a fresh task hub unless
  ``task_hub=`` names one), stopped when the test ends.
* ``durable_hosts`` (session): the pool behind all of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.host._azurite import AzuriteServer
from emulator.testing._app_folders import session_azurite
from emulator.testing._durable_host import DurableHost, environment
from emulator.testing._memory_hubs import MEMORY_CONNECTION
from emulator.testing._pool import DurableHostFactory, DurableHosts

MARKER = "durable_host"
AZURITE_FIXTURE = "durable_azurite"
AZURE_MARKER = "azure_storage"
TASK_HUBS = ("azure", "memory")
DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
#: The default of ``--task-hub``.
TASK_HUB_VARIABLE = "EMULATOR_TEST_TASK_HUB"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--task-hub",
        choices=TASK_HUBS,
        default=os.environ.get(TASK_HUB_VARIABLE) or "azure",
        help=f"where the hosts keep their task hubs: azure (Azurite, the default) or memory "
        f"(in this process: no Azurite; tests that use Azurite themselves are deselected); "
        f"default from {TASK_HUB_VARIABLE}",
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
        f"{MARKER}(script_root=None, subprocess=False, task_hub=None, lease_seconds=None, crash_at=None, "
        "enforce_auth=False, env=None): the host the durable_host fixture gives this test",
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
    if config.getoption("task_hub") != "memory":
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
    if request.config.getoption("task_hub") == "memory":
        # Bindings and triggers still need a storage setting; nothing uses it in these tests.
        with environment(
            {"AzureWebJobsStorage": os.environ.get("AzureWebJobsStorage") or DEVELOPMENT_STORAGE}
        ):
            yield MEMORY_CONNECTION
        return
    azurite: AzuriteServer = request.getfixturevalue(AZURITE_FIXTURE)
    with environment({"AzureWebJobsStorage": azurite.connection_string}):
        yield azurite.connection_string


@pytest.fixture(scope="session")
def durable_hosts(
    durable_storage_connection: str, pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DurableHosts]:
    root = str(pytestconfig.getini("durable_script_root") or "")
    default_root = (pytestconfig.rootpath / root).resolve() if root else pytestconfig.rootpath
    hosts = DurableHosts(durable_storage_connection, default_root, tmp_path_factory.mktemp("durable-hosts"))
    try:
        yield hosts
    finally:
        hosts.stop_all()


@pytest.fixture
def durable_host(durable_hosts: DurableHosts, request: pytest.FixtureRequest) -> DurableHost:
    """The app's host: configured by the ``durable_host`` marker, else by the ini options."""
    options: dict[str, Any] = {"subprocess": bool(request.config.getini("durable_subprocess"))}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        if marker.args:
            options["script_root"] = marker.args[0]
        options.update(marker.kwargs)
    return durable_hosts.shared(**options)


@pytest.fixture
def durable_client(durable_host: DurableHost) -> Any:
    """The SDK's ``DurableOrchestrationClient`` for ``durable_host``; run its coroutines with
    ``durable_host.call(...)``."""
    return durable_host.client


@pytest.fixture
def durable_host_factory(durable_hosts: DurableHosts) -> Iterator[DurableHostFactory]:
    """Start hosts of the test's own; they are stopped when the test ends."""
    factory = DurableHostFactory(durable_hosts)
    try:
        yield factory
    finally:
        factory.stop_all()


__all__ = ["DurableHost", "DurableHostFactory", "DurableHosts"]
