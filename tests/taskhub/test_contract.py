"""What every task hub guarantees the engine (docs/durability.md), run on each implementation:
conditional history appends, leased at-least-once control messages, instance records and their
queries, purge, and conditional partition leases."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta

import pytest

from emulator.durable import _history as h
from emulator.durable._history import OrchestrationStatus
from emulator.taskhub import (
    ControlMessage,
    HistoryConflictError,
    InstanceQuery,
    InstanceRecord,
    InstanceUpdate,
    InvalidContinuationToken,
    MessageLease,
    PartitionLease,
    TaskHub,
)

pytestmark = pytest.mark.timeout(60)

#: Azure Storage queues count visibility in whole seconds: leases and delays are at least 1 s.
LEASE = 1.0


def _started(instance_id: str, execution_id: str, name: str = "Chain") -> list[h.HistoryEvent]:
    now = h.utcnow()
    return [
        h.orchestrator_started(now),
        h.execution_started(
            instance_id=instance_id, execution_id=execution_id, name=name, input_text="1", timestamp=now
        ),
        h.task_scheduled(0, "Step", now),
        h.orchestrator_completed(now),
    ]


def _types(events: list[h.HistoryEvent]) -> list[str]:
    return [h.event_type(e).name for e in events]


def _unique(prefix: str = "i") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _record(instance_id: str, *, created_offset: float = 0.0, name: str = "Chain") -> InstanceRecord:
    now = h.utcnow()
    return InstanceRecord(
        instance_id=instance_id,
        name=name,
        runtime_status=OrchestrationStatus.Pending,
        execution_id=uuid.uuid4().hex,
        created_time=now + timedelta(seconds=created_offset),
        last_updated_time=now,
        input=json.dumps({"n": 1}),
    )


def _message(instance_id: str, value: int = 1) -> ControlMessage:
    return ControlMessage(instance_id, [h.event_raised("Go", json.dumps(value), h.utcnow())], "e1")


async def _receive(
    hub: TaskHub, partition: int, *, lease: float = LEASE, within: float = 10.0
) -> list[tuple[ControlMessage, MessageLease]]:
    """Poll the partition's queue until something comes, or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        batch = await hub.receive_control(partition, lease)
        if batch or time.monotonic() > deadline:
            return batch
        await asyncio.sleep(0.05)


async def _all_pages(hub: TaskHub, query: InstanceQuery, page_size: int) -> list[InstanceRecord]:
    records: list[InstanceRecord] = []
    token: str | None = None
    while True:
        page, token = await hub.query_instances(query, page_size=page_size, continuation=token)
        assert len(page) <= page_size
        records.extend(page)
        if token is None:
            return records


# -- histories ------------------------------------------------------------------------------------


async def test_appends_are_read_back_in_order_with_a_new_version_each(task_hub: TaskHub) -> None:
    first = await task_hub.append_history("i1", "e1", 0, _started("i1", "e1"), None)
    second = await task_hub.append_history("i1", "e1", 4, [h.task_completed(0, "7", h.utcnow())], first)
    stored = await task_hub.read_history("i1")
    assert first != second and stored.version == second
    assert stored.execution_id == "e1"
    assert _types(stored.events) == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
        "OrchestratorCompleted",
        "TaskCompleted",
    ]
    assert stored.events[4]["Result"] == "7"


async def test_an_instance_without_history_reads_empty(task_hub: TaskHub) -> None:
    stored = await task_hub.read_history("nobody")
    assert (stored.events, stored.version, stored.execution_id) == ([], None, None)


async def test_an_append_with_a_stale_version_is_turned_away(task_hub: TaskHub) -> None:
    read = await task_hub.append_history("i1", "e1", 0, _started("i1", "e1"), None)
    await task_hub.append_history("i1", "e1", 4, [h.task_completed(0, "1", h.utcnow())], read)
    with pytest.raises(HistoryConflictError):
        await task_hub.append_history("i1", "e1", 4, [h.task_completed(0, "2", h.utcnow())], read)
    stored = await task_hub.read_history("i1")
    assert [e.get("Result") for e in stored.events[4:]] == ["1"]


