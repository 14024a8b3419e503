"""A host for the client_app test app (task hub ClientHub), shared by the management tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.testing import BackgroundHost
from tests.conftest import TEST_APPS, start_host


@pytest.fixture(scope="session")
def client_host(storage_connection: str) -> Iterator[BackgroundHost]:
    host = start_host(TEST_APPS / "client_app", storage_connection)
    try:
        yield host
    finally:
        host.stop()
