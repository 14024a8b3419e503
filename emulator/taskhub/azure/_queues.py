"""The ``{hub}-control-NN`` queues: one message carries the events of one instance.

Unlike the real provider, one message carries many events (Azurite slows down with the number
of stored messages). A message larger than a queue holds goes to a blob, and the message names it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from emulator.taskhub._interface import ControlMessage, MessageLease
from emulator.taskhub.azure._keys import escape_partition_key
from emulator.taskhub.azure._large import LargeValues

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueServiceClient

logger = logging.getLogger("emulator.storage")

#: Largest serialized queue message kept inline; bigger ones go to a blob (real threshold: 45 KB).
MAX_INLINE_MESSAGE_BYTES = 45 * 1024


@dataclass(kw_only=True)
class QueueMessageLease(MessageLease):
    """A queue message this host holds; ``pop_receipt`` changes on every renewal."""

    queue_name: str
    pop_receipt: str
    blob_name: str | None = None


def message_json(message: ControlMessage) -> dict[str, Any]:
    return {"instanceId": message.instance_id, "executionId": message.execution_id, "events": message.events}


def message_from_json(raw: dict[str, Any]) -> ControlMessage:
    return ControlMessage(str(raw["instanceId"]), list(raw["events"]), raw.get("executionId"))


class ControlQueues:
    """The control queues of one task hub."""

    def __init__(self, service: QueueServiceClient, large: LargeValues, names: list[str]) -> None:
        self._service = service
        self._large = large
        self.names = names

    async def _encode(self, payload: dict[str, Any], owner: str) -> tuple[str, str | None]:
        text = json.dumps(payload, separators=(",", ":"))
        if len(text.encode("utf-8")) <= MAX_INLINE_MESSAGE_BYTES:
            return text, None
        blob_name = f"{escape_partition_key(owner)}/message-{uuid.uuid4().hex}.json.gz"
        await self._large.upload(blob_name, text)
        return json.dumps({"compressedBlobName": blob_name}), blob_name

    async def _decode(self, content: str) -> tuple[dict[str, Any], str | None]:
        raw = json.loads(content)
        blob_name = raw.get("compressedBlobName")
        if blob_name:
            return json.loads(await self._large.download(str(blob_name))), str(blob_name)
        return raw, None

    async def send(
        self, partition: int, message: ControlMessage, *, delay: float, lease: float | None
    ) -> QueueMessageLease:
        queue_name = self.names[partition]
        content, blob_name = await self._encode(message_json(message), message.instance_id)
        queue = self._service.get_queue_client(queue_name)
        # A message sent with a visibility timeout is leased to its sender from birth: the sender
        # handles it in memory and deletes it, and it only surfaces to pollers if the sender dies.
        visibility = max(int(delay + 0.999), (lease and int(lease)) or 0) or None
        started = time.monotonic()
        sent = await queue.send_message(content, visibility_timeout=visibility, time_to_live=-1)
        return _lease(queue_name, str(sent.id), str(sent.pop_receipt), blob_name, started)

    async def receive(
        self, partition: int, visibility: float, max_messages: int
    ) -> list[tuple[ControlMessage, MessageLease]]:
        queue_name = self.names[partition]
        queue = self._service.get_queue_client(queue_name)
        out: list[tuple[ControlMessage, MessageLease]] = []
        async for msg in queue.receive_messages(
            max_messages=max_messages, visibility_timeout=int(visibility)
        ):
            payload, blob_name = await self._decode(msg.content)
            lease = _lease(queue_name, str(msg.id), str(msg.pop_receipt), blob_name, time.monotonic())
            out.append((message_from_json(payload), lease))
            if len(out) >= max_messages:
                break
        return out

    async def complete(self, message: MessageLease) -> None:
        handle = _held(message)
        queue = self._service.get_queue_client(handle.queue_name)
        try:
            await queue.delete_message(handle.message_id, handle.pop_receipt)
        except (ResourceNotFoundError, HttpResponseError) as exc:
            # Another receiver took it after our lease lapsed; its copy is deduplicated downstream.
            logger.debug("Message %s on %s was already gone: %s", handle.message_id, handle.queue_name, exc)
            return
        if handle.blob_name:
            with contextlib.suppress(ResourceNotFoundError):
                await self._large.container.delete_blob(handle.blob_name)

    async def renew(self, message: MessageLease, visibility: float) -> bool:
        handle = _held(message)
        queue = self._service.get_queue_client(handle.queue_name)
        started = time.monotonic()
        try:
            updated = await queue.update_message(
                handle.message_id, handle.pop_receipt, visibility_timeout=int(visibility)
            )
        except (ResourceNotFoundError, HttpResponseError):
            return False
        handle.pop_receipt = str(updated.pop_receipt)
        handle.leased_at = started
        return True


def _lease(
    queue_name: str, message_id: str, pop_receipt: str, blob_name: str | None, started: float
) -> QueueMessageLease:
    return QueueMessageLease(
        message_id=message_id,
        label=f"{message_id} of {queue_name}",
        leased_at=started,
        queue_name=queue_name,
        pop_receipt=pop_receipt,
        blob_name=blob_name,
    )


def _held(message: MessageLease) -> QueueMessageLease:
    if not isinstance(message, QueueMessageLease):
        raise TypeError(f"Not a lease of this task hub's queues: {message!r}")
    return message