async def test_a_second_first_append_is_turned_away(task_hub: TaskHub) -> None:
    await task_hub.append_history("i1", "e1", 0, _started("i1", "e1"), None)
    with pytest.raises(HistoryConflictError):
        await task_hub.append_history("i1", "e2", 0, _started("i1", "e2"), None)
    assert (await task_hub.read_history("i1")).execution_id == "e1"


async def test_a_new_execution_replaces_the_old_history(task_hub: TaskHub) -> None:
    version = await task_hub.append_history("i1", "e1", 0, _started("i1", "e1"), None)
    version = await task_hub.append_history("i1", "e1", 4, [h.task_completed(0, "1", h.utcnow())], version)
    await task_hub.append_history("i1", "e2", 0, _started("i1", "e2", name="Next"), version)
    stored = await task_hub.read_history("i1")
    assert stored.execution_id == "e2"
    assert len(stored.events) == 4
    assert stored.events[1]["Name"] == "Next"


async def test_replacing_events_is_conditional_on_the_version(task_hub: TaskHub) -> None:
    version = await task_hub.append_history("i1", "e1", 0, _started("i1", "e1"), None)
    generic = {**h.task_scheduled(0, "Step", h.utcnow()), "EventType": int(h.EventType.GenericEvent)}
    generic["Reason"] = "Rewound: TaskScheduled"
    newer = await task_hub.replace_history_events("i1", {2: generic}, version)
    stored = await task_hub.read_history("i1")
    assert (
        _types(stored.events)[2] == "GenericEvent" and stored.events[2]["Reason"] == "Rewound: TaskScheduled"
    )
    assert stored.version == newer != version
    with pytest.raises(HistoryConflictError):
        await task_hub.append_history("i1", "e1", 4, [h.task_completed(0, "1", h.utcnow())], version)


async def test_the_stored_history_does_not_change_with_the_callers_objects(task_hub: TaskHub) -> None:
    events = _started("i1", "e1")
    await task_hub.append_history("i1", "e1", 0, events, None)
    events[2]["Name"] = "Changed"
    read = await task_hub.read_history("i1")
    read.events[1]["Name"] = "AlsoChanged"
    again = await task_hub.read_history("i1")
    assert (again.events[1]["Name"], again.events[2]["Name"]) == ("Chain", "Step")


# -- instance records -----------------------------------------------------------------------------


async def test_an_update_creates_a_missing_record_only_when_it_names_the_orchestration(
    task_hub: TaskHub,
) -> None:
    now = h.utcnow()
    running = InstanceUpdate(last_updated_time=now, runtime_status=OrchestrationStatus.Running)
    assert await task_hub.update_instance("gone", running) is False
    assert await task_hub.read_instance("gone") is None

    start = InstanceUpdate(
        last_updated_time=now,
        runtime_status=OrchestrationStatus.Running,
        execution_id="e1",
        name="Child",
        created_time=now,
        input='"x"',
    )
    assert await task_hub.update_instance("child", start) is True
    record = await task_hub.read_instance("child")
    assert record is not None
    assert (record.name, record.runtime_status, record.execution_id, record.input) == (
        "Child",
        OrchestrationStatus.Running,
        "e1",
        '"x"',
    )


async def test_an_update_changes_only_the_fields_it_sets(task_hub: TaskHub) -> None:
    assert await task_hub.write_pending_instance(_record("i1"), None)
    later = h.utcnow() + timedelta(seconds=5)
    done = InstanceUpdate(
        last_updated_time=later,
        runtime_status=OrchestrationStatus.Completed,
        output='"done"',
        completed_time=later,
    )
    assert await task_hub.update_instance("i1", done)
    record = await task_hub.read_instance("i1")
    assert record is not None
    assert record.runtime_status == OrchestrationStatus.Completed
    assert (record.name, record.input, record.output) == ("Chain", json.dumps({"n": 1}), '"done"')
    assert record.completed_time is not None and abs((record.completed_time - later).total_seconds()) < 0.01


