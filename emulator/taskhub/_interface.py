"""The task hub in the engine's own terms: histories, instances, messages, partitions.

Everything durable goes through a :class:`TaskHub`. The engine (dispatchers, client, entities,
partition ownership, leases) sees only this module's types; where and how they are stored is the
implementation's business: :mod:`emulator.taskhub.azure` keeps the real Azure Storage provider's
layout (tables, queues, blobs, OData, ETags), :mod:`emulator.taskhub.memory` keeps everything in
the process for fast tests. Both give the guarantees the engine relies on (docs/durability.md):

* a history append is conditional on the version read with it (:class:`HistoryConflictError`);
* a message is delivered at least once: a received message stays invisible while its lease runs,
  comes back when the lease lapses, and is gone only once completed;
* partition ownership changes only by conditional writes, so two hosts never own one partition.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from emulator.durable._history import HistoryEvent, OrchestrationStatus


class HistoryConflictError(Exception):
    """Someone else changed the history since it was read (the version moved on)."""


class TaskHubUnavailable(Exception):
    """The task hub's storage did not answer (a transient failure worth retrying).

    Implementations may raise it; :meth:`TaskHub.is_transient` says which failures are transient.
    """


class InvalidContinuationToken(ValueError):
    """A continuation token a user passed that this task hub did not hand out.

    ``exception_type`` is the .NET exception the real host reports for it (the API's 500 body).
    """

    def __init__(self, message: str, exception_type: str) -> None:
        super().__init__(message)
        self.message = message
        self.exception_type = exception_type


@dataclass
class StoredHistory:
    """The committed history of an instance's current execution."""

    events: list[HistoryEvent]
    #: Opaque: handed back to :meth:`TaskHub.append_history`; None when there is no history.
    version: str | None
    execution_id: str | None


@dataclass
class InstanceRecord:
    """What the task hub knows of one instance (orchestration or entity)."""

    instance_id: str
    name: str
    runtime_status: OrchestrationStatus
    execution_id: str
    created_time: datetime
    last_updated_time: datetime
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    completed_time: datetime | None = None
    generation: int = 0
    #: Opaque: handed back to :meth:`TaskHub.write_pending_instance` to replace this record.
    version: str | None = None


@dataclass
class InstanceUpdate:
    """A partial update of an instance record: None leaves a field as it is."""

    last_updated_time: datetime
    runtime_status: OrchestrationStatus | None = None
    execution_id: str | None = None
    #: Set by the update that starts an execution (or creates an entity); only such an update
    #: may create a record that is missing.
    name: str | None = None
    created_time: datetime | None = None
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    completed_time: datetime | None = None
    generation: int | None = None

    def then(self, later: InstanceUpdate) -> InstanceUpdate:
        """This update followed by ``later``, as one: ``later``'s fields win where it sets them."""
        changes = {
            f.name: getattr(later, f.name) for f in fields(later) if getattr(later, f.name) is not None
        }
        return replace(self, **changes)


@dataclass(frozen=True)
class InstanceQuery:
    """Which instances a query or a purge covers (``OrchestrationInstanceStatusQueryCondition``)."""

    created_from: datetime | None = None
    created_to: datetime | None = None
    #: Status names to match; None or empty matches every status.
    statuses: tuple[str, ...] | None = None
    instance_id_prefix: str | None = None


@dataclass
class ControlMessage:
    """Events for one orchestration or entity instance."""

    instance_id: str
    events: list[HistoryEvent]
    execution_id: str | None = None
    #: In memory only: the sender knows the instance has no history yet (a client start of a
    #: new instance), so its first episode need not read one. Never stored.
    new_instance: bool = field(default=False, compare=False)


@dataclass
class MessageLease:
    """A message this host holds. Opaque to the engine except for these fields."""

    #: The same on every delivery of the message: it tells a redelivered message from a new one
    #: (histories keep it, see ``durable/_reconcile``).
    message_id: str
    #: For log lines, e.g. the queue and message id.
    label: str
    #: ``time.monotonic()`` when the current lease started (at the latest).
    leased_at: float = field(default_factory=time.monotonic)


@dataclass
class PartitionLease:
    """The ownership record of one partition."""

    partition: int
    owner: str | None
    next_owner: str | None
    expires_at: datetime | None
    #: When ``next_owner`` last asked (a request counts only while its host keeps asking).
    next_owner_at: datetime | None = None
    owned_since: datetime | None = None
    last_renewal: datetime | None = None
    #: Opaque: the version a conditional update must match.
    version: str | None = None


class TaskHub(abc.ABC):
    """One task hub: the durable state of a function app."""

    name: str
    partition_count: int
    #: The continuation token users get with the last page of a query (the real provider's is
    #: not empty); handed back, it starts the query over.
    end_continuation: str = ""

    # -- the hub ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create(self) -> None: ...
    @abc.abstractmethod
    async def delete(self) -> None: ...
    @abc.abstractmethod
    async def close(self) -> None: ...
    @abc.abstractmethod
    def partition_of(self, instance_id: str) -> int: ...
    def partition_name(self, partition: int) -> str:
        """The partition as log lines name it (the real provider's control queue)."""
        return f"{self.name.lower()}-control-{partition:02d}"

    @property
    def endpoint(self) -> str:
        """Where the task hub's storage is, for the line that says it does not answer."""
        return f"task hub {self.name}"

    def is_transient(self, exc: BaseException) -> bool:
        """True for a failure that says only that storage did not answer (worth retrying)."""
        return isinstance(exc, (TaskHubUnavailable, asyncio.TimeoutError, OSError))

    # -- histories ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def read_history(self, instance_id: str) -> StoredHistory: ...
    @abc.abstractmethod
    async def append_history(
        self,
        instance_id: str,
        execution_id: str,
        committed_count: int,
        new_events: Sequence[HistoryEvent],
        version: str | None,
    ) -> str:
        """Append after ``committed_count`` events if the history is still at ``version``.

        Returns the new version; raises :class:`HistoryConflictError` when it moved on. A new
        execution (``committed_count`` 0 over an existing history) replaces the old one.
        """

    @abc.abstractmethod
    async def replace_history_events(
        self, instance_id: str, replacements: dict[int, HistoryEvent], version: str | None
    ) -> str:
        """Replace committed events by position (rewind), conditional on ``version``.

        Returns the new version; raises :class:`HistoryConflictError` when it moved on.
        """

    # -- instances ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def read_instance(self, instance_id: str) -> InstanceRecord | None: ...
    @abc.abstractmethod
    def written_instance(self, instance_id: str) -> InstanceRecord | None:
        """The record as this task hub last wrote it, when that is known without a read."""

    @abc.abstractmethod
    async def write_pending_instance(self, record: InstanceRecord, replace_version: str | None) -> bool:
        """Write a Pending record (a client start); False when a newer one is there."""

    @abc.abstractmethod
    async def update_instance(self, instance_id: str, update: InstanceUpdate) -> bool:
        """Apply ``update``; False when there is no record and the update does not name one."""

    @abc.abstractmethod
    async def query_instances(
        self,
        query: InstanceQuery,
        *,
        page_size: int,
        continuation: str | None = None,
        fetch_input: bool = True,
    ) -> tuple[list[InstanceRecord], str | None]:
        """One page and the opaque continuation of the next (None: no more).

        A page may hold fewer than ``page_size`` records (even none) while more remain. A
        ``continuation`` this task hub did not hand out raises :class:`InvalidContinuationToken`.
        """

    async def query_all_instances(self, query: InstanceQuery) -> list[InstanceRecord]:
        """Every matching record, page after page."""
        records: list[InstanceRecord] = []
        continuation: str | None = None
        while True:
            page, continuation = await self.query_instances(query, page_size=1000, continuation=continuation)
            records.extend(page)
            if continuation is None:
                return records

    @abc.abstractmethod
    async def unfinished_instances(self) -> list[str]:
        """Ids of the instances not finished (Pending, Running, Suspended, ContinuedAsNew)."""

    @abc.abstractmethod
    async def purge_instance(self, instance_id: str) -> tuple[int, int]:
        """Delete the instance's record, history and payloads: (instances, history events) deleted."""

    # -- messages -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def send_control(
        self, message: ControlMessage, *, delay: float = 0.0, lease: float | None = None
    ) -> MessageLease:
        """Send; with ``lease`` the sender holds the message (invisible) as if it had received it."""

    @abc.abstractmethod
    async def receive_control(
        self, partition: int, lease: float, max_messages: int = 32
    ) -> list[tuple[ControlMessage, MessageLease]]: ...
    @abc.abstractmethod
    async def renew(self, message: MessageLease, lease: float) -> bool:
        """Extend the lease (0: make the message visible again now); False when it was lost."""

    @abc.abstractmethod
    async def complete(self, message: MessageLease) -> None:
        """Delete the message: it was processed."""

    # -- partitions ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def read_partition_leases(self) -> list[PartitionLease]: ...
    @abc.abstractmethod
    async def write_partition_lease(self, lease: PartitionLease) -> PartitionLease | None:
        """Conditional on ``lease.version`` (None: create); None when someone else changed it."""

    # -- what the management API lists beyond the SDK's surface ---------------------------------
    def describe(self) -> dict[str, Any]:
        """Where the task hub lives, for log lines and the dashboard (endpoints, not secrets)."""
        return {"taskHub": self.name}
