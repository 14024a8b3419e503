"""The host side of the durable client: start instances, read their status, bind clients.

Both the HTTP management API and the SDK's ``DurableOrchestrationClient`` (through
``rpcBaseUrl``) end up here, so each operation has one implementation with the real host's
validation and messages (host-behaviour.md section 3, sdk-protocol.md section 11).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from emulator import _history as h
from emulator._app_index import AppIndex
from emulator._history import OrchestrationStatus
from emulator._leases import LeaseKeeper
from emulator._replay import unknown_function_message
from emulator._storage import ControlMessage, InstanceRecord, MessageHandle, TaskHubStorage

MAX_INSTANCE_ID_LENGTH = 256
WEBHOOK_PATH = "/runtime/webhooks/durabletask"
RPC_PATH = "/durabletask/"

#: Statuses that a new start with the same instance id may not overwrite (NonRunningStates).
RUNNING_STATES = frozenset(
    {
        OrchestrationStatus.Running,
        OrchestrationStatus.Pending,
        OrchestrationStatus.Suspended,
        OrchestrationStatus.ContinuedAsNew,
    }
)

ControlSink = Callable[[ControlMessage, MessageHandle | None], None]


class ClientError(Exception):
    """An operation rejected the way the real host rejects it."""

    def __init__(self, status: int, message: str, exception_type: str = "System.ArgumentException") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.exception_type = exception_type


def _invalid_character(ch: str) -> bool:
    return ch in "/\\#?" or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F


def validate_instance_id(instance_id: str) -> None:
    # The extension passes its arguments to ArgumentException in swapped order, so the
    # message users see is "instanceId (Parameter '...')": reproduced as is.
    if instance_id.startswith("@"):
        raise ClientError(400, "instanceId (Parameter 'Orchestration instance ids must not start with @.')")
    if any(_invalid_character(ch) for ch in instance_id):
        raise ClientError(
            400,
            "instanceId (Parameter 'Orchestration instance ids must not contain /, \\, #, ?, or control "
            "characters.')",
        )
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise ClientError(400, f"Instance ID lengths must not exceed {MAX_INSTANCE_ID_LENGTH} characters.")


def format_status_time(moment: Any) -> str:
    """Status payload timestamps: second precision, ``Z`` suffix."""
    return str(moment.astimezone(h.utcnow().tzinfo).strftime("%Y-%m-%dT%H:%M:%SZ"))


def parse_json_or_text(text: str | None) -> Any:
    """Stored JSON text back to a value; text that is not JSON (a failure reason) stays a string."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class ClientUrls:
    """Where this host is reachable, for the URLs handed to clients."""

    public_base: str  # e.g. http://localhost:7071
    rpc_base: str  # e.g. http://127.0.0.1:7071/durabletask/


