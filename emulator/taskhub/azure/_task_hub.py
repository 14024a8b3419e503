"""The task hub in Azure Storage: History, Instances and Partitions tables, control queues, blobs.

Names and row schema follow the real Azure Storage provider (docs/host-behaviour.md section 4), so
Storage Explorer and other tools read what the emulator writes:

* ``{hub}History``: one partition per instance, RowKey = 16-digit hex position, plus the
  ``sentinel`` row whose ETag guards every append (docs/durability.md invariant 1).
* ``{hub}Instances``: one row per instance (RowKey ``""``), the status the API reports.
* ``{hub}Partitions``: which host owns which control queue.
* ``{hub}-control-NN`` queues carry orchestration events. Activities travel in memory from the
  history's ``TaskScheduled`` rows (see ``durable/_orchestrations``), so ``{hub}-workitems`` is
  created for the layout but stays empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from emulator.durable import _history as h
from emulator.durable._history import HistoryEvent
from emulator.host._azurite import client_options
from emulator.taskhub._continuation import END_CONTINUATION
from emulator.taskhub._interface import (
    ControlMessage,
    InstanceQuery,
    InstanceRecord,
    InstanceUpdate,
    MessageLease,
    PartitionLease,
    StoredHistory,
    TaskHub,
)
from emulator.taskhub.azure import _errors
from emulator.taskhub.azure._history import HistoryTable
from emulator.taskhub.azure._instances import InstancesTable
from emulator.taskhub.azure._keys import escape_partition_key, fnv1a_32
from emulator.taskhub.azure._large import LargeValues
from emulator.taskhub.azure._partitions import PartitionsTable
from emulator.taskhub.azure._queues import ControlQueues


class AzureTaskHub(TaskHub):
    """One task hub in one storage account."""

    end_continuation = END_CONTINUATION

    def __init__(self, connection_string: str, hub_name: str, partition_count: int = 4) -> None:
        self.name = hub_name
        self.partition_count = partition_count
        lower = hub_name.lower()
        self.control_queue_names = [f"{lower}-control-{i:02d}" for i in range(partition_count)]
        self.work_item_queue_name = f"{lower}-workitems"
        self.history_table_name = f"{hub_name}History"
        self.instances_table_name = f"{hub_name}Instances"
        self.partitions_table_name = f"{hub_name}Partitions"
        self.leases_container = f"{lower}-leases"
        self.large_messages_container = f"{lower}-largemessages"
        from azure.data.tables.aio import TableServiceClient
        from azure.storage.blob.aio import BlobServiceClient
        from azure.storage.queue.aio import QueueServiceClient

        options = client_options(connection_string)
        self._tables = TableServiceClient.from_connection_string(connection_string, **options)
        self._queues = QueueServiceClient.from_connection_string(connection_string, **options)
        self._blobs = BlobServiceClient.from_connection_string(connection_string, **options)
        self._large = LargeValues(self._blobs.get_container_client(self.large_messages_container))
        self._history = HistoryTable(self._tables.get_table_client(self.history_table_name), self._large)
        self._instances = InstancesTable(
            self._tables.get_table_client(self.instances_table_name), self._large, hub_name
        )
        self._partitions = PartitionsTable(
            self._tables.get_table_client(self.partitions_table_name), self.control_queue_names
        )
        self._control = ControlQueues(self._queues, self._large, self.control_queue_names)

    @property
    def endpoint(self) -> str:
        """Where the task hub's tables are, e.g. ``http://127.0.0.1:10002``."""
        return _errors.endpoint_label(self._tables.url)

    def is_transient(self, exc: BaseException) -> bool:
        return _errors.is_transient(exc)

    def describe(self) -> dict[str, Any]:
        return {"taskHub": self.name, "endpoint": self.endpoint}

    async def close(self) -> None:
        await self._history.table.close()
        await self._instances.table.close()
        await self._partitions.table.close()
        await self._large.container.close()
        await self._tables.close()
        await self._queues.close()
        await self._blobs.close()

    # -- the hub ------------------------------------------------------------------------------

    async def create(self) -> None:
        """Create every queue, table and container of the hub (like ``EnsureTaskHub``)."""

        async def create_queue(name: str) -> None:
            with contextlib.suppress(ResourceExistsError):
                await self._queues.create_queue(name)

        async def create_container(name: str) -> None:
            with contextlib.suppress(ResourceExistsError):
                await self._blobs.create_container(name)

        # All at once: host start-up waits for this.
        await asyncio.gather(
            *(
                self._tables.create_table_if_not_exists(table)
                for table in (self.history_table_name, self.instances_table_name, self.partitions_table_name)
            ),
            *(create_queue(queue) for queue in [*self.control_queue_names, self.work_item_queue_name]),
            *(create_container(c) for c in (self.leases_container, self.large_messages_container)),
        )
        leases = self._blobs.get_container_client(self.leases_container)
        try:
            info = {
                "TaskHubName": self.name,
                "CreatedAt": h.format_timestamp(h.utcnow()),
                "PartitionCount": self.partition_count,
            }
            await leases.upload_blob("taskhub.json", json.dumps(info), overwrite=False)
        except ResourceExistsError:
            pass
        finally:
            await leases.close()

    async def delete(self) -> None:
        """Delete the hub's tables, queues and containers (the provider's ``DeleteAsync``)."""
        # The Partitions table too, as the table partition manager's DeleteLeases does.
        for table in (self.history_table_name, self.instances_table_name, self.partitions_table_name):
            with contextlib.suppress(ResourceNotFoundError):
                await self._tables.delete_table(table)
        for queue in [*self.control_queue_names, self.work_item_queue_name]:
            with contextlib.suppress(ResourceNotFoundError):
                await self._queues.delete_queue(queue)
        for container in (self.leases_container, self.large_messages_container):
            with contextlib.suppress(ResourceNotFoundError):
                await self._blobs.delete_container(container)

    def partition_of(self, instance_id: str) -> int:
        return fnv1a_32(instance_id) % self.partition_count

    def partition_name(self, partition: int) -> str:
        return self.control_queue_names[partition]

    # -- histories ----------------------------------------------------------------------------

    async def read_history(self, instance_id: str) -> StoredHistory:
        # Whoever reads the history again may have lost track of the row's writes.
        self._instances.forget_written(instance_id)
        return await self._history.read(instance_id)

    async def append_history(
        self,
        instance_id: str,
        execution_id: str,
        committed_count: int,
        new_events: Sequence[HistoryEvent],
        version: str | None,
    ) -> str:
        return await self._history.append(instance_id, execution_id, committed_count, new_events, version)

    async def replace_history_events(
        self, instance_id: str, replacements: dict[int, HistoryEvent], version: str | None
    ) -> str:
        return await self._history.replace(instance_id, replacements, version)

    # -- instances ----------------------------------------------------------------------------

    async def read_instance(self, instance_id: str) -> InstanceRecord | None:
        return await self._instances.read(instance_id)

    def written_instance(self, instance_id: str) -> InstanceRecord | None:
        return self._instances.written(instance_id)

    async def write_pending_instance(self, record: InstanceRecord, replace_version: str | None) -> bool:
        return await self._instances.write_pending(record, replace_version)

    async def update_instance(self, instance_id: str, update: InstanceUpdate) -> bool:
        return await self._instances.update(instance_id, update)

    async def query_instances(
        self,
        query: InstanceQuery,
        *,
        page_size: int,
        continuation: str | None = None,
        fetch_input: bool = True,
    ) -> tuple[list[InstanceRecord], str | None]:
        return await self._instances.query_page(
            query, top=page_size, continuation=continuation, fetch_input=fetch_input
        )

    async def unfinished_instances(self) -> list[str]:
        return await self._instances.unfinished()

    async def purge_instance(self, instance_id: str) -> tuple[int, int]:
        """Delete every history row, large-message blob and the Instances row of one instance.

        Returns (instances deleted, history rows deleted). Like the real provider, an instance
        without an Instances row is left alone, and a running instance is purged all the same.
        """
        if not await self._instances.exists(instance_id):
            return 0, 0
        rows = await self._history.delete(instance_id)
        pk = escape_partition_key(instance_id)
        container = self._large.container
        with contextlib.suppress(ResourceNotFoundError):
            names = [blob.name async for blob in container.list_blobs(name_starts_with=f"{pk}/")]
            for name in names:
                with contextlib.suppress(ResourceNotFoundError):
                    await container.delete_blob(name)
        await self._instances.delete(instance_id)
        return 1, rows

    # -- messages -----------------------------------------------------------------------------

    async def send_control(
        self, message: ControlMessage, *, delay: float = 0.0, lease: float | None = None
    ) -> MessageLease:
        partition = self.partition_of(message.instance_id)
        return await self._control.send(partition, message, delay=delay, lease=lease)

    async def receive_control(
        self, partition: int, lease: float, max_messages: int = 32
    ) -> list[tuple[ControlMessage, MessageLease]]:
        return await self._control.receive(partition, lease, max_messages)

    async def renew(self, message: MessageLease, lease: float) -> bool:
        return await self._control.renew(message, lease)

    async def complete(self, message: MessageLease) -> None:
        await self._control.complete(message)

    # -- partitions ---------------------------------------------------------------------------

    async def read_partition_leases(self) -> list[PartitionLease]:
        return await self._partitions.read()

    async def write_partition_lease(self, lease: PartitionLease) -> PartitionLease | None:
        return await self._partitions.write(lease)
