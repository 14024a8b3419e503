"""The project's fixtures, on top of the durable_emulator pytest plugin (emulator/testing/plugin.py):
one Azurite for the whole run, emulator hosts on free loopback ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.host._azurite import AzuriteServer
from emulator.testing import BackgroundHost, DurableHost, DurableHosts, HostConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_APPS = Path(__file__).resolve().parent / "apps"


@pytest.fixture(scope="session")
def azurite(durable_azurite: AzuriteServer) -> AzuriteServer:
    return durable_azurite


@pytest.fixture(scope="session")
def storage_connection(durable_storage_connection: str) -> str:
    """The test Azurite, also the apps' ``AzureWebJobsStorage`` (an existing variable wins over
    local.settings.json, as under ``func start``)."""
    return durable_storage_connection


def start_host(script_root: Path, connection_string: str) -> BackgroundHost:
    """An in-process host on the app's own task hub, for tests that stop and start hosts themselves."""
    host = DurableHost(HostConfig(script_root), connection_string).start()
    assert host.background is not None
    return host.background


def _shared(hosts: DurableHosts, script_root: Path) -> BackgroundHost:
    # The plugin's shared host: the same one a `durable_host` test of this app gets.
    background = hosts.shared(script_root).background
    assert background is not None
    return background


@pytest.fixture(scope="session")
def seed_host(durable_hosts: DurableHosts) -> BackgroundHost:
    """The function app at the repository root, served as ``func start`` would."""
    return _shared(durable_hosts, REPO_ROOT)


@pytest.fixture(scope="session")
def errors_host(durable_hosts: DurableHosts) -> BackgroundHost:
    return _shared(durable_hosts, TEST_APPS / "durable_errors")


@pytest.fixture(scope="session")
def features_host(durable_hosts: DurableHosts) -> BackgroundHost:
    """A test app that uses every orchestration feature of the SDK."""
    return _shared(durable_hosts, TEST_APPS / "orchestration_features")