async def test_a_pending_record_is_written_once_unless_its_version_is_named(task_hub: TaskHub) -> None:
    first = _record("i1")
    assert await task_hub.write_pending_instance(first, None) is True
    assert await task_hub.write_pending_instance(_record("i1", name="Other"), None) is False
    stored = await task_hub.read_instance("i1")
    assert stored is not None and stored.name == "Chain" and stored.version is not None

    assert await task_hub.write_pending_instance(_record("i1", name="Again"), stored.version) is True
    await task_hub.update_instance(
        "i1", InstanceUpdate(last_updated_time=h.utcnow(), runtime_status=OrchestrationStatus.Running)
    )
    # An episode wrote the record since it was read: the client's stale replace loses.
    assert await task_hub.write_pending_instance(_record("i1", name="Late"), stored.version) is False
    final = await task_hub.read_instance("i1")
    assert final is not None and (final.name, final.runtime_status) == ("Again", OrchestrationStatus.Running)


async def test_a_pending_write_sets_the_status_pending(task_hub: TaskHub) -> None:
    record = _record("i1")
    record.runtime_status = OrchestrationStatus.Running
    assert await task_hub.write_pending_instance(record, None)
    stored = await task_hub.read_instance("i1")
    assert stored is not None and stored.runtime_status == OrchestrationStatus.Pending


# -- queries --------------------------------------------------------------------------------------


async def test_queries_page_through_every_match_once(task_hub: TaskHub) -> None:
    ids = [f"page-{n:02d}" for n in range(7)]
    for instance_id in ids:
        assert await task_hub.write_pending_instance(_record(instance_id), None)
    await task_hub.write_pending_instance(_record("other"), None)
    found = await _all_pages(task_hub, InstanceQuery(instance_id_prefix="page-"), page_size=3)
    assert sorted(r.instance_id for r in found) == ids
    first, token = await task_hub.query_instances(InstanceQuery(), page_size=3)
    assert len(first) <= 3 and token is not None


async def test_queries_filter_by_status_creation_time_and_prefix(task_hub: TaskHub) -> None:
    now = h.utcnow()
    for instance_id, offset in (("a-old", -3600.0), ("a-new", 0.0), ("b-new", 0.0)):
        assert await task_hub.write_pending_instance(_record(instance_id, created_offset=offset), None)
    running = InstanceUpdate(last_updated_time=now, runtime_status=OrchestrationStatus.Running)
    await task_hub.update_instance("a-new", running)

    async def ids(query: InstanceQuery) -> list[str]:
        return sorted(r.instance_id for r in await _all_pages(task_hub, query, page_size=100))

    assert await ids(InstanceQuery(statuses=("Running",))) == ["a-new"]
    assert await ids(InstanceQuery(statuses=("Pending", "Running"))) == ["a-new", "a-old", "b-new"]
    assert await ids(InstanceQuery(created_from=now - timedelta(minutes=5))) == ["a-new", "b-new"]
    assert await ids(InstanceQuery(created_to=now - timedelta(minutes=5))) == ["a-old"]
    assert await ids(InstanceQuery(instance_id_prefix="a-")) == ["a-new", "a-old"]
    assert await ids(InstanceQuery(instance_id_prefix="b-", statuses=("Running",))) == []


async def test_a_query_may_leave_the_input_out(task_hub: TaskHub) -> None:
    await task_hub.write_pending_instance(_record("i1"), None)
    (with_input,), _ = await task_hub.query_instances(InstanceQuery(), page_size=10)
    (without,), _ = await task_hub.query_instances(InstanceQuery(), page_size=10, fetch_input=False)
    assert with_input.input == json.dumps({"n": 1}) and without.input is None


async def test_a_continuation_token_not_handed_out_is_refused(task_hub: TaskHub) -> None:
    with pytest.raises(InvalidContinuationToken) as raised:
        await task_hub.query_instances(InstanceQuery(), page_size=10, continuation="%%%")
    assert raised.value.exception_type == "System.FormatException"
    # The token users get with the last page starts the query over.
    await task_hub.write_pending_instance(_record("i1"), None)
    page, token = await task_hub.query_instances(
        InstanceQuery(), page_size=10, continuation=task_hub.end_continuation
    )
    assert [r.instance_id for r in page] == ["i1"] and token is None


