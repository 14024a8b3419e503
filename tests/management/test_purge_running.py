"""Purging an instance while it runs: nothing of the purged execution acts again.

The real provider purges a running instance when asked (it does not check the status); the
purged execution's messages that still arrive carry its execution id and are discarded, and a
new start with the same id runs a fresh execution.
"""

from __future__ import annotations

import json

from emulator.testing import BackgroundHost
from tests.management.api_support import HUB, api, history_rows, start, status, unique, wait_for
from tests.support import open_task_hub, read_instance, request, wait_until


def _idle(host: BackgroundHost, instance_id: str) -> bool:
    """This host has no episode or row write of the instance under way (or forgot it)."""
    runtime = host.host.runtime
    assert runtime is not None
    dispatcher = runtime.orchestrations
    instance = dispatcher._instances.get(instance_id)
    return instance is None or not instance.checkpoint_under_way


def test_a_start_after_purging_a_running_instance_runs_clean(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    instance_id = unique("purged")
    start(client_host, "WaitForApproval", {"run": 1}, instance_id=instance_id)
    wait_for(client_host, instance_id, "Running")
    purged = request("DELETE", api(client_host, f"/instances/{instance_id}"))
    assert (purged.status, purged.json()) == (200, {"instancesDeleted": 1})
    assert status(client_host, instance_id).status == 404

    start(client_host, "WaitForApproval", {"run": 2}, instance_id=instance_id)
    running = wait_for(client_host, instance_id, "Running")
    assert running["input"] == {"run": 2}
    raised = request("POST", api(client_host, f"/instances/{instance_id}/raiseEvent/Approval"), "yes")
    assert raised.status == 202
    done = wait_for(client_host, instance_id, "Completed")
    assert (done["input"], done["output"]) == ({"run": 2}, {"approval": "yes"})
    rows = history_rows(storage_connection, instance_id)
    assert len({r["ExecutionId"] for r in rows}) == 1
    started = [r for r in rows if r["EventType"] == "ExecutionStarted"]
    assert [json.loads(r["Input"]) for r in started] == [{"run": 2}]


def test_an_episode_under_way_when_the_purge_comes_writes_nothing_after_it(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    instance_id = unique("racing")
    start(client_host, "WaitForApproval", {"run": 1}, instance_id=instance_id)
    wait_for(client_host, instance_id, "Running")
    client = client_host.host.client
    assert client is not None

    async def raise_then_purge() -> int:
        # The event's episode runs on the host's loop while the purge reads and deletes; an
        # event the orchestrator does not wait for changes no status, so its row write waits.
        await client.raise_event(instance_id, "Unexpected", '"late"')
        return (await client.purge_instance(instance_id)).instances_deleted

    assert client_host.run(raise_then_purge()) == 1
    wait_until(lambda: _idle(client_host, instance_id))
    # No row recreated by the purged execution's status write (one without name or creation
    # time would block every new start with this id).
    assert read_instance(storage_connection, HUB, instance_id) is None
    assert status(client_host, instance_id).status == 404
    assert history_rows(storage_connection, instance_id) == []
    start(client_host, "WaitForApproval", {"run": 2}, instance_id=instance_id)
    assert wait_for(client_host, instance_id, "Running")["input"] == {"run": 2}
    assert request("POST", api(client_host, f"/instances/{instance_id}/terminate?reason=stop")).status == 202
    assert wait_for(client_host, instance_id, "Terminated")["output"] == "stop"


def test_a_message_of_an_execution_that_has_no_instance_row_is_dropped(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    """As a timer of a purged execution comes back from its queue after a restart."""
    from emulator.durable import _history as h
    from emulator.taskhub import ControlMessage

    storage, runtime = client_host.host.storage, client_host.host.runtime
    assert storage is not None and runtime is not None
    dispatcher = runtime.orchestrations
    instance_id = unique("orphan")
    fired = h.timer_fired(1, h.format_timestamp(h.utcnow()), h.utcnow())
    client_host.run(storage.send_control(ControlMessage(instance_id, [fired], h.new_execution_id())))

    def handled() -> bool:
        instance = dispatcher._instances.get(instance_id)
        return instance is not None and instance.task is None and not instance.pending

    wait_until(handled)
    assert read_instance(storage_connection, HUB, instance_id) is None
    # The id is free, and the new execution sees nothing of the dropped message.
    start(client_host, "Sleeper", instance_id=instance_id)
    assert wait_for(client_host, instance_id, "Running")["name"] == "Sleeper"


def test_a_purge_and_start_from_elsewhere_replace_what_the_running_host_holds(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    """As the ``durable`` command line (or a host that does not run the instance) purges and starts:
    the host that runs it learns of it only from storage and the new start's message."""
    import asyncio

    from emulator.client._client import ClientUrls, DurableClientService

    instance_id = unique("elsewhere")
    start(client_host, "WaitForApproval", {"run": 1}, instance_id=instance_id)
    wait_for(client_host, instance_id, "Running")

    async def purge_and_start() -> None:
        storage = open_task_hub(storage_connection, HUB)
        client = DurableClientService(
            storage=storage,
            index=None,
            leases=None,
            deliver=lambda message, handle: None,
            urls=ClientUrls(
                public_base="http://localhost:7071", rpc_base="http://127.0.0.1:7071/durabletask/"
            ),
            connection_name="Storage",
        )
        try:
            assert (await client.purge_instance(instance_id)).instances_deleted == 1
            await client.start_new("WaitForApproval", instance_id, '{"run": 2}')
        finally:
            await storage.close()

    asyncio.run(purge_and_start())
    assert wait_for(client_host, instance_id, "Running")["input"] == {"run": 2}
    raised = request("POST", api(client_host, f"/instances/{instance_id}/raiseEvent/Approval"), "yes")
    assert raised.status == 202
    done = wait_for(client_host, instance_id, "Completed")
    assert (done["input"], done["output"]) == ({"run": 2}, {"approval": "yes"})
    assert len({r["ExecutionId"] for r in history_rows(storage_connection, instance_id)}) == 1


def test_a_rewind_is_applied_when_the_failed_history_is_still_in_memory(
    client_host: BackgroundHost, storage_connection: str
) -> None:
    """A late activity result of a failed instance makes its host read its history (and drop the
    result); the rewind that follows changes that history in storage, not the copy in memory."""
    from emulator.durable import _history as h
    from emulator.durable._work_items import WorkItem

    key = unique("key")
    instance_id = start(client_host, "FailsOnce", {"key": key})["id"]
    wait_for(client_host, instance_id, "Failed")
    runtime = client_host.host.runtime
    assert runtime is not None
    dispatcher = runtime.orchestrations
    execution_id = history_rows(storage_connection, instance_id)[0]["ExecutionId"]

    async def late_result() -> None:
        item = WorkItem(instance_id, execution_id, 99, "Identity", None)
        dispatcher.deliver_result(item, h.task_completed(99, '"late"', h.utcnow()))

    client_host.run(late_result())
    wait_until(lambda: _idle(client_host, instance_id))
    assert request("POST", api(client_host, f"/instances/{instance_id}/rewind?reason=retry")).status == 202
    done = wait_for(client_host, instance_id, "Completed")
    assert done["output"] == ["before", f"attempt 2 for {key} worked"]
