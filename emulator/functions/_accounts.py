"""Storage accounts named by bindings' ``connection`` settings, resolved the way the host does.

A binding's ``connection`` names an app setting: the host looks for ``AzureWebJobs<name>`` first, then
``<name>``, and an empty name means the host storage (``AzureWebJobsStorage``). App settings are the
environment, which holds local.settings.json's Values once the host has loaded them.
``UseDevelopmentStorage=true`` means the local Azurite: the one the host itself uses when that is
Azurite (it may have been started on other ports), else the default Azurite ports.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: they are slow to import (see _storage.import_storage_clients)
    from azure.data.tables.aio import TableServiceClient
    from azure.storage.blob.aio import BlobServiceClient
    from azure.storage.queue.aio import QueueServiceClient

from emulator.host._azurite import DEV_ACCOUNT_NAME, AzuriteEndpoints, client_options, is_development_storage

HOST_STORAGE_SETTING = "AzureWebJobsStorage"
_PREFIX = "AzureWebJobs"


class ConnectionSettingError(LookupError):
    """A connection setting that is missing or not a storage connection string."""


def connection_label(setting_name: str) -> str:
    """The ``connection`` value that names ``setting_name`` in management URLs: "Storage" for the
    host storage setting (which an empty ``connection`` means too), else the setting's own name."""
    return "Storage" if setting_name == HOST_STORAGE_SETTING else setting_name


def _account_name(connection_string: str) -> str | None:
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "accountname":
            return value.strip()
    return None


class StorageAccounts:
    """Async storage clients per connection setting, created on first use and closed together."""

    def __init__(self, host_setting: str = HOST_STORAGE_SETTING, host_connection_string: str | None = None):
        #: The host's own storage: this setting resolves to ``host_connection_string`` when given
        #: (the command line and tests hand the host an explicit Azurite connection string).
        self._host_setting = host_setting
        self._host_connection_string = host_connection_string
        self._clients: dict[tuple[str, str], Any] = {}

    def setting_name(self, connection: str | None) -> str:
        """The app setting a ``connection`` value refers to (raises when none is defined)."""
        name = (connection or "").strip() or "Storage"
        for candidate in (_PREFIX + name, name):
            if candidate == self._host_setting and self._host_connection_string:
                return candidate
            if os.environ.get(candidate):
                return candidate
        missing = name if name.startswith(_PREFIX) else _PREFIX + name
        hint = ""
        if any(key.startswith(f"{name}__") for key in os.environ):
            hint = " Identity-based connections (settings named '<name>__serviceUri') are not emulated;"
            hint += " use a connection string."
        raise ConnectionSettingError(
            f"Storage account connection string '{missing}' does not exist. Make sure that it is a "
            f'defined App Setting (local.settings.json "Values" or an environment variable).{hint}'
        )

    def connection_string(self, connection: str | None) -> str:
        setting = self.setting_name(connection)
        if setting == self._host_setting and self._host_connection_string:
            return self._host_connection_string
        value = os.environ[setting]
        if is_development_storage(value):
            host = self._host_connection_string
            if host and _account_name(host) == DEV_ACCOUNT_NAME:
                return host
            return AzuriteEndpoints().connection_string
        return value

    @property
    def host_connection_string(self) -> str:
        """The host storage (timer status, blob receipts, the blob trigger queue live there)."""
        return self.connection_string(self._host_setting)

    def blobs(self, connection: str | None) -> BlobServiceClient:
        from azure.storage.blob.aio import BlobServiceClient

        return self._client("blob", connection, BlobServiceClient.from_connection_string)

    def queues(self, connection: str | None) -> QueueServiceClient:
        from azure.storage.queue.aio import QueueServiceClient

        # No encode policy: queue triggers and outputs apply the host's messageEncoding themselves.
        return self._client("queue", connection, QueueServiceClient.from_connection_string)

    def tables(self, connection: str | None) -> TableServiceClient:
        from azure.data.tables.aio import TableServiceClient

        return self._client("table", connection, TableServiceClient.from_connection_string)

    def _client(self, kind: str, connection: str | None, factory: Any) -> Any:
        key = (kind, self.connection_string(connection))
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = factory(key[1], **client_options(key[1]))
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
