"""A task hub kept in the process: the engine's guarantees without any storage service.

For tests and quick local runs: histories with versions, instance records, leased control
queues and partition leases behave as the Azure Storage task hub's do where the engine relies on
it (docs/durability.md), but nothing is serialized and nothing outlives the process. Hosts that
share one :class:`InMemoryTaskHub` object (restarts, takeovers) share its state, from any thread.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emulator.durable._history import HistoryEvent
from emulator.taskhub._continuation import END_CONTINUATION
from emulator.taskhub._interface import (
    ControlMessage,
    HistoryConflictError,
    InstanceQuery,
    InstanceRecord,
    InstanceUpdate,
    MessageLease,
    PartitionLease,
    StoredHistory,
    TaskHub,
)
from emulator.taskhub._partitioning import fnv1a_32
from emulator.taskhub.memory._instances import InstanceRecords
from emulator.taskhub.memory._queues import ControlQueues


@dataclass
class _History:
    events: list[HistoryEvent]
    version: str
    execution_id: str


class InMemoryTaskHub(TaskHub):
    """One task hub in this process's memory."""

    def __init__(self, name: str, partition_count: int = 4, *, receive_wait: float = 1.0) -> None:
        self.name = name
        self.partition_count = partition_count
        self.end_continuation = END_CONTINUATION
        self._lock = threading.Lock()
        self._versions = itertools.count(1)
        self._histories: dict[str, _History] = {}
        self._instances = InstanceRecords()
        self._partitions: dict[int, PartitionLease] = {}
        self._queues = ControlQueues(partition_count, receive_wait=receive_wait)

    # -- the hub ------------------------------------------------------------------------------
    async def create(self) -> None:
        pass  # nothing to provision

    async def delete(self) -> None:
        with self._lock:
            self._histories.clear()
            self._instances.clear()
            self._partitions.clear()
        self._queues.clear()

    async def close(self) -> None:
        pass  # the state stays for the next host on this hub

    def partition_of(self, instance_id: str) -> int:
        return fnv1a_32(instance_id) % self.partition_count

    def describe(self) -> dict[str, Any]:
        return {"taskHub": self.name, "storage": "memory"}

    def _version(self) -> str:
        return str(next(self._versions))

    # -- histories ----------------------------------------------------------------------------
    async def read_history(self, instance_id: str) -> StoredHistory:
        with self._lock:
            stored = self._histories.get(instance_id)
            if stored is None:
                return StoredHistory(events=[], version=None, execution_id=None)
            return StoredHistory(copy.deepcopy(stored.events), stored.version, stored.execution_id)

    async def append_history(
        self,
        instance_id: str,
        execution_id: str,
        committed_count: int,
        new_events: Sequence[HistoryEvent],
        version: str | None,
    ) -> str:
        with self._lock:
            stored = self._checked(instance_id, version)
            kept = [] if stored is None or committed_count == 0 else stored.events[:committed_count]
            events = kept + copy.deepcopy(list(new_events))
            new_version = self._version()
            self._histories[instance_id] = _History(events, new_version, execution_id)
            return new_version

    async def replace_history_events(
        self, instance_id: str, replacements: dict[int, HistoryEvent], version: str | None
    ) -> str:
        with self._lock:
            stored = self._checked(instance_id, version)
            if stored is None:
                raise ValueError(f"Orchestration instance '{instance_id}' has no history to change.")
            for position, event in replacements.items():
                stored.events[position] = copy.deepcopy(event)
            stored.version = self._version()
            return stored.version

    def _checked(self, instance_id: str, version: str | None) -> _History | None:
        """The stored history if it is still at ``version`` (None: there is none yet)."""
        stored = self._histories.get(instance_id)
        if (None if stored is None else stored.version) != version:
            raise HistoryConflictError(f"History of instance '{instance_id}' was changed by another writer")
        return stored

    # -- instances ----------------------------------------------------------------------------
    async def read_instance(self, instance_id: str) -> InstanceRecord | None:
        with self._lock:
            return self._instances.get(instance_id)

    def written_instance(self, instance_id: str) -> InstanceRecord | None:
        # Every write is this process's own: the record is always known.
        with self._lock:
            return self._instances.get(instance_id)

    async def write_pending_instance(self, record: InstanceRecord, replace_version: str | None) -> bool:
        with self._lock:
            return self._instances.write_pending(record, replace_version)

    async def update_instance(self, instance_id: str, update: InstanceUpdate) -> bool:
        with self._lock:
            return self._instances.update(instance_id, update)

    async def query_instances(
        self,
        query: InstanceQuery,
        *,
        page_size: int,
        continuation: str | None = None,
        fetch_input: bool = True,
    ) -> tuple[list[InstanceRecord], str | None]:
        with self._lock:
            return self._instances.query(
                query, page_size=page_size, continuation=continuation, fetch_input=fetch_input
            )

    async def unfinished_instances(self) -> list[str]:
        with self._lock:
            return self._instances.unfinished()

    async def purge_instance(self, instance_id: str) -> tuple[int, int]:
        with self._lock:
            # Like the Azure provider, an instance without a record is left alone.
            if not self._instances.delete(instance_id):
                return 0, 0
            history = self._histories.pop(instance_id, None)
            return 1, 0 if history is None else len(history.events)

    # -- messages -----------------------------------------------------------------------------
    async def send_control(
        self, message: ControlMessage, *, delay: float = 0.0, lease: float | None = None
    ) -> MessageLease:
        return self._queues.send(self.partition_of(message.instance_id), message, delay=delay, lease=lease)

    async def receive_control(
        self, partition: int, lease: float, max_messages: int = 32
    ) -> list[tuple[ControlMessage, MessageLease]]:
        return await self._queues.receive(partition, lease, max_messages)

    async def renew(self, message: MessageLease, lease: float) -> bool:
        return self._queues.renew(message, lease)

    async def complete(self, message: MessageLease) -> None:
        self._queues.complete(message)

    def pending_messages(self, partition: int) -> int:
        """How many control messages the partition holds, leased or not (for tests)."""
        return self._queues.pending(partition)

    # -- partitions ---------------------------------------------------------------------------
    async def read_partition_leases(self) -> list[PartitionLease]:
        with self._lock:
            return [dataclasses.replace(self._partitions[p]) for p in sorted(self._partitions)]

    async def write_partition_lease(self, lease: PartitionLease) -> PartitionLease | None:
        with self._lock:
            current = self._partitions.get(lease.partition)
            if (None if current is None else current.version) != lease.version:
                return None
            written = dataclasses.replace(lease, version=self._version())
            self._partitions[lease.partition] = written
            return dataclasses.replace(written)