async def test_unfinished_instances_are_those_not_completed_failed_or_terminated(task_hub: TaskHub) -> None:
    statuses = {
        "pending": OrchestrationStatus.Pending,
        "running": OrchestrationStatus.Running,
        "suspended": OrchestrationStatus.Suspended,
        "continued": OrchestrationStatus.ContinuedAsNew,
        "completed": OrchestrationStatus.Completed,
        "failed": OrchestrationStatus.Failed,
        "terminated": OrchestrationStatus.Terminated,
    }
    for instance_id, status in statuses.items():
        await task_hub.write_pending_instance(_record(instance_id), None)
        await task_hub.update_instance(instance_id, InstanceUpdate(h.utcnow(), runtime_status=status))
    assert sorted(await task_hub.unfinished_instances()) == ["continued", "pending", "running", "suspended"]


# -- purge ----------------------------------------------------------------------------------------


async def test_purge_deletes_the_record_and_the_history(task_hub: TaskHub) -> None:
    await task_hub.write_pending_instance(_record("i1"), None)
    version = await task_hub.append_history("i1", "e1", 0, _started("i1", "e1"), None)
    instances, rows = await task_hub.purge_instance("i1")
    assert instances == 1 and rows >= 4
    assert await task_hub.read_instance("i1") is None
    assert (await task_hub.read_history("i1")).events == []
    # An episode that read the history before the purge cannot write it back.
    with pytest.raises(HistoryConflictError):
        await task_hub.append_history("i1", "e1", 4, [h.task_completed(0, "1", h.utcnow())], version)


async def test_purge_leaves_an_instance_without_a_record_alone(task_hub: TaskHub) -> None:
    await task_hub.append_history("i1", "e1", 0, _started("i1", "e1"), None)
    assert await task_hub.purge_instance("i1") == (0, 0)
    assert len((await task_hub.read_history("i1")).events) == 4


# -- control messages -----------------------------------------------------------------------------


async def test_a_message_is_delivered_with_its_events(task_hub: TaskHub) -> None:
    instance_id = _unique()
    sent = _message(instance_id, 42)
    await task_hub.send_control(sent)
    ((received, lease),) = await _receive(task_hub, task_hub.partition_of(instance_id))
    assert (received.instance_id, received.execution_id) == (instance_id, "e1")
    assert received.events[0]["Name"] == "Go" and received.events[0]["Input"] == "42"
    assert lease.label and lease.leased_at <= time.monotonic()


async def test_a_leased_message_comes_back_when_its_lease_lapses(task_hub: TaskHub) -> None:
    instance_id = _unique()
    partition = task_hub.partition_of(instance_id)
    await task_hub.send_control(_message(instance_id))
    ((_, first),) = await _receive(task_hub, partition)
    started = time.monotonic()
    assert await task_hub.receive_control(partition, LEASE) == []
    ((again, second),) = await _receive(task_hub, partition)
    assert again.instance_id == instance_id
    assert time.monotonic() - started >= LEASE * 0.5
    # The same message: its id tells a redelivery from a new message.
    assert second.message_id == first.message_id


async def test_a_completed_message_is_gone(task_hub: TaskHub) -> None:
    instance_id = _unique()
    partition = task_hub.partition_of(instance_id)
    await task_hub.send_control(_message(instance_id))
    ((_, lease),) = await _receive(task_hub, partition)
    await task_hub.complete(lease)
    await asyncio.sleep(LEASE + 0.5)
    assert await task_hub.receive_control(partition, LEASE) == []


async def test_a_renewed_lease_keeps_the_message_hidden(task_hub: TaskHub) -> None:
    instance_id = _unique()
    partition = task_hub.partition_of(instance_id)
    await task_hub.send_control(_message(instance_id))
    ((_, lease),) = await _receive(task_hub, partition)
    before = lease.leased_at
    assert await task_hub.renew(lease, 3.0)
    assert lease.leased_at >= before
    await asyncio.sleep(LEASE + 0.5)
    assert await task_hub.receive_control(partition, LEASE) == []
    await task_hub.complete(lease)


