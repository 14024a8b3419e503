"""The durable client a management request names with its ``taskHub`` and ``connection`` parameters.

Like the real ``HttpApiHandler.GetClient``, every management route builds its client from the
query string: the first non-blank ``taskHub`` and ``connection`` values (any case) name a task hub
and the app setting of its storage account, each defaulting to the host's own. The host's own hub
is served by its engine; any other hub is served by a client of its own over that hub's tables,
queues and blobs, as the real host does:

* nothing runs the other hub's instances here: a start there waits in its control queue for a
  host of that hub, exactly as on Azure;
* orchestrator and entity names are not checked against this app (the real client checks them
  only for its own app's hub);
* an unknown connection setting is the real host's error, never a fallback to the host's own;
* a hub name outside the Azure Storage rules gets the real host's 400.

A start creates the other hub (``EnsureTaskHub``) when it does not exist; any other request for a
hub that does not exist answers 404 and creates nothing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Mapping

from emulator.client._client import ClientError, DurableClientService
from emulator.functions._accounts import ConnectionSettingError, StorageAccounts
from emulator.taskhub._interface import ControlMessage, MessageLease
from emulator.taskhub.azure import is_missing_resource, open_task_hub, stored_partition_count

TASK_HUB_PARAMETER = "taskHub"
CONNECTION_PARAMETER = "connection"

# The Azure Storage provider's rules for task hub names (the host's settings use the same).
_HUB_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{2,44}")


class TaskHubNotFoundError(ClientError):
    """A request for another task hub that does not exist in the named storage account."""

    def __init__(self, hub_name: str) -> None:
        message = (
            f"The task hub '{hub_name}' does not exist in this storage account. Start an orchestration "
            "in it, or check the taskHub and connection parameters."
        )
        super().__init__(404, message, summary=message)


def validate_hub_name(hub_name: str) -> None:
    if not _HUB_NAME_RE.fullmatch(hub_name):
        raise ClientError(
            400,
            f"Task hub name '{hub_name}' should contain only alphanumeric characters, start with a letter, "
            "and have length between 3 and 45.",
        )


def named_hub(query: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The ``taskHub`` and ``connection`` a request names (None where it names none)."""
    hub = connection = None
    for key, value in query.items():
        if not value.strip():
            continue
        if hub is None and key.lower() == TASK_HUB_PARAMETER.lower():
            hub = value
        elif connection is None and key.lower() == CONNECTION_PARAMETER.lower():
            connection = value
    return hub, connection


def _leave_queued(message: ControlMessage, handle: MessageLease | None) -> None:
    """Messages to another hub stay in its queues for that hub's hosts."""


class TaskHubClients:
    """The host's own client, and clients for the other hubs that requests name."""

    def __init__(
        self,
        own: DurableClientService,
        *,
        accounts: StorageAccounts,
        own_connection_string: str,
        partition_count: int,
    ) -> None:
        self._own = own
        self._accounts = accounts
        self._own_connection_string = own_connection_string
        #: For a hub created here: the partition count the host's settings give.
        self._partition_count = partition_count

    @contextlib.asynccontextmanager
    async def client_for(
        self, query: Mapping[str, str], *, creates_hub: bool
    ) -> AsyncIterator[DurableClientService]:
        """The client of the hub ``query`` names, for one request; ``creates_hub`` for a start."""
        hub, connection = named_hub(query)
        if hub is None and connection is None:
            yield self._own
            return
        hub = self._own.hub_name if hub is None else hub
        validate_hub_name(hub)
        connection_string = self._connection_string(connection)
        if hub == self._own.hub_name and connection_string == self._own_connection_string:
            yield self._own
            return
        partition_count = await stored_partition_count(connection_string, hub, self._partition_count)
        if partition_count is None and not creates_hub:
            raise TaskHubNotFoundError(hub)
        storage = open_task_hub(connection_string, hub, partition_count or self._partition_count)
        try:
            if partition_count is None:
                await storage.create()
            yield DurableClientService(
                storage=storage,
                index=None,
                leases=None,
                deliver=_leave_queued,
                urls=self._own.urls,
                connection_name=connection or self._own.connection_name,
            )
        except Exception as exc:
            if not is_missing_resource(exc):
                raise
            raise TaskHubNotFoundError(hub) from None  # e.g. its tables were deleted meanwhile
        finally:
            await storage.close()

    def _connection_string(self, connection: str | None) -> str:
        if connection is None:
            return self._own_connection_string
        try:
            return self._accounts.connection_string(connection)
        except ConnectionSettingError:
            raise ClientError(
                500,
                f"Unable to resolve the Azure Storage connection named '{connection}'.",
                "System.InvalidOperationException",
            ) from None
