"""Queue triggers, after the storage queues extension (``QueueListener``, ``QueueProcessor``).

Per function: receive up to ``batchSize`` messages (leased for 10 minutes, renewed while the function
runs), start them all, and fetch again once no more than ``newBatchThreshold`` are still running, so
at most ``batchSize + newBatchThreshold`` run at once. An empty queue is polled with a randomized
exponential backoff from 100 ms up to ``maxPollingInterval``; a message the app itself adds to the
queue wakes the listener at once. A failed message is made visible again after ``visibilityTimeout``;
after ``maxDequeueCount`` attempts it moves to ``<queue>-poison``. With the default ``base64``
encoding, a message that is not base64 goes straight to the poison queue.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.functions import meta

from emulator.app._config import get_ci, get_path_ci
from emulator.app._dotnet import format_timespan, parse_timespan
from emulator.app._settings import AppLoadError
from emulator.functions._bindings import TriggerValue

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient

logger = logging.getLogger("emulator.triggers.queue")

MIN_POLLING_INTERVAL = timedelta(milliseconds=100)
LEASE = timedelta(minutes=10)
POISON_SUFFIX = "-poison"
_QUEUE_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


@dataclass(frozen=True)
class QueuesOptions:
    """host.json ``extensions.queues`` with the extension's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: timedelta = timedelta(minutes=1)
    visibility_timeout: timedelta = timedelta(0)
    max_dequeue_count: int = 5
    message_encoding: str = "base64"


def _int_setting(section: Any, key: str, default: int) -> int:
    value = get_ci(section, key)
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise AppLoadError(
        f"extensions.queues.{key} in host.json must be a whole number, not {json.dumps(value)}."
    )


def _timespan_setting(section: Any, key: str, default: timedelta) -> timedelta:
    value = get_ci(section, key)
    if value is None:
        return default
    parsed = parse_timespan(str(value))
    if parsed is None:
        raise AppLoadError(
            f'extensions.queues.{key} in host.json must be a TimeSpan such as "00:00:02", '
            f"not {json.dumps(value)}."
        )
    return parsed