async def test_a_lapsed_lease_taken_by_another_receiver_can_neither_be_renewed_nor_completed(
    task_hub: TaskHub,
) -> None:
    """At least once: the first holder's late completion must not delete the second's copy."""
    instance_id = _unique()
    partition = task_hub.partition_of(instance_id)
    await task_hub.send_control(_message(instance_id))
    ((_, first),) = await _receive(task_hub, partition)
    ((_, second),) = await _receive(task_hub, partition, lease=LEASE * 3)
    assert await task_hub.renew(first, LEASE) is False
    await task_hub.complete(first)
    assert await task_hub.renew(second, 0) is True
    ((again, third),) = await _receive(task_hub, partition)
    assert again.instance_id == instance_id
    await task_hub.complete(third)


async def test_renewing_for_zero_seconds_makes_the_message_visible_now(task_hub: TaskHub) -> None:
    instance_id = _unique()
    partition = task_hub.partition_of(instance_id)
    await task_hub.send_control(_message(instance_id))
    ((_, lease),) = await _receive(task_hub, partition, lease=30.0)
    assert await task_hub.renew(lease, 0)
    ((again, _),) = await _receive(task_hub, partition, within=LEASE * 0.8)
    assert again.instance_id == instance_id


async def test_a_delayed_message_is_invisible_until_its_delay_passes(task_hub: TaskHub) -> None:
    instance_id = _unique()
    partition = task_hub.partition_of(instance_id)
    sent_at = time.monotonic()
    await task_hub.send_control(_message(instance_id), delay=LEASE)
    assert await task_hub.receive_control(partition, LEASE) == []
    ((received, _),) = await _receive(task_hub, partition)
    assert received.instance_id == instance_id
    assert time.monotonic() - sent_at >= LEASE * 0.9


async def test_a_message_sent_leased_surfaces_only_if_the_sender_lets_it_lapse(task_hub: TaskHub) -> None:
    kept, dropped = _unique("kept"), _unique("dropped")
    kept_lease = await task_hub.send_control(_message(kept), lease=LEASE)
    await task_hub.send_control(_message(dropped), lease=LEASE)
    await task_hub.complete(kept_lease)
    for instance_id in (kept, dropped):
        assert await task_hub.receive_control(task_hub.partition_of(instance_id), LEASE) == []
    ((received, _),) = await _receive(task_hub, task_hub.partition_of(dropped))
    assert received.instance_id == dropped
    await asyncio.sleep(0.2)
    assert await task_hub.receive_control(task_hub.partition_of(kept), LEASE) == []


async def test_messages_are_delivered_per_partition(task_hub: TaskHub) -> None:
    ids = [_unique() for _ in range(12)]
    for instance_id in ids:
        await task_hub.send_control(_message(instance_id))
    for partition in range(task_hub.partition_count):
        mine = {i for i in ids if task_hub.partition_of(i) == partition}
        got: set[str] = set()
        while len(got) < len(mine):
            batch = await _receive(task_hub, partition, lease=30.0, within=5.0)
            assert batch, f"partition {partition}: {len(got)} of {len(mine)}"
            got.update(message.instance_id for message, _ in batch)
        assert got == mine


# -- partition leases -----------------------------------------------------------------------------


async def test_partition_leases_change_only_by_their_current_version(task_hub: TaskHub) -> None:
    expires = h.utcnow() + timedelta(seconds=30)
    created = await task_hub.write_partition_lease(PartitionLease(0, None, None, expires))
    assert created is not None and created.version is not None
    assert await task_hub.write_partition_lease(PartitionLease(0, "other", None, expires)) is None

    mine = await task_hub.write_partition_lease(
        PartitionLease(0, "host-a", None, expires, version=created.version)
    )
    assert mine is not None and mine.owner == "host-a" and mine.version != created.version
    # A second host that read the lease before host-a's write loses.
    theirs = PartitionLease(0, "host-b", None, expires, version=created.version)
    assert await task_hub.write_partition_lease(theirs) is None

    (stored,) = [lease for lease in await task_hub.read_partition_leases() if lease.partition == 0]
    assert (stored.owner, stored.version) == ("host-a", mine.version)
