"""Custom status, task_any/task_all semantics, determinism helpers, unknown names, call_http, types."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
from aiohttp import web

from emulator.durable import _status_writer
from emulator.host._azurite import free_port
from emulator.taskhub import InstanceRecord, InstanceUpdate
from emulator.taskhub.azure import AzureTaskHub
from emulator.testing import BackgroundHost
from tests.support import (
    decisions,
    get_status,
    history_rows,
    start_orchestration,
    wait_for_status,
    wait_until,
)


def test_custom_status_is_visible_while_running_and_after(features_host: BackgroundHost) -> None:
    started = start_orchestration(features_host.base_url, "WaitTwice")
    assert wait_until(lambda: get_status(started).json()["customStatus"]) == {"stage": "waiting"}


def test_a_status_query_during_a_checkpoint_reports_what_the_checkpoint_stores(
    features_host: BackgroundHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a limit on the wait, a query right after the start waits for the first episode's
    # Instances-row write; without the wait it would read the Pending row the start wrote.
    monkeypatch.setattr(_status_writer, "STATUS_QUERY_WAIT", 60.0)
    started = start_orchestration(features_host.base_url, "CustomTypes")
    reply = get_status(started)
    assert reply.json()["runtimeStatus"] in ("Running", "Completed")
    final = wait_for_status(started["statusQueryGetUri"])
    assert final["runtimeStatus"] == "Completed"
    assert final["output"] == {"x": 2, "y": 4, "type": "Point"}


@pytest.mark.azure_storage
def test_a_status_query_answered_from_the_checkpoint_write_equals_the_stored_row(
    features_host: BackgroundHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_status_writer, "STATUS_QUERY_WAIT", 60.0)
    from_write: list[str] = []
    written_instance = AzureTaskHub.written_instance

    def spy(self: AzureTaskHub, instance_id: str) -> InstanceRecord | None:
        record = written_instance(self, instance_id)
        if record is not None:
            from_write.append(record.runtime_status.name)
        return record

    update_instance = AzureTaskHub.update_instance

    async def slow_update(self: AzureTaskHub, instance_id: str, update: InstanceUpdate) -> bool:
        # Each Instances-row write takes long enough for the queries below to come during one:
        # on a busy machine, a whole episode could otherwise fall between two queries.
        await asyncio.sleep(0.2)
        return await update_instance(self, instance_id, update)

    monkeypatch.setattr(AzureTaskHub, "written_instance", spy)
    monkeypatch.setattr(AzureTaskHub, "update_instance", slow_update)
    started = start_orchestration(features_host.base_url, "BigStatus", 10)
    replies = [get_status(started).json()]
    while replies[-1]["runtimeStatus"] in ("Pending", "Running"):
        replies.append(get_status(started).json())
    answered = len(from_write)
    stored = get_status(started).json()  # nothing under way any more: read from storage
    assert answered >= 1 and len(from_write) == answered
    assert replies[-1] == stored
    assert stored["runtimeStatus"] == "Completed" and stored["output"] == "done"
    assert stored["customStatus"] == "s" * 10 and str(stored["input"]) == "10"


def test_custom_status_over_16_kb_fails_the_orchestration(features_host: BackgroundHost) -> None:
    started = start_orchestration(features_host.base_url, "BigStatus", 9000)  # 18 KB of UTF-16
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Failed"
    assert status["output"] == (
        "Orchestrator function 'BigStatus' failed: The UTF-16 size of the JSON-serialized payload must not "
        "exceed 16 KB. The current payload size is 17 KB."
    )
    small = start_orchestration(features_host.base_url, "BigStatus", 100)
    assert wait_for_status(small["statusQueryGetUri"])["customStatus"] == "s" * 100


def test_task_any_returns_a_failed_child_and_task_all_raises(features_host: BackgroundHost) -> None:
    started = start_orchestration(features_host.base_url, "AnyAndAll")
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["output"]["any"] == "exception"
    assert status["output"]["all"].startswith("Activity function 'Flaky' failed: RuntimeError: attempt 1 of")


def test_new_uuid_and_time_are_stable_across_replays(
    features_host: BackgroundHost, storage_connection: str
) -> None:
    started = start_orchestration(features_host.base_url, "Determinism")
    output = wait_for_status(started["statusQueryGetUri"])["output"]
    assert output["first"] == output["echoed"]  # the replay produced the same uuid as the first run
    assert output["first"] != output["second"]
    assert output["replaying_at_start"] is True  # the final episode replays from the start
    rows = history_rows(storage_connection, "FeaturesHub", started["id"])
    last_start = [r for r in rows if r["EventType"] == "OrchestratorStarted"][-1]
    assert output["time"].startswith(last_start["_Timestamp"].strftime("%Y-%m-%dT%H:%M:%S"))
    # new_uuid is uuid5 over the instance id, orchestration time and a counter (docs/sdk-protocol.md 3.5).
    first_start = next(r for r in rows if r["EventType"] == "OrchestratorStarted")["_Timestamp"]
    name = f"{started['id']}_{first_start.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}_0"
    namespace = uuid.uuid5(uuid.NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875")
    assert output["first"] == str(uuid.uuid5(namespace, name))


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (
            "activity",
            "The function 'NoSuchActivity' doesn't exist, is disabled, or is not an activity function.",
        ),
        (
            "orchestrator",
            "The function 'NoSuchOrchestrator' doesn't exist, is disabled, or is not an orchestrator "
            "function.",
        ),
    ],
)
def test_unknown_function_names_fail_with_the_known_ones_listed(
    features_host: BackgroundHost, kind: str, message: str
) -> None:
    started = start_orchestration(features_host.base_url, "CallsMissing", kind)
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Failed"
    assert status["output"].startswith(f"Orchestrator function 'CallsMissing' failed: {message}")
    assert "The following are the known" in status["output"]


@pytest.fixture
def polling_server() -> Iterator[str]:
    """A loopback service that answers 202 + Location twice before the final 200."""
    from emulator.testing._background import _WorkerLoop

    polls: list[str] = []

    async def begin(request: web.Request) -> web.Response:
        body = await request.json()
        return web.Response(
            status=202, headers={"Location": f"/status?echo={body['hello']}", "Retry-After": "0"}
        )

    async def status(request: web.Request) -> web.Response:
        polls.append(request.query["echo"])
        if len(polls) < 2:
            return web.Response(status=202, headers={"Location": str(request.url), "Retry-After": "0"})
        return web.json_response({"done": True, "echo": request.query["echo"], "polls": len(polls)})

    app = web.Application()
    app.router.add_post("/begin", begin)
    app.router.add_get("/status", status)
    loop = _WorkerLoop.acquire()
    port = free_port()
    runner = web.AppRunner(app)

    async def up() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    import asyncio

    asyncio.run_coroutine_threadsafe(up(), loop).result(10)
    try:
        yield f"http://127.0.0.1:{port}/begin"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        _WorkerLoop.release()


def test_call_http_follows_the_202_location_pattern(
    features_host: BackgroundHost, polling_server: str, storage_connection: str
) -> None:
    started = start_orchestration(features_host.base_url, "HttpCall", polling_server)
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed", status
    response = status["output"]
    assert response["statusCode"] == 200
    assert json.loads(response["content"]) == {"done": True, "echo": "world", "polls": 2}
    rows = history_rows(storage_connection, "FeaturesHub", started["id"])
    assert decisions(rows) == [("TaskScheduled", 0, "BuiltIn::HttpActivity")]


def test_custom_classes_cross_the_activity_boundary(features_host: BackgroundHost) -> None:
    started = start_orchestration(features_host.base_url, "CustomTypes")
    assert wait_for_status(started["statusQueryGetUri"])["output"] == {"x": 2, "y": 4, "type": "Point"}


@pytest.mark.azure_storage
def test_a_2_mb_activity_result_comes_back_intact(
    features_host: BackgroundHost, storage_connection: str
) -> None:
    started = start_orchestration(features_host.base_url, "LargeResult", 2 * 1024 * 1024)
    status = wait_for_status(started["statusQueryGetUri"], timeout=120)
    assert status["output"] == 2 * 1024 * 1024
    rows = history_rows(storage_connection, "FeaturesHub", started["id"])
    completed = next(r for r in rows if r["EventType"] == "TaskCompleted")
    assert completed["Result"] == "" and completed["ResultBlobName"].endswith(".json.gz")