def queues_options(host_json: Mapping[str, Any]) -> QueuesOptions:
    """Read and validate ``extensions.queues`` (the host refuses to start on invalid values)."""
    section = get_path_ci(host_json, "extensions", "queues")
    batch_size = _int_setting(section, "batchSize", QueuesOptions.batch_size)
    if not 1 <= batch_size <= 32:
        raise AppLoadError(
            f"extensions.queues.batchSize in host.json must be between 1 and 32, not {batch_size}."
        )
    # NewBatchThreshold defaults to BatchSize / 2 * processor count.
    threshold = _int_setting(section, "newBatchThreshold", batch_size // 2 * (os.cpu_count() or 1))
    if threshold < 0:
        raise AppLoadError(
            f"extensions.queues.newBatchThreshold in host.json must not be negative, not {threshold}."
        )
    polling = _timespan_setting(section, "maxPollingInterval", QueuesOptions.max_polling_interval)
    if polling < MIN_POLLING_INTERVAL:
        raise AppLoadError(
            f"extensions.queues.maxPollingInterval in host.json must not be less than "
            f"{format_timespan(MIN_POLLING_INTERVAL)} (it is {format_timespan(polling)})."
        )
    dequeue = _int_setting(section, "maxDequeueCount", QueuesOptions.max_dequeue_count)
    if dequeue < 1:
        raise AppLoadError(
            f"extensions.queues.maxDequeueCount in host.json must not be less than 1, not {dequeue}."
        )
    encoding = str(get_ci(section, "messageEncoding") or "base64").lower()
    if encoding not in ("base64", "none"):
        raise AppLoadError(
            f'extensions.queues.messageEncoding in host.json must be "base64" or "none", '
            f"not {json.dumps(encoding)}."
        )
    return QueuesOptions(
        batch_size=batch_size,
        new_batch_threshold=threshold,
        max_polling_interval=polling,
        visibility_timeout=_timespan_setting(section, "visibilityTimeout", QueuesOptions.visibility_timeout),
        max_dequeue_count=dequeue,
        message_encoding=encoding,
    )


def poison_queue_name(queue_name: str) -> str | None:
    """``<queue>-poison``, unless the queue is a poison queue already or the name would be too long."""
    if queue_name.endswith(POISON_SUFFIX):
        return None
    name = queue_name + POISON_SUFFIX
    return name if _QUEUE_NAME_RE.fullmatch(name) else None


class RandomizedBackoff:
    """``RandomizedExponentialBackoffStrategy``: min + 2^n * min * [0.8, 1.2), capped at max."""

    def __init__(self, minimum: timedelta, maximum: timedelta) -> None:
        self._min = minimum.total_seconds()
        self._max = max(maximum.total_seconds(), self._min)
        self._current = self._min
        self._exponent = 0

    def next_delay(self, succeeded: bool) -> float:
        if succeeded:
            self._current, self._exponent = self._min, 1
        elif self._current != self._max:
            interval = self._min
            if self._exponent > 0:
                interval += random.uniform(0.8, 1.2) * 2 ** (self._exponent - 1) * self._min
            if interval < self._max:
                self._current = interval
                self._exponent += 1
            else:
                self._current = self._max
        return self._current


@dataclass
class ReceivedMessage:
    id: str
    pop_receipt: str
    dequeue_count: int
    inserted_on: datetime | None
    expires_on: datetime | None
    next_visible_on: datetime | None
    #: The message text as stored; ``body`` is it decoded with the host's messageEncoding.
    raw: str
    body: bytes | None


MessageExecutor = Callable[[ReceivedMessage], Awaitable[bool]]


class QueueListener:
    """Polls one queue and hands each message to ``executor`` (True means processed)."""

    def __init__(
        self,
        label: str,
        queue: QueueClient,
        poison: QueueClient | None,
        options: QueuesOptions,
        executor: MessageExecutor,
    ) -> None:
        self.queue_name = str(queue.queue_name)
        self._label = label
        self._queue = queue
        self._poison = poison
        self._options = options
        self._executor = executor
        self._backoff = RandomizedBackoff(MIN_POLLING_INTERVAL, options.max_polling_interval)
        self._wake = asyncio.Event()
        self._stopping = False
        self._processing: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name=f"queue-{self.queue_name}")

    def notify(self) -> None:
        """A message was just added to this queue: poll now."""
        self._wake.set()

    async def stop(self, timeout: float = 30.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._processing:
            # Messages in flight finish; any still running after the timeout reappear later.
            await asyncio.wait(self._processing, timeout=timeout)
            for task in self._processing:
                task.cancel()

    async def _poll(self) -> None:
        exists = False
        found_since_delay = False
        while not self._stopping:
            batch: list[ReceivedMessage] = []
            try:
                if not exists:
                    await self._queue.get_queue_properties()
                    exists = True
                batch = await self._receive(self._options.batch_size)
            except ResourceNotFoundError:
                exists = False
            except (HttpResponseError, OSError) as exc:
                exists = False
                logger.warning(
                    "Could not read queue '%s' for %s (%s); retrying", self.queue_name, self._label, exc
                )
            if not batch:
                delay = self._backoff.next_delay(found_since_delay)
                found_since_delay = False
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                self._wake.clear()
                continue
            found_since_delay = True
            for message in batch:
                task = asyncio.create_task(self._process(message))
                self._processing.add(task)
                task.add_done_callback(self._processing.discard)
            while len(self._processing) > self._options.new_batch_threshold:
                await asyncio.wait(self._processing, return_when=asyncio.FIRST_COMPLETED)

    async def _receive(self, count: int) -> list[ReceivedMessage]:
        pages = self._queue.receive_messages(
            messages_per_page=count, max_messages=count, visibility_timeout=int(LEASE.total_seconds())
        ).by_page()
        received: list[ReceivedMessage] = []
        async for page in pages:
            async for msg in page:
                raw = str(msg.content or "")
                received.append(
                    ReceivedMessage(
                        id=str(msg.id),
                        pop_receipt=str(msg.pop_receipt),
                        dequeue_count=int(msg.dequeue_count or 0),
                        inserted_on=msg.inserted_on,
                        expires_on=msg.expires_on,
                        next_visible_on=msg.next_visible_on,
                        raw=raw,
                        body=self._decode(raw),
                    )
                )
            break
        return received

    def _decode(self, raw: str) -> bytes | None:
        if self._options.message_encoding != "base64":
            return raw.encode("utf-8")
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None

    async def _process(self, message: ReceivedMessage) -> None:
        max_count = self._options.max_dequeue_count
        try:
            if message.body is None:
                logger.warning(
                    "Message '%s' in queue '%s' is not valid base64, which host.json "
                    "extensions.queues.messageEncoding (base64, the default) requires.",
                    message.id,
                    self.queue_name,
                )
                await self._move_to_poison(message)
                return
            if message.dequeue_count > max_count:
                await self._move_to_poison(message)
                return
            renewal = asyncio.create_task(self._renew(message))
            try:
                succeeded = await self._executor(message)
            finally:
                renewal.cancel()
            if succeeded:
                await self._delete(message)
            elif self._poison is not None:
                if message.dequeue_count >= max_count:
                    await self._move_to_poison(message)
                else:
                    await self._release(message)
            # Without a poison queue a failed message stays invisible, avoiding a fast retry loop.
        except Exception:
            logger.exception("Processing message '%s' from queue '%s' failed", message.id, self.queue_name)

    async def _renew(self, message: ReceivedMessage) -> None:
        while True:
            await asyncio.sleep(LEASE.total_seconds() / 2)
            with contextlib.suppress(HttpResponseError):
                updated = await self._queue.update_message(
                    message.id, message.pop_receipt, visibility_timeout=int(LEASE.total_seconds())
                )
                message.pop_receipt = str(updated.pop_receipt)

    async def _delete(self, message: ReceivedMessage) -> None:
        try:
            await self._queue.delete_message(message.id, message.pop_receipt)
        except HttpResponseError as exc:
            logger.debug("Unable to delete queue message '%s': %s", message.id, exc)

    async def _release(self, message: ReceivedMessage) -> None:
        with contextlib.suppress(HttpResponseError):
            await self._queue.update_message(
                message.id,
                message.pop_receipt,
                visibility_timeout=int(self._options.visibility_timeout.total_seconds()),
            )

    async def _move_to_poison(self, message: ReceivedMessage) -> None:
        if self._poison is None:
            return
        logger.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self._options.max_dequeue_count,
            self._poison.queue_name,
        )
        try:
            await self._poison.send_message(message.raw)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                await self._poison.create_queue()
            await self._poison.send_message(message.raw)
        await self._delete(message)


def queue_trigger_value(message: ReceivedMessage, data_type: str) -> TriggerValue:
    """The trigger value and binding data the host gives a queue-triggered function."""
    body = message.body or b""
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    metadata: dict[str, Any] = {
        "DequeueCount": message.dequeue_count,
        "ExpirationTime": message.expires_on,
        "Id": message.id,
        "InsertionTime": message.inserted_on,
        "NextVisibleTime": message.next_visible_on,
        "PopReceipt": message.pop_receipt,
    }
    if text is not None:
        metadata["QueueTrigger"] = text
    binding_data = dict(metadata)
    if text is not None and text.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            parsed = json.loads(text)
            if isinstance(parsed, dict):
                # JSON message properties can be used in binding expressions, the built-ins win.
                binding_data = {**parsed, **binding_data}
    binary = text is None or data_type == "binary"
    datum = meta.Datum(body, "bytes") if binary else meta.Datum(text, "string")
    return TriggerValue(datum=datum, metadata=metadata, binding_data=binding_data)
