"""The client side of durable entities: signal an entity, read its state, list entities."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emulator.app._app_index import ENTITY_TRIGGER, AppIndex
from emulator.durable import _history as h
from emulator.durable._entities import (
    EntityState,
    entity_instance_id,
    parse_entity_instance_id,
    request_event,
)
from emulator.durable._leases import LeaseKeeper
from emulator.durable._replay import unknown_function_message
from emulator.durable._routing import ControlSink
from emulator.taskhub._interface import ControlMessage, InstanceQuery, TaskHub

#: The extension builds this ArgumentException with its two arguments swapped, so the message
#: users see names the parameter first: reproduced as is.
INVALID_KEY_MESSAGE = (
    "entityKey (Parameter 'Entity keys must not contain /, \\, #, ?, or control characters.')"
)


class EntitySignalError(ValueError):
    """A signal the real client refuses before sending anything (an ArgumentException there)."""


def _invalid_key_character(ch: str) -> bool:
    # char.IsControl: C0 controls, DEL and the C1 controls.
    return ch in "/\\#?" or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F


@dataclass(frozen=True)
class EntityEntry:
    name: str
    key: str
    last_operation_time: datetime
    state: str | None


class EntityClient:
    """Entities of one task hub.

    ``index`` is the app's when the hub is the app's own: signals are then checked against its
    entity functions, as the real client does for the current app only.
    """

    def __init__(
        self,
        storage: TaskHub,
        leases: LeaseKeeper | None,
        deliver: ControlSink,
        index: AppIndex | None = None,
    ) -> None:
        self._storage = storage
        self._leases = leases
        self._deliver = deliver
        self._index = index

    def check_signal(self, name: str, key: str) -> None:
        """``SignalEntityAsync``'s checks: the key first, then that the entity function exists."""
        if any(_invalid_key_character(ch) for ch in key):
            raise EntitySignalError(INVALID_KEY_MESSAGE)
        if self._index is not None and self._index.entity(name) is None:
            known = self._index.names(ENTITY_TRIGGER)
            raise EntitySignalError(unknown_function_message(name, "entity", known))

    async def signal(self, name: str, key: str, operation: str, input_text: str | None) -> None:
        """Fire and forget, like ``SignalEntityAsync``: the operation is queued for the entity.

        Raises EntitySignalError, sending nothing, for a signal the real client refuses: a
        signal that no entity function can take would stay queued forever.
        """
        self.check_signal(name, key)
        instance_id = entity_instance_id(name, key)
        request = {
            "op": operation,
            "signal": True,
            "input": input_text,
            "id": str(uuid.uuid4()),
            "timestamp": h.format_timestamp(h.utcnow()),
        }
        message = ControlMessage(instance_id, [request_event(request)], None)
        lease = None if self._leases is None else self._leases.lease_seconds
        handle = await self._storage.send_control(message, lease=lease)
        self._deliver(message, handle if lease else None)

    async def read(self, name: str, key: str) -> EntityState | None:
        """The entity's state, or None when it does not exist (never created, or deleted)."""
        record = await self._storage.read_instance(entity_instance_id(name, key))
        if record is None:
            return None
        state = EntityState.from_json(record.input)
        return state if state.exists else None

    async def list(self, name: str | None = None) -> list[EntityEntry]:
        entries: list[EntityEntry] = []
        for record in await self._storage.query_all_instances(InstanceQuery()):
            if not record.instance_id.startswith("@"):
                continue
            entity_name, key = parse_entity_instance_id(record.instance_id)
            if name is not None and entity_name != name.lower():
                continue
            state = EntityState.from_json(record.input)
            if state.exists:
                entries.append(EntityEntry(entity_name, key, record.last_updated_time, state.state))
        return entries


def signal_input(body: bytes, content_type: str) -> str | None:
    """The operation input of an HTTP signal: JSON when the request says so, else the raw text."""
    if not body.strip():
        return None
    text = body.decode("utf-8")
    if content_type.split(";")[0].strip().lower() != "application/json":
        return json.dumps(text)
    value: Any = json.loads(text)
    # The Python client posts json.dumps(json.dumps(value)): the string already is the JSON text.
    return value if isinstance(value, str) else json.dumps(value)
