"""Durable storage providers: the app's choice in host.json, run on the emulator's own back end.

An app's code is the same whichever provider it is deployed with (Azure Storage, the Durable Task
Scheduler, MSSQL or Netherite): the provider is chosen in host.json
(``extensions.durableTask.storageProvider.type``) and only changes where the extension keeps the
durable state. The emulator keeps it in Azure Storage (Azurite) in every case, from
``AzureWebJobsStorage``, so an app written for another provider runs unchanged. What the other
providers' settings change for the app is honoured: the task hub name (``hubName``, usually
``%TASKHUB_NAME%``, or the Scheduler connection string's ``TaskHub``). Their connection settings
name services the emulator does not talk to, and their tuning options (partition counts, ...) do
not change what the app sees, so both are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulator.app._config import get_ci

AZURE_STORAGE = "AzureStorage"
DEFAULT_STORAGE_CONNECTION = "AzureWebJobsStorage"


@dataclass(frozen=True)
class _Provider:
    type: str
    title: str
    #: storageProvider keys naming the provider's own connection setting, and its default.
    connection_keys: tuple[str, ...]
    default_connection: str
    #: Netherite keeps part of its state in Azure Storage, under a setting of its own.
    storage_connection_key: str | None = None


_PROVIDERS = {
    provider.type.lower(): provider
    for provider in (
        _Provider(
            "azureManaged",
            "the Durable Task Scheduler",
            ("connectionStringName", "connectionName"),
            "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
        ),
        _Provider(
            "mssql", "the Microsoft SQL (MSSQL) provider", ("connectionStringName",), "SQLDB_Connection"
        ),
        _Provider(
            "netherite",
            "the Netherite provider",
            ("EventHubsConnectionName",),
            "EventHubsConnection",
            storage_connection_key="StorageConnectionName",
        ),
    )
}

_STORAGE_HUB_MAX = 45


@dataclass(frozen=True)
class EmulatedProvider:
    """Where the emulator keeps the durable state of an app written for another provider."""

    hub_name: str
    storage_connection_name: str
    #: The start-up line that says so.
    notice: str


class UnknownProviderError(ValueError):
    """host.json names a provider that does not exist; the message is for the user."""


def provider_type(storage: Any) -> str:
    """The provider host.json selects: ``AzureStorage`` or one of the others, as written."""
    raw = get_ci(storage, "type")
    if raw is None or raw == "":
        return AZURE_STORAGE
    if not isinstance(raw, str):
        raise UnknownProviderError(
            "extensions.durableTask.storageProvider.type in host.json must be a string."
        )
    if raw.lower() in (AZURE_STORAGE.lower(), "azure_storage"):
        return AZURE_STORAGE
    if raw.lower() not in _PROVIDERS:
        known = ", ".join([AZURE_STORAGE, *(p.type for p in _PROVIDERS.values())])
        raise UnknownProviderError(
            f"extensions.durableTask.storageProvider.type in host.json is '{raw}', which is not a durable "
            f"storage provider the Durable Functions extension knows (one of {known})."
        )
    return raw


def emulate_provider(
    type_name: str,
    storage: Any,
    hub_name: str | None,
    lookup: Callable[[str], str | None],
    default_hub_name: str,
) -> EmulatedProvider:
    """The task hub and Azure Storage connection for an app whose host.json selects ``type_name``.

    ``hub_name`` is host.json's ``hubName`` after ``%Setting%`` references (None if it has none);
    ``lookup`` reads an app setting the host's way.
    """
    provider = _PROVIDERS[type_name.lower()]
    connection = _string_setting(storage, provider.connection_keys) or provider.default_connection
    if hub_name is None and provider.type == "azureManaged":
        hub_name = _connection_string_part(lookup(connection) or "", "TaskHub")
    hub_name = hub_name or default_hub_name
    storage_hub = storage_hub_name(hub_name)
    storage_connection = DEFAULT_STORAGE_CONNECTION
    if provider.storage_connection_key is not None:
        storage_connection = (
            _string_setting(storage, (provider.storage_connection_key,)) or storage_connection
        )
    kept_as = f"task hub '{hub_name}'" + (f" (stored as '{storage_hub}')" if storage_hub != hub_name else "")
    notice = (
        f"host.json selects {provider.title} (storageProvider type '{type_name}'); the emulator runs the "
        f"app unchanged with its durable state in Azure Storage from '{storage_connection}', {kept_as}, "
        f"and does not use '{connection}'."
    )
    return EmulatedProvider(storage_hub, storage_connection, notice)


def storage_hub_name(hub_name: str) -> str:
    """A name Azure Storage takes for a task hub another provider allows (letters and digits only)."""
    name = re.sub(r"[^A-Za-z0-9]", "", hub_name)
    if not name or not name[0].isalpha():
        name = "Hub" + name
    return name.ljust(3, "0")[:_STORAGE_HUB_MAX]


def _connection_string_part(connection_string: str, key: str) -> str | None:
    for part in connection_string.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip().lower() == key.lower() and value.strip():
            return value.strip()
    return None


def _string_setting(storage: Any, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = get_ci(storage, key)
        if isinstance(value, str) and value:
            return value
    return None
