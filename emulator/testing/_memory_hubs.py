"""In-memory task hubs for a test session: hosts that name the same task hub share one.

A test session runs its hosts on them instead of Azurite when it is started with
``--task-hub=memory`` (or ``EMULATOR_TEST_TASK_HUB=memory``): the storage connection the fixtures
hand out is then :data:`MEMORY_CONNECTION`, which hosts and helpers recognise. A host restarted
on a task hub finds what the previous one left, as it would in storage.
"""

from __future__ import annotations

import threading

from emulator.taskhub.memory import InMemoryTaskHub

#: The "connection string" of the process's in-memory task hubs.
MEMORY_CONNECTION = "UseInMemoryTaskHubs=true"

_lock = threading.Lock()
_hubs: dict[str, InMemoryTaskHub] = {}


def is_memory(connection_string: str | None) -> bool:
    return connection_string == MEMORY_CONNECTION


def memory_task_hub(name: str, partition_count: int = 4) -> InMemoryTaskHub:
    """The process's in-memory task hub of that name (task hub names ignore case), made on first use."""
    with _lock:
        hub = _hubs.get(name.lower())
        if hub is None:
            hub = _hubs[name.lower()] = InMemoryTaskHub(name, partition_count)
        return hub


def forget_memory_task_hub(name: str) -> None:
    """Drop the process's in-memory task hub of that name (what deleting a hub in storage does)."""
    with _lock:
        _hubs.pop(name.lower(), None)
