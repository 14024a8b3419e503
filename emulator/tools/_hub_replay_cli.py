"""``python -m emulator replay --task-hub NAME``: check a task hub's running instances before a deploy.

Exit status 0 when every instance not finished replays with the decisions its history
recorded, 1 when one would break (nondeterminism, a missing orchestrator, a history that
cannot be replayed), 2 for a usage, app or storage error (one line on stderr). The task hub
is only read (see :mod:`emulator.tools._hub_replay`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from emulator.app._app_index import AppIndex
from emulator.app._settings import LOCAL_SETTINGS_JSON, AppSettings, invalid_hub_name_message, load_settings
from emulator.durable._history import OrchestrationStatus
from emulator.host._azurite import AzuriteNotInstalledError, connect_storage
from emulator.taskhub.azure import is_missing_resource, is_storage_error, open_task_hub
from emulator.tools._durable_cli import _flat, _statuses, storage_failure
from emulator.tools._hub_replay import DEFAULT_CONCURRENCY, HubCheck, check_task_hub


class HubReplayError(Exception):
    """The check could not run; the message (one line) is for the user."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the task hub form of ``replay``."""
    hub = parser.add_argument_group("checking a task hub's running instances (instead of HISTORY.json)")
    hub.add_argument("--task-hub", metavar="NAME", help="replay every instance of this task hub not finished")
    hub.add_argument(
        "--connection",
        metavar="SETTING_OR_CONNECTION_STRING",
        help="an app setting holding the storage connection string, or the string itself "
        "(default: the app's AzureWebJobsStorage, from the environment or local.settings.json)",
    )
    hub.add_argument(
        "--runtime-status",
        type=_statuses,
        nargs="+",
        help="only these statuses (default: Pending Running Suspended ContinuedAsNew)",
    )
    hub.add_argument("--instance-id-prefix", help="only instances whose id starts with this")
    hub.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"histories read at once (default: {DEFAULT_CONCURRENCY})",
    )
    hub.add_argument("--json", action="store_true", help="print JSON for scripts")


def connection_string_for(connection: str | None, settings: AppSettings) -> str:
    """``connection`` as the host resolves a connection: a setting's value, or a connection string."""
    if connection and "=" in connection:
        return connection
    setting = connection or settings.storage_connection_name
    value = os.environ.get(setting) or settings.values.get(setting)
    if not value:
        raise HubReplayError(
            f"The storage connection setting '{setting}' is not defined in {LOCAL_SETTINGS_JSON} \"Values\" "
            "or in the environment."
        )
    return value


async def check_hub_in_storage(
    connection_string: str,
    hub_name: str,
    index: AppIndex,
    *,
    partition_count: int = 4,
    statuses: list[OrchestrationStatus] | None = None,
    instance_id_prefix: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> HubCheck:
    """:func:`check_task_hub` on the hub in a storage account (never created: only read)."""
    problem = invalid_hub_name_message(hub_name)
    if problem is not None:
        raise HubReplayError(problem)
    try:
        hub = open_task_hub(connection_string, hub_name, partition_count)
    except ValueError as exc:  # a connection string the storage SDKs cannot parse
        raise HubReplayError(f"The storage connection string is not valid: {exc}") from None
    try:
        return await check_task_hub(
            hub, index, statuses=statuses, instance_id_prefix=instance_id_prefix, concurrency=concurrency
        )
    except Exception as exc:
        if is_missing_resource(exc):
            raise HubReplayError(
                f"The task hub '{hub_name}' does not exist in this storage account (its Instances table "
                "is missing): check --task-hub and --connection."
            ) from None
        if not is_storage_error(exc):
            raise
        raise HubReplayError(storage_failure(exc)) from None
    finally:
        await hub.close()


def check_app_hub(
    script_root: Path,
    task_hub: str,
    index: AppIndex,
    *,
    connection: str | None = None,
    statuses: list[OrchestrationStatus] | None = None,
    instance_id_prefix: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> HubCheck:
    """The check on the app's storage, its connection resolved as the host resolves it (development
    storage included: Azurite is started on the app's data when none answers, and stopped after)."""
    if concurrency < 1:
        raise HubReplayError("--concurrency must be at least 1.")
    settings = load_settings(script_root)
    connection_string = connection_string_for(connection, settings)
    try:
        storage = connect_storage(connection_string, script_root / "__azurite__", search_roots=[script_root])
    except (RuntimeError, AzuriteNotInstalledError) as exc:
        raise HubReplayError(str(exc)) from None
    try:
        return asyncio.run(
            check_hub_in_storage(
                storage.connection_string,
                task_hub,
                index,
                partition_count=settings.partition_count,
                statuses=statuses,
                instance_id_prefix=instance_id_prefix,
                concurrency=concurrency,
            )
        )
    finally:
        storage.close()


def run(args: argparse.Namespace, index: AppIndex) -> int:
    """The task hub form of ``replay``; ``index`` is the app, already loaded."""
    try:
        result = check_app_hub(
            Path(args.script_root).resolve(),
            args.task_hub,
            index,
            connection=args.connection,
            statuses=_flat(args.runtime_status),
            instance_id_prefix=args.instance_id_prefix,
            concurrency=args.concurrency,
        )
    except HubReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print(result, as_json=args.json)
    return 0 if result.ok else 1


def _print(result: HubCheck, *, as_json: bool) -> None:
    if as_json:
        payload: Any = result.to_json()
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        print(result.format())
