"""Durable entities: operation requests in, batches through the entity function, responses out.

An entity is an instance whose id is ``@<lower-cased name>@<key>``, like the real provider's.
Requests arrive as control messages (an EventRaised named ``op`` whose input is the real
RequestMessage JSON) from orchestrations and clients; those waiting for an entity are run
together as one batch through the SDK's entity handler (docs/sdk-protocol.md section 8). One batch
follows the same checkpoint order as an orchestration episode:

1. send the responses of calls to their orchestrations (durable before anything is forgotten);
2. write the entity's state, with the ids of the requests it has applied, to its Instances row;
3. delete the consumed messages.

The state row also records what it has applied, so every operation is applied exactly once and
no signal is lost (docs/durability.md invariants 3 and 6):

* the request ids of the last batch: a redelivered message (its host died before deleting it)
  can only belong to that batch;
* per orchestration execution that sent requests, the highest sequence id applied: an episode
  that is run again after a crash sends the same requests again, with the same sequence ids.
  These records are kept for a window well beyond the time a crashed host's work takes to
  come back, so the row stays small.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import EnitityTriggerConverter

from emulator.app._app_index import AppIndex
from emulator.durable import _history as h
from emulator.durable._failure_log import entity_operation_failed
from emulator.durable._history import EventType, OrchestrationStatus
from emulator.durable._leases import LeaseKeeper
from emulator.durable._mailbox import Mailbox, MailboxLoop
from emulator.durable._routing import ControlSink
from emulator.durable._timers import DurableClock
from emulator.functions._invocations import InvocationLog
from emulator.functions._threads import WorkerThreads
from emulator.taskhub._interface import ControlMessage, InstanceUpdate, MessageLease, TaskHub

logger = logging.getLogger("emulator.entities")

#: An operation request with the handle of its message, if the request is the message's last.
_Request = tuple[dict[str, Any], MessageLease | None]


def entity_instance_id(name: str, key: str) -> str:
    """``EntityId.GetSchedulerId``: the name is lower-cased, the key kept as is."""
    return f"@{name.lower()}@{key}"


def parse_entity_instance_id(instance_id: str) -> tuple[str, str]:
    name, _, key = instance_id[1:].partition("@")
    return name, key


def operation_request(
    operation: str, input_text: str | None, *, signal: bool, request_id: str
) -> dict[str, Any]:
    """A RequestMessage as a client or orchestration sends it."""
    request: dict[str, Any] = {"op": operation, "input": input_text, "id": request_id, "timestamp": ""}
    request["timestamp"] = h.format_timestamp(h.utcnow())
    if signal:
        request["signal"] = True
    return request


def request_event(request: dict[str, Any]) -> dict[str, Any]:
    return h.event_raised("op", json.dumps(request), h.utcnow())


@dataclass
class EntityState:
    """What the Instances row of an entity keeps (its ``Input`` column, as the real scheduler state)."""

    exists: bool = False
    state: str | None = None
    #: Request ids of the last batch written, whose messages may not be deleted yet.
    applied: list[str] = field(default_factory=list)
    #: "<instance>|<execution>" of each sender -> [highest sequence id applied, when (epoch s)].
    senders: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> str:
        raw = {"exists": self.exists, "state": self.state, "applied": self.applied, "senders": self.senders}
        return json.dumps(raw)

    @classmethod
    def from_json(cls, text: str | None) -> EntityState:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls(
            bool(raw.get("exists")),
            raw.get("state"),
            list(raw.get("applied") or []),
            {k: list(v) for k, v in (raw.get("senders") or {}).items()},
        )

    def fresh(self, requests: list[Any]) -> list[Any]:
        """The (request, handle) pairs not applied before, duplicates within the batch included."""
        seen = set(self.applied)
        highest = {sender: int(value[0]) for sender, value in self.senders.items()}
        out = []
        for pair in requests:
            request = pair[0]
            sender = _sender(request)
            if str(request.get("id")) in seen:
                continue
            if sender is not None and int(request["position"]) <= highest.get(sender, -1):
                continue
            seen.add(str(request.get("id")))
            if sender is not None:
                highest[sender] = int(request["position"])
            out.append(pair)
        return out

    def record(self, requests: list[dict[str, Any]], window: float) -> dict[str, list[float]]:
        now = time.time()
        senders = {k: v for k, v in self.senders.items() if now - v[1] < window}
        for request in requests:
            sender = _sender(request)
            if sender is not None:
                senders[sender] = [max(int(request["position"]), senders.get(sender, [-1, 0])[0]), now]
        return senders


def _sender(request: dict[str, Any]) -> str | None:
    if request.get("parent") and request.get("position") is not None:
        return f"{request['parent']}|{request.get('parentExecution')}"
    return None


@dataclass
class _Entity(Mailbox[_Request]):
    state: EntityState | None = None


class EntityDispatcher:
    def __init__(
        self,
        *,
        storage: TaskHub,
        index: AppIndex,
        invocations: InvocationLog,
        leases: LeaseKeeper,
        clock: DurableClock,
        route: ControlSink,
        max_batch: int = 5000,
    ) -> None:
        self._storage = storage
        self._index = index
        self._invocations = invocations
        self._leases = leases
        self._clock = clock
        self._max_batch = max_batch
        self._entities: dict[str, _Entity] = {}
        self._threads = WorkerThreads(2, "entity")
        #: Where the responses to calling orchestrations go.
        self._route = route
        #: Deletes of messages that held no operation, kept until done.
        self._deleting: set[asyncio.Task[None]] = set()
        self._loop: MailboxLoop[_Entity] = MailboxLoop(
            kind="entity",
            label="Batch of entity",
            logger=logger,
            step=self._step,
            has_work=lambda entity: bool(entity.pending),
            on_error=self._step_failed,
            on_idle=self._idle,
        )

    async def close(self) -> None:
        tasks = [e.task for e in self._entities.values() if e.task is not None]
        tasks += self._deleting
        for task in tasks:
            task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._threads.shutdown()  # even when the stop's grace period cuts the wait short

    def drop(self, belongs: Callable[[str], bool]) -> list[MessageLease]:
        handles: list[MessageLease] = []
        for instance_id in [i for i in self._entities if belongs(i)]:
            entity = self._entities.pop(instance_id)
            if entity.task is not None:
                entity.task.cancel()
            handles += [handle for _, handle in [*entity.in_flight, *entity.pending] if handle is not None]
        return handles

    @property
    def busy(self) -> bool:
        return any(e.task is not None for e in self._entities.values())

    def deliver(self, message: ControlMessage, handle: MessageLease | None) -> None:
        if handle is not None:
            self._leases.hold(handle)
        entity = self._entities.get(message.instance_id)
        if entity is None:
            entity = self._entities[message.instance_id] = _Entity(message.instance_id)
        requests = [
            json.loads(e["Input"])
            for e in message.events
            if h.event_type(e) == EventType.EventRaised and e.get("Name") == "op" and e.get("Input")
        ]
        if not requests:
            logger.debug("Ignoring a message for entity '%s' that holds no operation", message.instance_id)
        # The handle rides on the message's last request: it is acknowledged once all are applied.
        for i, request in enumerate(requests):
            entity.pending.append((request, handle if i == len(requests) - 1 else None))
        if not requests and handle is not None:
            self._spawn_delete(handle)
        self._loop.wake(entity)

    def _spawn_delete(self, handle: MessageLease) -> None:
        self._leases.release(handle)
        task = asyncio.get_running_loop().create_task(self._storage.complete(handle))
        self._deleting.add(task)
        task.add_done_callback(self._deleting.discard)

    async def _step(self, entity: _Entity) -> bool:
        batch, entity.pending = entity.pending[: self._max_batch], entity.pending[self._max_batch :]
        entity.in_flight = batch
        try:
            await self._batch(entity, batch)
        except Exception:
            entity.pending = batch + entity.pending
            entity.state = None
            raise
        finally:
            entity.in_flight = []
        return True

    @staticmethod
    def _step_failed(entity: _Entity, exc: Exception) -> bool:
        return True  # retried after a backoff: storage went away or similar

    def _idle(self, entity: _Entity) -> None:
        if not entity.pending:
            self._entities.pop(entity.instance_id, None)

    async def _batch(self, entity: _Entity, batch: list[_Request]) -> None:
        created = entity.state is not None
        if entity.state is None:
            record = await self._storage.read_instance(entity.instance_id)
            created = record is not None
            entity.state = EntityState.from_json(record.input if record else None)
        state = entity.state
        fresh = state.fresh(batch)
        requests = [r for r, _ in fresh]
        name, key = parse_entity_instance_id(entity.instance_id)
        results: list[dict[str, Any]] = []
        new_state = state
        if requests:
            results, new_state = await self._execute(entity.instance_id, name, key, state, requests)
            self._log_failures(entity.instance_id, name, requests, results)
        now = self._clock.now()
        # 1. Responses to callers first: a crash after this re-runs the batch, never loses an answer.
        for request, result in zip(requests, results, strict=True):
            if request.get("signal") or not request.get("parent"):
                continue
            response = {"result": result.get("result")}
            if result.get("isError"):
                response["exceptionType"] = "Error"
            event = h.event_raised(str(request["id"]), json.dumps(response), now)
            message = ControlMessage(str(request["parent"]), [event], None)
            handle = await self._storage.send_control(message, lease=self._leases.lease_seconds)
            self._route(message, handle)
        # 2. The new state with the requests it has applied.
        window = max(4 * self._leases.lease_seconds, 600.0)
        new_state = EntityState(
            new_state.exists,
            new_state.state,
            [str(r["id"]) for r in requests],
            state.record(requests, window),
        )
        update = InstanceUpdate(
            last_updated_time=now,
            runtime_status=OrchestrationStatus.Running,
            name=f"@{name}",
            input=new_state.to_json(),
        )
        if not created:
            update.created_time, update.execution_id = now, h.new_execution_id()
        await self._storage.update_instance(entity.instance_id, update)
        entity.state = new_state
        # 3. Acknowledge the messages.
        handles = [consumed for _, consumed in batch if consumed is not None]
        for consumed in handles:
            self._leases.release(consumed)
        await asyncio.gather(*(self._storage.complete(consumed) for consumed in handles))

    def _log_failures(
        self, instance_id: str, name: str, requests: list[dict[str, Any]], results: list[dict[str, Any]]
    ) -> None:
        function = self._index.entity(name)
        name = function.name if function is not None else name
        for request, result in zip(requests, results, strict=True):
            if result.get("isError"):
                reason = _error_text(result.get("result"))
                operation, operation_id = str(request.get("op")), str(request.get("id"))
                entity_operation_failed(
                    self._storage.name, name, instance_id, operation, operation_id, reason
                )

    async def _execute(
        self, instance_id: str, name: str, key: str, state: EntityState, requests: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], EntityState]:
        function = self._index.entity(name)
        if function is None:
            message = f"The function '{name}' doesn't exist, is disabled, or is not an entity function."
            return [{"isError": True, "result": json.dumps(message)} for _ in requests], state
        payload = json.dumps(
            {
                "self": {"name": name, "key": key},
                "exists": state.exists,
                "state": state.state,
                "batch": [
                    {
                        "name": r.get("op"),
                        # The input reaches the SDK as a JSON string holding the JSON text.
                        "input": None if r.get("input") is None else json.dumps(r["input"]),
                        "isSignal": bool(r.get("signal")),
                    }
                    for r in requests
                ],
            }
        )
        run = functools.partial(_run_entity, function.user_function, payload)
        with self._invocations.invoke(function.name, reason="(null)", instance_id=instance_id) as record:
            try:
                output = await self._threads.run(run)
            except Exception as exc:
                record.succeeded = False
                record.error = f"{type(exc).__name__}: {exc}"
                text = json.dumps(f"Entity function '{name}' failed: {record.error}")
                return [{"isError": True, "result": text} for _ in requests], state
        results = list(output.get("results") or [])
        if len(results) != len(requests):
            raise RuntimeError(
                f"Entity '{instance_id}' returned {len(results)} results for {len(requests)} operations"
            )
        return results, EntityState(
            bool(output.get("entityExists")), output.get("entityState"), state.applied
        )


def _error_text(result: Any) -> str:
    """The error of a failed operation: its result is the JSON text of the message."""
    try:
        message = json.loads(result) if isinstance(result, str) else result
    except ValueError:
        message = result
    return str(message)


def _run_entity(handle: Callable[[Any], Any], payload: str) -> dict[str, Any]:
    context = EnitityTriggerConverter.decode(meta.Datum(payload, "string"), trigger_metadata=None)
    result = handle(context)
    if isinstance(result, meta.Datum):
        result = result.value
    parsed: dict[str, Any] = json.loads(result) if isinstance(result, str) else dict(result)
    return parsed
