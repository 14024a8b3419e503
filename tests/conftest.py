"""Session fixtures: one real Azurite for the whole run, emulator hosts on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import HostOptions
from emulator._azurite import AzuriteServer, free_port
from emulator.testing import BackgroundHost

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_APPS = Path(__file__).resolve().parent / "apps"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    server = AzuriteServer.start(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def storage_connection(azurite: AzuriteServer) -> Iterator[str]:
    """The test Azurite as the apps' ``AzureWebJobsStorage`` (an existing variable wins over
    local.settings.json, as under ``func start``)."""
    previous = os.environ.get("AzureWebJobsStorage")
    os.environ["AzureWebJobsStorage"] = azurite.connection_string
    try:
        yield azurite.connection_string
    finally:
        if previous is None:
            os.environ.pop("AzureWebJobsStorage", None)
        else:
            os.environ["AzureWebJobsStorage"] = previous


def start_host(script_root: Path, connection_string: str) -> BackgroundHost:
    options = HostOptions(script_root=script_root, port=free_port(), connection_string=connection_string)
    return BackgroundHost(options).start()


@pytest.fixture(scope="session")
def seed_host(storage_connection: str) -> Iterator[BackgroundHost]:
    """The function app at the repository root, served as ``func start`` would."""
    host = start_host(REPO_ROOT, storage_connection)
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="session")
def errors_host(storage_connection: str) -> Iterator[BackgroundHost]:
    host = start_host(TEST_APPS / "durable_errors", storage_connection)
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="session")
def features_host(storage_connection: str) -> Iterator[BackgroundHost]:
    """A test app that uses every orchestration feature of the SDK."""
    host = start_host(TEST_APPS / "orchestration_features", storage_connection)
    try:
        yield host
    finally:
        host.stop()
