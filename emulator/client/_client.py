"""The host side of the durable client: every instance management operation, in one place.

The HTTP management API, the SDK's ``DurableOrchestrationClient`` (through ``rpcBaseUrl``) and
the ``durable`` command line all end up here, so each operation has one implementation with the
real host's validation, state rules and messages (docs/host-behaviour.md section 3, docs/sdk-protocol.md
section 11). State changes travel the way the real client sends them: one history event in a
control-queue message for the instance, which the orchestration engine applies in an episode.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from emulator.app._app_index import AppIndex
from emulator.client._entity_client import EntityClient
from emulator.client._rewind import rewind_history
from emulator.durable import _history as h
from emulator.durable._crash import crash_point
from emulator.durable._history import EventType, HistoryEvent, OrchestrationStatus
from emulator.durable._leases import LeaseKeeper
from emulator.durable._replay import unknown_function_message
from emulator.durable._routing import ControlSink
from emulator.taskhub._interface import (
    ControlMessage,
    InstanceQuery,
    InstanceRecord,
    InvalidContinuationToken,
    TaskHub,
)

MAX_INSTANCE_ID_LENGTH = 256
WEBHOOK_PATH = "/runtime/webhooks/durabletask"
RPC_PATH = "/durabletask/"
DEFAULT_PAGE_SIZE = 100

#: Statuses that a new start with the same instance id may not overwrite (NonRunningStates),
#: and the ones events can still be delivered to (``IsOrchestrationRunning``).
RUNNING_STATES = frozenset(
    {
        OrchestrationStatus.Running,
        OrchestrationStatus.Pending,
        OrchestrationStatus.Suspended,
        OrchestrationStatus.ContinuedAsNew,
    }
)
#: ``IsCompletedStatus``: operations on these answer 410 Gone.
TERMINAL_STATES = frozenset(
    {
        OrchestrationStatus.Completed,
        OrchestrationStatus.Failed,
        OrchestrationStatus.Terminated,
        OrchestrationStatus.Canceled,
    }
)
#: What purge-by-filter deletes at most: the provider drops every other status from the filter.
PURGEABLE_STATES = (
    OrchestrationStatus.Completed,
    OrchestrationStatus.Terminated,
    OrchestrationStatus.Canceled,
    OrchestrationStatus.Failed,
)

INVALID_OPERATION = "System.InvalidOperationException"


class ClientError(Exception):
    """An operation rejected the way the real host rejects it.

    ``summary`` is the HttpError "Message" when the handler names one (e.g. "Invalid JSON
    content"); otherwise the HTTP layer uses the generic text for the status code.
    """

    def __init__(
        self,
        status: int,
        message: str,
        exception_type: str = "System.ArgumentException",
        *,
        summary: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.exception_type = exception_type
        self.summary = summary


class InstanceNotFoundError(ClientError):
    """No such instance: the HTTP API answers a bare 404."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(404, f"No instance with ID '{instance_id}' was found.")
        self.instance_id = instance_id


class InstanceGoneError(ClientError):
    """The instance has finished: the HTTP API answers a bare 410."""

    def __init__(self, instance_id: str, status: OrchestrationStatus) -> None:
        super().__init__(
            410, f"Instance '{instance_id}' has already finished (runtime status {status.name})."
        )
        self.instance_id = instance_id
        self.runtime_status = status


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
    """Stored JSON text back to a value (``ParseToJToken``): text that is not JSON, such as a
    failure or terminate reason, stays a (trimmed) string."""
    if text is None:
        return None
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        return text


def compact_json(value: Any) -> str:
    """JSON as ``JToken.ToString(Formatting.None)`` writes it: no spaces, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _client_event(kind: EventType, **fields: Any) -> HistoryEvent:
    """A message event as the client sends it: EventId -1, timestamped when it is sent."""
    return {
        "EventType": int(kind),
        "EventId": -1,
        "IsPlayed": False,
        "Timestamp": h.format_timestamp(h.utcnow()),
        **fields,
    }


@dataclass(frozen=True)
class ClientUrls:
    """Where this host is reachable, for the URLs handed to clients."""

    public_base: str  # e.g. http://localhost:7071
    rpc_base: str  # e.g. http://127.0.0.1:7071/durabletask/


@dataclass(frozen=True)
class InstancePage:
    """One page of a list query: status objects and the token for the next page."""

    statuses: list[dict[str, Any]]
    continuation_token: str


@dataclass(frozen=True)
class PurgeResult:
    instances_deleted: int
    rows_deleted: int


class DurableClientService:
    """Instance management over one task hub.

    ``index`` (for orchestrator name checks) and ``leases`` (to keep sent messages for the local
    dispatcher) are None when no host runs, e.g. for the command line: names are then taken as
    given and messages are left visible for whichever host polls the queues next.
    """

    def __init__(
        self,
        *,
        storage: TaskHub,
        index: AppIndex | None,
        leases: LeaseKeeper | None,
        deliver: ControlSink,
        urls: ClientUrls,
        connection_name: str,
        runs_here: Callable[[str], bool] | None = None,
        checkpoint_written: Callable[[str], Awaitable[bool]] | None = None,
        forget: Callable[[str, set[str]], Awaitable[None]] | None = None,
        reload: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        #: Makes this host read an instance's history again (it is changed in storage).
        self._reload = reload
        self._storage = storage
        #: Drops what this host holds in memory of an instance about to be purged.
        self._forget = forget
        #: Waits briefly for a checkpoint of the instance that this host has under way.
        self._checkpoint_written = checkpoint_written
        #: True for instances whose partition this host owns (their starts stay in memory).
        self._runs_here = runs_here
        self._index = index
        self._leases = leases
        self._deliver = deliver
        self.urls = urls
        self.hub_name = storage.name
        self.connection_name = connection_name
        self.entities = EntityClient(storage, leases, deliver, index)

    # -- starting -----------------------------------------------------------------------------

    async def start_new(self, name: str, instance_id: str | None, input_text: str | None) -> str:
        """Schedule a new instance; return its id (``StartNewAsync``)."""
        if self._index is not None:
            function = self._index.orchestrator(name)
            if function is None:
                known = self._index.names("orchestrationTrigger")
                raise ClientError(400, unknown_function_message(name, "orchestrator", known))
            name = function.durable_name
        generated = not instance_id
        instance_id = instance_id or uuid.uuid4().hex
        validate_instance_id(instance_id)
        # A fresh random id cannot name an existing instance: no need to look it up.
        existing = None if generated else await self._storage.read_instance(instance_id)
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
            name=name,
            input_text=input_text,
            timestamp=now,
            generation=0 if existing is None else existing.generation + 1,
        )
        message = ControlMessage(instance_id, [started], execution_id, new_instance=existing is None)
        record = InstanceRecord(
            instance_id=instance_id,
            name=name,
            runtime_status=OrchestrationStatus.Pending,
            execution_id=execution_id,
            created_time=now,
            last_updated_time=now,
            input=input_text,
            generation=started["Generation"],
        )
        replace_version = None if existing is None else existing.version
        # When this host runs the instance, the Pending row is the start's durable record (the
        # host that next owns the partition starts every Pending instance it finds), and the
        # event goes to the orchestration in memory: one write instead of two.
        runs_here = self._runs_here is not None and self._runs_here(instance_id)
        if runs_here and await self._storage.write_pending_instance(record, replace_version):
            crash_point("start-after-pending")
            assert self._runs_here is not None
            if self._runs_here(instance_id):
                self._deliver(message, None)
                return instance_id
            # The partition moved meanwhile: its new owner learns of the start by message.
            handle = await self._storage.send_control(message, lease=self._lease_seconds)
            self._deliver(message, handle)
            return instance_id
        # Message first, then the Pending row, as the real client does: a crash in between leaves
        # a message that still starts the instance, never a Pending row that nothing will run.
        handle = await self._storage.send_control(message, lease=self._lease_seconds)
        await self._storage.write_pending_instance(record, replace_version)
        self._deliver(message, handle)
        return instance_id

    async def restart(self, instance_id: str, with_new_instance_id: bool = True) -> str:
        """Start the instance's orchestrator again with its input (``RestartAsync``); return the id."""
        record = await self._storage.read_instance(instance_id)
        restart_failed = "InstanceId does not match a valid orchestration instance."
        if record is None:
            # (sic) "orchestrastion": the extension's spelling.
            raise ClientError(
                400,
                f"An orchestrastion with the instanceId {instance_id} was not found.",
                summary=restart_failed,
            )
        # The input goes through a JSON token and back, as the extension passes status.Input on.
        value = parse_json_or_text(record.input)
        input_text = None if value is None else compact_json(value)
        try:
            return await self.start_new(
                record.name, None if with_new_instance_id else instance_id, input_text
            )
        except ClientError as exc:
            if exc.status == 400:
                raise ClientError(400, exc.message, exc.exception_type, summary=restart_failed) from None
            raise

    # -- reading ------------------------------------------------------------------------------

    async def get_status(
        self,
        instance_id: str,
        *,
        show_input: bool = True,
        show_history: bool = False,
        show_history_output: bool = False,
    ) -> dict[str, Any] | None:
        record = None
        if self._checkpoint_written is not None and await self._checkpoint_written(instance_id):
            # This host has just written the row: what it wrote is what is stored.
            record = self._storage.written_instance(instance_id)
        if record is None:
            record = await self._storage.read_instance(instance_id)
        if record is None:
            return None
        status = status_payload(record, show_input=show_input)
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

    async def require_instance(self, instance_id: str) -> InstanceRecord:
        record = await self._storage.read_instance(instance_id)
        if record is None:
            raise InstanceNotFoundError(instance_id)
        return record

    async def list_instances(
        self,
        condition: InstanceQuery,
        *,
        show_input: bool = True,
        top: int = DEFAULT_PAGE_SIZE,
        continuation_token: str | None = None,
    ) -> InstancePage:
        """One page of instances (``ListInstancesAsync``); statuses carry no history."""
        try:
            records, token = await self._storage.query_instances(
                condition, page_size=top, continuation=continuation_token, fetch_input=show_input
            )
        except InvalidContinuationToken as exc:
            raise ClientError(500, exc.message, exc.exception_type) from None
        return InstancePage(
            [status_payload(r, show_input=show_input) for r in records],
            self._storage.end_continuation if token is None else token,
        )

    async def get_history(self, instance_id: str) -> list[dict[str, Any]]:
        """The stored events of the current execution with their enum names, oldest first."""
        await self.require_instance(instance_id)
        stored = await self._storage.read_history(instance_id)
        events = []
        for event in stored.events:
            item = dict(event)
            item["EventType"] = h.event_type(event).name
            if "OrchestrationStatus" in item:
                item["OrchestrationStatus"] = OrchestrationStatus(item["OrchestrationStatus"]).name
            events.append(item)
        return events

    # -- changing running instances -------------------------------------------------------------

    async def raise_event(self, instance_id: str, event_name: str, input_text: str | None) -> None:
        """Send an external event (``RaiseEventAsync``); ``input_text`` is the event's JSON."""
        if not event_name:
            raise ClientError(
                400, "Value cannot be null. (Parameter 'eventName')", "System.ArgumentNullException"
            )
        record = await self.require_instance(instance_id)
        if record.runtime_status not in RUNNING_STATES:
            raise InstanceGoneError(instance_id, record.runtime_status)
        await self._send_event(instance_id, h.event_raised(event_name, input_text, h.utcnow()))

    async def terminate(self, instance_id: str, reason: str | None) -> None:
        record = await self.require_instance(instance_id)
        if record.runtime_status in TERMINAL_STATES:
            raise InstanceGoneError(instance_id, record.runtime_status)
        await self._send_event(instance_id, _client_event(EventType.ExecutionTerminated, Input=reason))

    async def suspend(self, instance_id: str, reason: str | None) -> None:
        record = await self.require_instance(instance_id)
        if record.runtime_status in TERMINAL_STATES:
            raise InstanceGoneError(instance_id, record.runtime_status)
        if record.runtime_status == OrchestrationStatus.Suspended:
            raise ClientError(
                500,
                f"Cannot suspend the orchestration instance {instance_id} because instance is in the "
                f"{record.runtime_status.name} state.",
                INVALID_OPERATION,
            )
        await self._send_event(instance_id, _client_event(EventType.ExecutionSuspended, Reason=reason))

    async def resume(self, instance_id: str, reason: str | None) -> None:
        record = await self.require_instance(instance_id)
        if record.runtime_status in TERMINAL_STATES:
            raise InstanceGoneError(instance_id, record.runtime_status)
        if record.runtime_status != OrchestrationStatus.Suspended:
            raise ClientError(
                500,
                f"Cannot resume the orchestration instance {instance_id} because instance is in the "
                f"{record.runtime_status.name} state.",
                INVALID_OPERATION,
            )
        await self._send_event(instance_id, _client_event(EventType.ExecutionResumed, Reason=reason))

    async def rewind(self, instance_id: str, reason: str | None) -> list[str]:
        """Clear a failed instance's failures and run it again (``RewindAsync``).

        Returns the instances that were sent a GenericEvent to replay: the instance itself, or
        its deepest failed sub-orchestrations.
        """
        record = await self.require_instance(instance_id)
        if record.runtime_status in TERMINAL_STATES - {OrchestrationStatus.Failed}:
            raise InstanceGoneError(instance_id, record.runtime_status)
        if record.runtime_status != OrchestrationStatus.Failed:
            raise ClientError(
                500,
                "The rewind operation is only supported on failed orchestration instances.",
                INVALID_OPERATION,
            )
        # This host may hold the failed history in memory (a late activity result reads it):
        # it must read the rewound one, also if an episode read the old one during the rewind.
        if self._reload is not None:
            await self._reload(instance_id)
        rewound: list[str] = []
        leaves = await rewind_history(self._storage, instance_id, rewound=rewound)
        if self._reload is not None:
            for changed in rewound:
                await self._reload(changed)
        for leaf in leaves:
            await self._send_event(leaf, _client_event(EventType.GenericEvent, Data=reason))
        return leaves

    async def _send_event(self, instance_id: str, event: HistoryEvent) -> None:
        # No ExecutionId: the event reaches whichever execution is current, as the real client
        # clears it to get past ContinueAsNew.
        message = ControlMessage(instance_id, [event])
        handle = await self._storage.send_control(message, lease=self._lease_seconds)
        self._deliver(message, handle)

    @property
    def _lease_seconds(self) -> float | None:
        return None if self._leases is None else self._leases.lease_seconds

    # -- purging --------------------------------------------------------------------------------

    async def purge_instance(self, instance_id: str) -> PurgeResult:
        """Delete one instance's state, history and blobs (``PurgeInstanceHistoryAsync(id)``)."""
        record = await self.require_instance(instance_id)
        return await self._purge(record)

    async def _purge(self, record: InstanceRecord) -> PurgeResult:
        # A running instance may be purged (the provider does not check): first make sure that
        # nothing this host holds of it writes again, then delete what is stored.
        if self._forget is not None:
            await self._forget(record.instance_id, {record.execution_id} if record.execution_id else set())
        instances, rows = await self._storage.purge_instance(record.instance_id)
        return PurgeResult(instances, rows)

    async def purge_instances(
        self,
        created_from: datetime | None,
        created_to: datetime | None,
        statuses: list[OrchestrationStatus] | None,
    ) -> PurgeResult:
        """Purge every instance created in the range whose status matches.

        Only terminal statuses are kept from ``statuses``; when none is left the provider
        applies no status filter at all, which purges running instances too. That is the real
        behaviour, reproduced on purpose so it shows up locally rather than in production.
        """
        kept = None if statuses is None else tuple(s.name for s in statuses if s in PURGEABLE_STATES)
        condition = InstanceQuery(created_from=created_from, created_to=created_to, statuses=kept)
        instances = rows = 0
        for record in await self._storage.query_all_instances(condition):
            purged = await self._purge(record)
            instances += purged.instances_deleted
            rows += purged.rows_deleted
        return PurgeResult(instances, rows)

    async def delete_task_hub(self) -> None:
        await self._storage.delete()

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


def status_payload(record: InstanceRecord, *, show_input: bool) -> dict[str, Any]:
    """``StatusResponsePayload`` of an Instances row (without ``historyEvents``)."""
    return {
        "name": record.name,
        "instanceId": record.instance_id,
        "runtimeStatus": record.runtime_status.name,
        "input": parse_json_or_text(record.input) if show_input else None,
        "customStatus": parse_json_or_text(record.custom_status),
        "output": parse_json_or_text(record.output),
        "createdTime": format_status_time(record.created_time),
        "lastUpdatedTime": format_status_time(record.last_updated_time),
    }


_FOLDED_COMPLETIONS = frozenset(
    {
        h.EventType.TaskCompleted,
        h.EventType.TaskFailed,
        h.EventType.SubOrchestrationInstanceCompleted,
        h.EventType.SubOrchestrationInstanceFailed,
    }
)
_RESULT_EVENTS = frozenset(
    {h.EventType.TaskCompleted, h.EventType.SubOrchestrationInstanceCompleted, h.EventType.ExecutionCompleted}
)


def history_for_status(
    events: list[dict[str, Any]], *, show_input: bool, show_output: bool
) -> list[dict[str, Any]]:
    """The ``historyEvents`` shape of the status API (``GetDurableOrchestrationStatusAsync``)."""
    scheduled: dict[int, dict[str, Any]] = {}
    completed_ids = {h.completion_key(e) for e in events if h.event_type(e) in _FOLDED_COMPLETIONS}
    out: list[dict[str, Any]] = []
    for event in events:
        kind = h.event_type(event)
        if kind in (h.EventType.OrchestratorStarted, h.EventType.OrchestratorCompleted):
            continue
        item = {k: v for k, v in event.items() if k not in ("EventId", "IsPlayed")}
        item["EventType"] = kind.name
        if kind in (h.EventType.TaskScheduled, h.EventType.SubOrchestrationInstanceCreated):
            # A scheduled task with a completion is folded into that completion.
            scheduled[int(event["EventId"])] = event
            if int(event["EventId"]) in completed_ids:
                continue
            item.pop("Version", None)
        elif kind == h.EventType.ExecutionStarted:
            item["FunctionName"] = item.pop("Name", None)
            for hidden in ("OrchestrationInstance", "ParentInstance", "Version", "Tags"):
                item.pop(hidden, None)
        elif kind == h.EventType.ExecutionCompleted:
            item["OrchestrationStatus"] = OrchestrationStatus(event["OrchestrationStatus"]).name
        elif kind == h.EventType.TimerFired:
            item.pop("TimerId", None)
        if kind in _FOLDED_COMPLETIONS:
            source = scheduled.get(int(event["TaskScheduledId"]))
            if source is not None:
                item["FunctionName"] = source.get("Name")
                item["ScheduledTime"] = source.get("Timestamp")
                item["Input"] = source.get("Input")
            item.pop("TaskScheduledId", None)
        if kind in _RESULT_EVENTS:
            if show_output:
                item["Result"] = parse_json_or_text(item.get("Result"))
            else:
                item.pop("Result", None)
        if not show_input:
            item.pop("Input", None)
        out.append(item)
    return out
