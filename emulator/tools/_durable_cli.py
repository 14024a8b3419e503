"""``python -m emulator durable <command>``: manage orchestration instances like ``func durable``.

The commands work on the task hub in storage, with or without a running host: they go through
the same client operations as the HTTP management API, and state changes are control-queue
messages that a running host picks up when it next polls (a stopped one, when it starts). The
options are Core Tools' (``--id``, ``--function-name``, ``--task-hub-name``, ...); the output is
meant for people, or JSON with ``--json``. ``suspend`` and ``resume`` have no ``func durable``
counterpart and follow ``terminate``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from emulator.app._app_index import load_app
from emulator.app._settings import LOCAL_SETTINGS_JSON, AppLoadError, invalid_hub_name_message, load_settings
from emulator.client._client import (
    ClientError,
    ClientUrls,
    DurableClientService,
    InstanceNotFoundError,
    compact_json,
    validate_instance_id,
)
from emulator.client._durable_http import parse_datetime
from emulator.durable._history import OrchestrationStatus
from emulator.durable._replay import unknown_function_message
from emulator.functions._accounts import connection_label
from emulator.host._azurite import AzuriteNotInstalledError, connect_storage
from emulator.taskhub._interface import InstanceQuery
from emulator.taskhub.azure import is_missing_resource, is_storage_error, open_task_hub

_END_TOKEN = "bnVsbA=="  # base64 of "null": the provider's token after the last page


class CliError(Exception):
    """A command failed; the message is for the user."""


Command = Callable[[DurableClientService, argparse.Namespace], Awaitable[Any]]


# -- the parser -------------------------------------------------------------------------------------


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")
    return lowered == "true"


def _moment(text: str) -> datetime:
    moment = parse_datetime(text)
    if moment is None:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date/time (UTC unless it says otherwise): {text!r}"
        )
    return moment


def _statuses(text: str) -> list[OrchestrationStatus]:
    # Core Tools takes space-separated names in any case; commas are accepted too.
    names = {name.lower(): status for name, status in OrchestrationStatus.__members__.items()}
    found = []
    for part in text.replace(",", " ").split():
        if part.lower() not in names:
            valid = ", ".join(s.name for s in OrchestrationStatus)
            raise argparse.ArgumentTypeError(f"unknown runtime status {part!r} (one of {valid})")
        found.append(names[part.lower()])
    return found


def _flat(groups: list[list[OrchestrationStatus]] | None) -> list[OrchestrationStatus] | None:
    return None if groups is None else [status for group in groups for status in group]


def add_parser(commands: Any) -> None:
    """Register ``durable`` and its commands on the top-level subparsers."""
    durable = commands.add_parser(
        "durable",
        help="manage orchestration instances in the task hub (like `func durable`)",
        description="Manage orchestration instances in the app's task hub, with or without a running host.",
    )
    sub = durable.add_subparsers(dest="durable_command", required=True, metavar="<command>")

    def command(name: str, text: str, run: Command, *, with_id: bool = False) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
        parser.set_defaults(run=run)
        parser.add_argument(
            "--script-root", type=Path, default=Path.cwd(), help="the app folder (default: .)"
        )
        parser.add_argument("--task-hub-name", help="the task hub (default: the app's, from host.json)")
        parser.add_argument(
            "--connection-string-setting",
            help="the app setting holding the storage connection string (default: the app's)",
        )
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")
        if with_id:
            parser.add_argument("--id", required=True, help="the orchestration instance id")
        return parser

    start = command("start-new", "start a new instance of an orchestrator function", _start_new)
    start.set_defaults(creates_hub=True)
    start.add_argument("--id", default=None, help="the new instance's id (default: a new GUID)")
    start.add_argument("--function-name", required=True, help="the orchestrator function to start")
    start.add_argument("--input", help="the input, in-line or @path/to/file.json")

    status = command(
        "get-runtime-status", "show the status of an orchestration instance", _runtime_status, with_id=True
    )
    status.add_argument(
        "--show-input", type=_bool, nargs="?", const=True, default=False, help="include the input"
    )
    status.add_argument(
        "--show-output", type=_bool, nargs="?", const=True, default=False, help="include the output"
    )

    command("get-history", "show the history of an orchestration instance", _history, with_id=True)

    instances = command("get-instances", "list orchestration instances, a page at a time", _instances)
    instances.add_argument("--created-after", type=_moment, help="only instances created after this time")
    instances.add_argument("--created-before", type=_moment, help="only instances created before this time")
    instances.add_argument(
        "--runtime-status", type=_statuses, nargs="+", help="only these statuses (space separated)"
    )
    instances.add_argument("--top", type=int, default=10, help="instances per page (default: 10)")
    instances.add_argument("--continuation-token", help="the token printed with the previous page")

    raise_event = command(
        "raise-event", "send an event to an orchestration instance", _raise_event, with_id=True
    )
    raise_event.add_argument("--event-name", default=None, help="the event's name (default: Event_<guid>)")
    raise_event.add_argument("--event-data", help="the event's data, in-line or @path/to/file.json")

    for name, text, run in (
        ("terminate", "terminate an orchestration instance", _terminate),
        ("suspend", "suspend an orchestration instance", _suspend),
        ("resume", "resume a suspended orchestration instance", _resume),
        ("rewind", "rewind a failed orchestration instance", _rewind),
    ):
        command(name, text, run, with_id=True).add_argument("--reason", help=f"why ({name})")

    purge = command(
        "purge-history", "delete the state and history of instances created in a time range", _purge
    )
    purge.add_argument("--created-after", type=_moment, help="only instances created after this time")
    purge.add_argument("--created-before", type=_moment, help="only instances created before this time")
    purge.add_argument(
        "--runtime-status",
        type=_statuses,
        nargs="+",
        help="only these statuses (Completed, Terminated, Canceled, Failed; default: any status)",
    )

    command("delete-task-hub", "delete the task hub: all its tables, queues and blobs", _delete_task_hub)


# -- running a command ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except (CliError, AppLoadError, AzuriteNotInstalledError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace) -> int:
    script_root = Path(args.script_root).resolve()
    settings = load_settings(script_root)
    hub_name = args.task_hub_name or settings.hub_name
    problem = invalid_hub_name_message(hub_name)
    if problem is not None:
        raise CliError(problem)
    if args.run is _start_new:
        # Checked before anything is created: a start that cannot run starts nothing.
        args.input_text = _read_input(args.input, inline_json=True)
        if args.id:
            try:
                validate_instance_id(args.id)
            except ClientError as exc:
                raise CliError(exc.message) from None
        args.function_name = _require_orchestrator(script_root, args.function_name)
    setting = args.connection_string_setting or settings.storage_connection_name
    connection_string = os.environ.get(setting) or settings.values.get(setting)
    if not connection_string:
        raise CliError(
            f"The storage connection setting '{setting}' is not defined in {LOCAL_SETTINGS_JSON} \"Values\" "
            f"or in the environment."
        )
    try:
        storage_connection = connect_storage(
            connection_string, script_root / "__azurite__", search_roots=[script_root]
        )
    except RuntimeError as exc:  # development storage whose ports are taken by something else
        raise CliError(str(exc)) from None
    storage = open_task_hub(storage_connection.connection_string, hub_name, settings.partition_count)
    # No host: names are not checked against an app index and messages wait in their queues.
    client = DurableClientService(
        storage=storage,
        index=None,
        leases=None,
        deliver=lambda message, handle: None,
        # The commands hand out no management URLs; these are func start's defaults.
        urls=ClientUrls(public_base="http://localhost:7071", rpc_base="http://127.0.0.1:7071/durabletask/"),
        connection_name=connection_label(setting),
    )
    try:
        if getattr(args, "creates_hub", False):
            await storage.create()
        result = await args.run(client, args)
    except ClientError as exc:
        raise CliError(exc.message) from None
    except Exception as exc:
        if is_missing_resource(exc):
            raise CliError(
                f"The task hub '{hub_name}' does not exist in this storage account (its tables or queues "
                f"are missing). Start the app once, or check --task-hub-name."
            ) from None
        if not is_storage_error(exc):
            raise
        # The SDK's message goes on with the service's XML or JSON answer: its first line says it.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"A storage request failed ({type(exc).__name__}): {first_line}") from None
    finally:
        await storage.close()
        storage_connection.close()
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _say(args: argparse.Namespace, *lines: str) -> None:
    if not args.json:
        for line in lines:
            print(line)


_NOT_JSON = "Could not deserialize the input to the orchestration instance into a valid JSON object"


def _read_input(value: str | None, *, inline_json: bool = False) -> str | None:
    """``RetrieveCommandInputData``: ``@file`` is parsed as JSON, anything else is a string input.

    A Python orchestrator reads its input with ``json.loads`` (``get_input``), so an in-line
    ``--input`` that is not JSON text could only fail the instance: ``inline_json`` refuses it up
    front. In-line event data stays a plain string, as ``func durable`` sends it.
    """
    if value is None:
        return None
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise CliError(f"Could not find input file at '{path}'")
        try:
            return compact_json(json.loads(path.read_text(encoding="utf-8-sig")))
        except ValueError as exc:
            raise CliError(f"{_NOT_JSON} (the file '{path}': {exc}).") from None
    if inline_json:
        try:
            json.loads(value)
        except ValueError as exc:
            raise CliError(
                f"{_NOT_JSON} ({exc}); a Python orchestrator reads its input as JSON, so quote a string "
                f"input, e.g. --input '\"text\"'."
            ) from None
    return compact_json(value)


def _require_orchestrator(script_root: Path, name: str) -> str:
    """The host's check of ``StartNewAsync``: the app must have an orchestrator of that name.

    Returns the name the host records (names match case-insensitively).
    """
    # The app is imported in its own folder, as the worker imports it.
    caller_cwd = Path.cwd()
    os.chdir(script_root)
    try:
        index = load_app(script_root)
    finally:
        os.chdir(caller_cwd)
    function = index.orchestrator(name)
    if function is None:
        raise CliError(unknown_function_message(name, "orchestrator", index.names("orchestrationTrigger")))
    return function.durable_name


# -- the commands ----------------------------------------------------------------------------------


async def _start_new(client: DurableClientService, args: argparse.Namespace) -> Any:
    instance_id = await client.start_new(args.function_name, args.id or uuid.uuid4().hex, args.input_text)
    status = await client.get_status(instance_id)
    assert status is not None
    _say(args, f"Started '{status['name']}' at {status['createdTime']}. Instance ID: '{instance_id}'.")
    return {"id": instance_id, "status": status}


async def _runtime_status(client: DurableClientService, args: argparse.Namespace) -> Any:
    status = await client.get_status(args.id, show_input=args.show_input)
    if status is None:
        raise CliError(f"Could not find an orchestration instance with id '{args.id}'")
    if not args.show_output:
        status["output"] = None
    lines = [
        f"Name:           {status['name']}",
        f"Instance ID:    {status['instanceId']}",
        f"Runtime status: {status['runtimeStatus']}",
        f"Created:        {status['createdTime']}",
        f"Last updated:   {status['lastUpdatedTime']}",
    ]
    if status["customStatus"] is not None:
        lines.append(f"Custom status:  {json.dumps(status['customStatus'])}")
    if args.show_input:
        lines.append(f"Input:          {json.dumps(status['input'], ensure_ascii=False)}")
    if args.show_output:
        lines.append(f"Output:         {json.dumps(status['output'], ensure_ascii=False)}")
    _say(args, *lines)
    return status


def _event_detail(event: dict[str, Any]) -> str:
    for key in ("Name", "Reason", "OrchestrationStatus", "FireAt"):
        if event.get(key) is not None:
            return f"{key}={event[key]}"
    return ""


async def _history(client: DurableClientService, args: argparse.Namespace) -> Any:
    events = await client.get_history(args.id)
    rows = [(e["Timestamp"], e["EventType"], str(e.get("EventId", -1)), _event_detail(e)) for e in events]
    _say(args, *_table(("Timestamp", "EventType", "EventId", "Detail"), rows))
    return events


async def _instances(client: DurableClientService, args: argparse.Namespace) -> Any:
    if args.top < 1:
        raise CliError("--top must be at least 1.")
    statuses = _flat(args.runtime_status)
    condition = InstanceQuery(
        created_from=args.created_after,
        created_to=args.created_before,
        statuses=tuple(s.name for s in statuses) if statuses else None,
    )
    page = await client.list_instances(
        condition, show_input=False, top=min(args.top, 1000), continuation_token=args.continuation_token
    )
    token = None if page.continuation_token == _END_TOKEN else page.continuation_token
    rows = [
        (s["instanceId"], s["name"], s["runtimeStatus"], s["createdTime"], s["lastUpdatedTime"])
        for s in page.statuses
    ]
    _say(args, *_table(("Instance ID", "Name", "Runtime status", "Created", "Last updated"), rows))
    if token:
        _say(args, f"Continuation token for next set of results: '{token}'")
    else:
        _say(args, "No more instances.")
    return {"instances": page.statuses, "continuationToken": token}


async def _raise_event(client: DurableClientService, args: argparse.Namespace) -> Any:
    name = args.event_name or f"Event_{uuid.uuid4().hex}"
    data = _read_input(args.event_data)
    await client.raise_event(args.id, name, compact_json(None) if data is None else data)
    _say(args, f"Raised event '{name}' to instance '{args.id}'.")
    return {"instanceId": args.id, "eventName": name}


async def _terminate(client: DurableClientService, args: argparse.Namespace) -> Any:
    try:
        await client.terminate(args.id, args.reason)
    except InstanceNotFoundError:
        raise CliError(f"Failed to find instance '{args.id}'. No instance was terminated.") from None
    _say(args, f"Sent a termination message to instance '{args.id}'.")
    return {"instanceId": args.id, "operation": "terminate"}


async def _suspend(client: DurableClientService, args: argparse.Namespace) -> Any:
    await client.suspend(args.id, args.reason)
    _say(args, f"Sent a suspend message to instance '{args.id}'.")
    return {"instanceId": args.id, "operation": "suspend"}


async def _resume(client: DurableClientService, args: argparse.Namespace) -> Any:
    await client.resume(args.id, args.reason)
    _say(args, f"Sent a resume message to instance '{args.id}'.")
    return {"instanceId": args.id, "operation": "resume"}


async def _rewind(client: DurableClientService, args: argparse.Namespace) -> Any:
    before = await client.require_instance(args.id)
    try:
        leaves = await client.rewind(args.id, args.reason)
    except ClientError as exc:
        if isinstance(exc, InstanceNotFoundError):
            raise
        raise CliError(
            "Orchestration instance not rewound. Must have a status of 'Failed', or an EventType of "
            "'TaskFailed' or 'SubOrchestrationInstanceFailed' to be rewound "
            f"(it is {before.runtime_status.name})."
        ) from None
    after = await client.require_instance(args.id)
    _say(
        args,
        f"Rewind message sent to instance '{args.id}'.",
        f"Status before rewind: {before.runtime_status.name}",
        f"Status after rewind: {after.runtime_status.name}",
    )
    return {
        "instanceId": args.id,
        "rewound": leaves,
        "statusBefore": before.runtime_status.name,
        "statusAfter": after.runtime_status.name,
    }


async def _purge(client: DurableClientService, args: argparse.Namespace) -> Any:
    statuses = _flat(args.runtime_status)
    result = await client.purge_instances(args.created_after, args.created_before, statuses)
    after = args.created_after.isoformat() if args.created_after else "the beginning"
    before = args.created_before.isoformat() if args.created_before else "now"
    message = f"Purged orchestration history for all instances created between '{after}' and '{before}'"
    if statuses:
        names = ",".join(s.name for s in statuses)
        message += f" and whose runtime status matched one of the following: [{names}]"
    _say(
        args,
        message,
        f"Instances deleted: {result.instances_deleted}",
        f"Rows deleted: {result.rows_deleted}",
    )
    return {"instancesDeleted": result.instances_deleted, "rowsDeleted": result.rows_deleted}


async def _delete_task_hub(client: DurableClientService, args: argparse.Namespace) -> Any:
    await client.delete_task_hub()
    _say(args, f"Task hub '{client.hub_name}' successfully deleted.")
    return {"taskHubName": client.hub_name, "deleted": True}


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return ["(none)"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
