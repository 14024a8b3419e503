"""What only the in-memory task hub promises: a waiting receiver wakes at once when a message
arrives, from this loop or another thread's, and no message is lost to a wait that ends."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from emulator.durable import _history as h
from emulator.taskhub import ControlMessage
from emulator.taskhub.memory import InMemoryTaskHub

pytestmark = pytest.mark.timeout(30)


def _message(instance_id: str) -> ControlMessage:
    return ControlMessage(instance_id, [h.event_raised("Go", "1", h.utcnow())], "e1")


async def test_a_waiting_receiver_wakes_when_a_message_is_sent() -> None:
    hub = InMemoryTaskHub("Hub", receive_wait=10.0)
    partition = hub.partition_of("i1")
    receiving = asyncio.create_task(hub.receive_control(partition, 30.0))
    await asyncio.sleep(0.05)
    sent_at = time.monotonic()
    await hub.send_control(_message("i1"))
    ((message, _),) = await asyncio.wait_for(receiving, 2.0)
    assert message.instance_id == "i1"
    assert time.monotonic() - sent_at < 0.1


async def test_a_waiting_receiver_wakes_when_a_lease_lapses() -> None:
    hub = InMemoryTaskHub("Hub", receive_wait=10.0)
    partition = hub.partition_of("i1")
    await hub.send_control(_message("i1"), lease=0.3)
    started = time.monotonic()
    ((message, _),) = await hub.receive_control(partition, 30.0)
    assert message.instance_id == "i1"
    assert 0.25 <= time.monotonic() - started < 1.0


async def test_an_empty_receive_returns_after_the_wait() -> None:
    hub = InMemoryTaskHub("Hub", receive_wait=0.2)
    started = time.monotonic()
    assert await hub.receive_control(0, 30.0) == []
    assert 0.15 <= time.monotonic() - started < 1.0


async def test_a_send_from_another_thread_wakes_the_receiver() -> None:
    hub = InMemoryTaskHub("Hub", receive_wait=10.0)
    partition = hub.partition_of("i1")
    receiving = asyncio.create_task(hub.receive_control(partition, 30.0))
    await asyncio.sleep(0.05)
    sender = threading.Thread(target=lambda: asyncio.run(hub.send_control(_message("i1"))))
    sender.start()
    ((message, _),) = await asyncio.wait_for(receiving, 2.0)
    sender.join()
    assert message.instance_id == "i1"


async def test_a_cancelled_receive_leaves_the_message_for_the_next() -> None:
    hub = InMemoryTaskHub("Hub", receive_wait=10.0)
    partition = hub.partition_of("i1")
    receiving = asyncio.create_task(hub.receive_control(partition, 30.0))
    await asyncio.sleep(0.05)
    receiving.cancel()
    await hub.send_control(_message("i1"))
    ((message, _),) = await hub.receive_control(partition, 30.0)
    assert message.instance_id == "i1"
    assert hub.pending_messages(partition) == 1


async def test_delete_empties_the_hub() -> None:
    hub = InMemoryTaskHub("Hub")
    await hub.append_history("i1", "e1", 0, [h.orchestrator_started(h.utcnow())], None)
    await hub.send_control(_message("i1"))
    await hub.delete()
    assert (await hub.read_history("i1")).version is None
    assert hub.pending_messages(hub.partition_of("i1")) == 0
