"""host.json's storageProvider: every provider's app runs on the emulator's Azure Storage back end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emulator.app._settings import AppLoadError, load_settings
from tests.unit.test_settings import durable, restore_environment, write_app

__all__ = ["restore_environment"]  # the autouse fixture applies here too


def _settings(tmp_path: Path, provider: dict[str, Any], values: dict[str, str], **more: Any) -> Any:
    host = durable(storageProvider=provider, **more)
    return load_settings(write_app(tmp_path, host, {"Values": values}))


def test_the_scheduler_keeps_its_task_hub_and_leaves_its_connection_alone(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        {"type": "azureManaged", "connectionStringName": "DURABLE_TASK_SCHEDULER_CONNECTION_STRING"},
        {
            "DURABLE_TASK_SCHEDULER_CONNECTION_STRING": "Endpoint=http://localhost:8080;Authentication=None",
            "TASKHUB_NAME": "orders",
        },
        hubName="%TASKHUB_NAME%",
    )
    assert settings.hub_name == "orders"
    assert settings.storage_connection_name == "AzureWebJobsStorage"
    assert settings.storage_provider_notice == (
        "host.json selects the Durable Task Scheduler (storageProvider type 'azureManaged'); the emulator "
        "runs the app unchanged with its durable state in Azure Storage from 'AzureWebJobsStorage', task "
        "hub 'orders', and does not use 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'."
    )


def test_the_scheduler_task_hub_can_come_from_its_connection_string(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        {"type": "AzureManaged", "connectionName": "DTS"},
        {"DTS": "Endpoint=http://localhost:8080;TaskHub=my-hub-1;Authentication=None"},
    )
    assert settings.hub_name == "myhub1"
    assert "task hub 'my-hub-1' (stored as 'myhub1')" in settings.storage_provider_notice


@pytest.mark.parametrize(
    ("provider", "expected_connection", "unused"),
    [
        (
            {"type": "mssql", "connectionStringName": "SQLDB_Connection"},
            "AzureWebJobsStorage",
            "SQLDB_Connection",
        ),
        ({"type": "netherite"}, "AzureWebJobsStorage", "EventHubsConnection"),
        (
            {"type": "Netherite", "StorageConnectionName": "NetheriteStorage", "partitionCount": 32},
            "NetheriteStorage",
            "EventHubsConnection",
        ),
    ],
)
def test_mssql_and_netherite_apps_keep_their_hub_name(
    tmp_path: Path, provider: dict[str, Any], expected_connection: str, unused: str
) -> None:
    settings = _settings(tmp_path, provider, {}, hubName="SqlHub")
    assert (settings.hub_name, settings.storage_connection_name) == ("SqlHub", expected_connection)
    assert settings.partition_count == 4  # the provider's own tuning is not the emulator's
    assert f"storageProvider type '{provider['type']}'" in settings.storage_provider_notice
    assert settings.storage_provider_notice.endswith(f"and does not use '{unused}'.")


def test_azure_storage_named_explicitly_is_the_default_provider(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {"type": "AzureStorage", "partitionCount": 2}, {}, hubName="Plain")
    assert (settings.hub_name, settings.partition_count, settings.storage_provider_notice) == (
        "Plain",
        2,
        None,
    )


def test_an_unknown_provider_type_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError) as raised:
        _settings(tmp_path, {"type": "cosmos"}, {})
    assert str(raised.value) == (
        "extensions.durableTask.storageProvider.type in host.json is 'cosmos', which is not a durable "
        "storage provider the Durable Functions extension knows (one of AzureStorage, azureManaged, mssql, "
        "netherite)."
    )
