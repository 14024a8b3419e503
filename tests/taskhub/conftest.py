"""The ``task_hub`` fixture: each contract test runs on the in-memory and the Azure task hub."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from emulator.taskhub import TaskHub
from emulator.taskhub.memory import InMemoryTaskHub


def azure_task_hub(connection_string: str, name: str) -> TaskHub:
    """The Azure Storage task hub on the test session's Azurite."""
    from emulator.taskhub.azure import AzureTaskHub

    return AzureTaskHub(connection_string, name, partition_count=4)


@pytest.fixture(params=["memory", pytest.param("azure", marks=pytest.mark.azure_storage)])
async def task_hub(request: pytest.FixtureRequest) -> AsyncIterator[TaskHub]:
    """A new, empty task hub; the Azure one asks for Azurite only when its tests run."""
    name = f"Hub{uuid.uuid4().hex[:12]}"
    hub: TaskHub
    if request.param == "memory":
        # A short wait for an empty queue, so the contract's polling loops stay quick.
        hub = InMemoryTaskHub(name, partition_count=4, receive_wait=0.1)
    else:
        hub = azure_task_hub(request.getfixturevalue("storage_connection"), name)
    await hub.create()
    try:
        yield hub
    finally:
        await hub.delete()
        await hub.close()