class DurableClientService:
    def __init__(
        self,
        *,
        storage: TaskHubStorage,
        index: AppIndex,
        leases: LeaseKeeper,
        deliver: ControlSink,
        urls: ClientUrls,
        connection_name: str,
    ) -> None:
        self._storage = storage
        self._index = index
        self._leases = leases
        self._deliver = deliver
        self.urls = urls
        self.hub_name = storage.hub_name
        self.connection_name = connection_name

    # -- operations -------------------------------------------------------------------------

    async def start_new(self, name: str, instance_id: str | None, input_text: str | None) -> str:
        """Schedule a new instance; return its id (``StartNewAsync``)."""
        function = self._index.orchestrator(name)
        if function is None:
            raise ClientError(
                400, unknown_function_message(name, "orchestrator", self._index.names("orchestrationTrigger"))
            )
        instance_id = instance_id or uuid.uuid4().hex
        validate_instance_id(instance_id)
        existing = await self._storage.read_instance(instance_id)
        if existing is not None and existing.runtime_status in RUNNING_STATES:
            raise ClientError(
                500,
                f"An Orchestration instance with the status {existing.runtime_status.name} already exists.",
                "DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException",
            )
        now = h.utcnow()
        execution_id = uuid.uuid4().hex
        started = h.execution_started(
            instance_id=instance_id,
            execution_id=execution_id,
            name=function.durable_name,
            input_text=input_text,
            timestamp=now,
            generation=0 if existing is None else existing.generation + 1,
        )
        message = ControlMessage(instance_id, [started], execution_id)
        # Message first, then the Pending row, as the real client does: a crash in between leaves
        # a message that still starts the instance, never a Pending row that nothing will run.
        handle = await self._storage.send_control(message, lease=self._leases.lease_seconds)
        record = InstanceRecord(
            instance_id=instance_id,
            name=function.durable_name,
            runtime_status=OrchestrationStatus.Pending,
            execution_id=execution_id,
            created_time=now,
            last_updated_time=now,
            input=input_text,
            generation=started["Generation"],
        )
        await self._storage.write_pending_instance(record, None if existing is None else existing.etag)
        self._deliver(message, handle)
        return instance_id

    async def get_status(
        self,
        instance_id: str,
        *,
        show_input: bool = True,
        show_history: bool = False,
        show_history_output: bool = False,
    ) -> dict[str, Any] | None:
        record = await self._storage.read_instance(instance_id)
        if record is None:
            return None
        status: dict[str, Any] = {
            "name": record.name,
            "instanceId": record.instance_id,
            "runtimeStatus": record.runtime_status.name,
            "input": parse_json_or_text(record.input) if show_input else None,
            "customStatus": parse_json_or_text(record.custom_status),
            "output": parse_json_or_text(record.output),
            "createdTime": format_status_time(record.created_time),
            "lastUpdatedTime": format_status_time(record.last_updated_time),
        }
        if show_history:
            status["historyEvents"] = await self._history_events(record, show_input, show_history_output)
        return status

    async def _history_events(
        self, record: InstanceRecord, show_input: bool, show_output: bool
    ) -> list[dict[str, Any]]:
        if record.runtime_status == OrchestrationStatus.Pending:
            return []
        stored = await self._storage.read_history(record.instance_id)
        return history_for_status(stored.events, show_input=show_input, show_output=show_output)

    # -- URLs and bindings ------------------------------------------------------------------

    def _query(self) -> str:
        return f"taskHub={quote(self.hub_name)}&connection={quote(self.connection_name)}"

    def management_urls(self, instance_id: str, origin: str | None = None) -> dict[str, str]:
        """``HttpManagementPayload``: what ``create_check_status_response`` hands out."""
        base = f"{origin or self.urls.public_base}{WEBHOOK_PATH}/instances/{quote(instance_id, safe='')}"
        q = self._query()
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{base}?{q}",
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{q}",
            "terminatePostUri": f"{base}/terminate?reason={{text}}&{q}",
            "rewindPostUri": f"{base}/rewind?reason={{text}}&{q}",
            "purgeHistoryDeleteUri": f"{base}?{q}",
            "restartPostUri": f"{base}/restart?{q}",
            "suspendPostUri": f"{base}/suspend?reason={{text}}&{q}",
            "resumePostUri": f"{base}/resume?reason={{text}}&{q}",
        }

    def check_status_payload(self, instance_id: str, origin: str | None = None) -> dict[str, str]:
        urls = self.management_urls(instance_id, origin)
        urls.pop("rewindPostUri")
        return urls

    def binding_data(self, task_hub: str | None = None) -> dict[str, Any]:
        """The ``durableClient`` binding JSON (``DurableOrchestrationClientToString``)."""
        webhook = f"{self.urls.public_base}{WEBHOOK_PATH}"
        management = self.management_urls("INSTANCEID")
        management["id"] = "INSTANCEID"
        return {
            "taskHubName": task_hub or self.hub_name,
            "connectionName": None,
            "creationUrls": {
                "createNewInstancePostUri": f"{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]",
                "createAndWaitOnNewInstancePostUri": (
                    f"{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]"
                    "?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}"
                ),
            },
            "managementUrls": management,
            "baseUrl": webhook,
            "requiredQueryStringParameters": "",
            "rpcBaseUrl": self.urls.rpc_base,
            "httpBaseUrl": None,
        }


def history_for_status(
    events: list[dict[str, Any]], *, show_input: bool, show_output: bool
) -> list[dict[str, Any]]:
    """The ``historyEvents`` shape of the status API (``GetDurableOrchestrationStatusAsync``)."""
    scheduled: dict[int, dict[str, Any]] = {}
    completed_ids = {h.completion_key(e) for e in events} - {None}
    out: list[dict[str, Any]] = []
    for event in events:
        kind = h.event_type(event)
        if kind in (h.EventType.OrchestratorStarted, h.EventType.OrchestratorCompleted):
            continue
        item = {k: v for k, v in event.items() if k not in ("EventId", "IsPlayed")}
        item["EventType"] = kind.name
        if kind in (h.EventType.TaskScheduled, h.EventType.SubOrchestrationInstanceCreated):
            scheduled[int(event["EventId"])] = event
            if int(event["EventId"]) in completed_ids:
                continue
            item.pop("Version", None)
        elif kind == h.EventType.ExecutionStarted:
            item["FunctionName"] = item.pop("Name", None)
            for hidden in ("OrchestrationInstance", "ParentInstance", "Version", "Tags"):
                item.pop(hidden, None)
            if not show_input:
                item.pop("Input", None)
        elif kind == h.EventType.ExecutionCompleted:
            item["OrchestrationStatus"] = OrchestrationStatus(event["OrchestrationStatus"]).name
        task_id = h.completion_key(event)
        if task_id is not None and kind != h.EventType.TimerFired and task_id in scheduled:
            source = scheduled[task_id]
            item["FunctionName"] = source.get("Name")
            item["ScheduledTime"] = source.get("Timestamp")
            item.pop("TaskScheduledId", None)
            if show_input:
                item["Input"] = source.get("Input")
        if kind == h.EventType.TimerFired:
            item.pop("TimerId", None)
        if "Result" in item:
            if show_output:
                item["Result"] = parse_json_or_text(item["Result"])
            else:
                item.pop("Result")
        out.append(item)
    return out
