"""Kill the host with SIGKILL at every gap of its checkpoint order; a new host finishes the work.

Each scenario reads like the story it tells: a host in its own process starts an orchestration
and dies part-way (at a point named by the crash switch, or at a random moment); a second host
on the same task hub picks the leased messages up once their lease lapses and completes it.
The output must be complete and in order, and every activity must have run once or twice.
"""

from __future__ import annotations

import collections
import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from emulator.testing import SubprocessHost
from tests.conftest import TEST_APPS
from tests.support import history_rows, request, wait_for_status, wait_until

CRASH_APP = TEST_APPS / "crash_app"
#: Messages a killed host held come back after this many seconds.
LEASE_SECONDS = 4.0


@pytest.fixture
def hosts(storage_connection: str, tmp_path: Path) -> Iterator[list[SubprocessHost]]:
    """Hosts a test starts; whatever is still running at the end is killed."""
    started: list[SubprocessHost] = []
    yield started
    for host in started:
        host.kill()


def _host(
    hosts: list[SubprocessHost], connection: str, tmp_path: Path, crash_at: str | None = None
) -> SubprocessHost:
    host = SubprocessHost(
        CRASH_APP,
        connection_string=connection,
        lease_seconds=LEASE_SECONDS,
        crash_at=crash_at,
        log_path=tmp_path / f"host-{len(hosts)}.log",
    )
    hosts.append(host)
    return host.start()


def _start(host: SubprocessHost, name: str, body: Any) -> dict[str, Any]:
    reply = request("POST", f"{host.base_url}/api/start/{name}", body)
    assert reply.status == 202, reply.body
    payload: dict[str, Any] = reply.json()
    return payload


def _on(host: SubprocessHost, url: str) -> str:
    """The same management URL, on another host's port."""
    return f"{host.base_url}/runtime/{url.split('/runtime/', 1)[1]}"


def _runs(connection: str, instance_id: str) -> collections.Counter[str]:
    with TableServiceClient.from_connection_string(connection) as service:
        table = service.get_table_client("crashruns")
        rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": instance_id})
        return collections.Counter(str(r["Item"]) for r in rows)


def _died(host: SubprocessHost) -> None:
    assert host.wait_exit(timeout=90) == -9, "the crash switch did not fire"


ITEMS = [f"c{i:03d}" for i in range(200)]


@pytest.mark.parametrize(
    "crash_at",
    [
        "episode-after-send:2",  # a fan-in episode sent nothing new but must not be lost
        "history-between-batches:1",  # the 200 TaskScheduled rows need three transactions
        "episode-after-history:1",
        "episode-after-instance:2",
        "activity-after-run:60",
        "activity-after-handoff:1",  # a result lost with the host is dispatched again
    ],
)
def test_fan_out_of_200_survives_a_kill(
    crash_at: str, hosts: list[SubprocessHost], storage_connection: str, tmp_path: Path
) -> None:
    first = _host(hosts, storage_connection, tmp_path, crash_at=crash_at)
    started = _start(first, "FanOut", {"items": ITEMS, "delay": 0.005})
    _died(first)
    second = _host(hosts, storage_connection, tmp_path)
    status = wait_for_status(_on(second, started["statusQueryGetUri"]), timeout=120)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == [f"done {item}" for item in ITEMS]
    runs = _runs(storage_connection, started["id"])
    assert set(runs) == set(ITEMS)
    assert set(runs.values()) <= {1, 2}


def test_fan_out_survives_a_kill_at_a_random_moment(
    hosts: list[SubprocessHost], storage_connection: str, tmp_path: Path
) -> None:
    seed = random.randrange(1_000_000)
    delay = random.Random(seed).uniform(0.1, 1.2)
    first = _host(hosts, storage_connection, tmp_path)
    started = _start(first, "FanOut", {"items": ITEMS, "delay": 0.01})
    time.sleep(delay)
    first.kill()
    second = _host(hosts, storage_connection, tmp_path)
    status = wait_for_status(_on(second, started["statusQueryGetUri"]), timeout=120)
    assert status["output"] == [f"done {item}" for item in ITEMS], f"seed {seed}"
    runs = _runs(storage_connection, started["id"])
    assert set(runs) == set(ITEMS) and set(runs.values()) <= {1, 2}, f"seed {seed}"


def test_a_start_kept_only_in_its_pending_row_runs_after_a_kill(
    hosts: list[SubprocessHost], storage_connection: str, tmp_path: Path
) -> None:
    # The host that owns an instance's partition records a client start in the Pending row
    # alone; it dies before the first episode, so only that row tells the next host to run it.
    body = {"items": ITEMS[:20], "delay": 0}
    instance_id = _start_on_a_dying_host(hosts, storage_connection, tmp_path, "start-after-pending", body)
    assert _output_on_a_new_host(hosts, storage_connection, tmp_path, instance_id) == _done(ITEMS[:20])
    assert set(_runs(storage_connection, instance_id).values()) == {1}


def test_a_first_episode_kept_in_memory_is_decided_again_after_a_kill(
    hosts: list[SubprocessHost], storage_connection: str, tmp_path: Path
) -> None:
    # A small first episode's rows wait in memory for its activities' results; the host dies
    # right after starting those activities, before any history row is written.
    body = {"items": ITEMS[:5], "delay": 0.2}
    instance_id = _start_on_a_dying_host(hosts, storage_connection, tmp_path, "episode-after-send:1", body)
    assert history_rows(storage_connection, "CrashHub", instance_id) == []
    assert _output_on_a_new_host(hosts, storage_connection, tmp_path, instance_id) == _done(ITEMS[:5])
    runs = _runs(storage_connection, instance_id)
    assert set(runs) == set(ITEMS[:5]) and set(runs.values()) <= {1, 2}


def _start_on_a_dying_host(
    hosts: list[SubprocessHost], connection: str, tmp_path: Path, crash_at: str, body: Any
) -> str:
    """Start a FanOut on a host set to crash; the id of the one instance it created."""
    before = _instance_ids(connection)
    first = _host(hosts, connection, tmp_path, crash_at=crash_at)
    # Partitions a killed host of an earlier scenario held free up only when its lease lapses;
    # the start must land on a host that owns them all, to be recorded in its Pending row alone.
    log = tmp_path / "host-0.log"
    wait_until(lambda: all(f"now owns crashhub-control-0{p}" in log.read_text() for p in range(4)))
    with contextlib.suppress(OSError):  # the host may die before it answers
        request("POST", f"{first.base_url}/api/start/FanOut", body)
    _died(first)
    new = _instance_ids(connection) - before
    assert len(new) == 1
    return new.pop()


def _output_on_a_new_host(
    hosts: list[SubprocessHost], connection: str, tmp_path: Path, instance_id: str
) -> Any:
    second = _host(hosts, connection, tmp_path)
    url = f"{second.base_url}/runtime/webhooks/durabletask/instances/{instance_id}"
    return wait_for_status(url, timeout=60)["output"]


def _done(items: list[str]) -> list[str]:
    return [f"done {item}" for item in items]


def _instance_ids(connection: str) -> set[str]:
    with TableServiceClient.from_connection_string(connection) as service:
        service.create_table_if_not_exists("CrashHubInstances")
        table = service.get_table_client("CrashHubInstances")
        return {str(row["PartitionKey"]) for row in table.list_entities(select=["PartitionKey"])}


def test_a_timer_survives_a_kill(
    hosts: list[SubprocessHost], storage_connection: str, tmp_path: Path
) -> None:
    first = _host(hosts, storage_connection, tmp_path)
    started = _start(first, "TimerThenWork", 2)
    wait_until(lambda: request("GET", started["statusQueryGetUri"]).json()["runtimeStatus"] == "Running")
    first.kill()
    second = _host(hosts, storage_connection, tmp_path)
    status = wait_for_status(_on(second, started["statusQueryGetUri"]), timeout=60)
    assert status["output"] == "done after-timer"
    assert _runs(storage_connection, started["id"]) == {"after-timer": 1}


def test_a_waiting_orchestration_gets_its_event_after_a_kill(
    hosts: list[SubprocessHost], storage_connection: str, tmp_path: Path
) -> None:
    first = _host(hosts, storage_connection, tmp_path)
    started = _start(first, "WaitForEvent", None)
    wait_until(lambda: request("GET", started["statusQueryGetUri"]).json()["runtimeStatus"] == "Running")
    first.kill()
    second = _host(hosts, storage_connection, tmp_path)
    url = _on(second, started["sendEventPostUri"]).replace("{eventName}", "Go")
    assert request("POST", url, 7).status == 202
    status = wait_for_status(_on(second, started["statusQueryGetUri"]), timeout=60)
    assert status["output"] == "done 7"


def test_an_event_is_applied_once_when_the_host_dies_before_acknowledging_it(
    hosts: list[SubprocessHost], storage_connection: str, tmp_path: Path
) -> None:
    # The second episode (the event's) is checkpointed, then the host dies before deleting the
    # event's message: the message comes back and must not be appended a second time.
    first = _host(hosts, storage_connection, tmp_path, crash_at="episode-after-instance:2")
    started = _start(first, "WaitForEvent", None)
    wait_until(lambda: request("GET", started["statusQueryGetUri"]).json()["runtimeStatus"] == "Running")
    assert request("POST", started["sendEventPostUri"].replace("{eventName}", "Go"), 1).status == 202
    _died(first)
    second = _host(hosts, storage_connection, tmp_path)
    status = wait_for_status(_on(second, started["statusQueryGetUri"]), timeout=60)
    assert status["output"] == "done 1"
    history = request("GET", _on(second, started["statusQueryGetUri"]) + "&showHistory=true").json()
    assert [e["EventType"] for e in history["historyEvents"]].count("EventRaised") == 1


def test_sub_orchestrations_survive_a_kill(
    hosts: list[SubprocessHost], storage_connection: str, tmp_path: Path
) -> None:
    first = _host(hosts, storage_connection, tmp_path, crash_at="episode-after-send:4")
    started = _start(first, "ParentOfFanOuts", {"children": 3, "width": 20, "delay": 0.01})
    _died(first)
    second = _host(hosts, storage_connection, tmp_path)
    status = wait_for_status(_on(second, started["statusQueryGetUri"]), timeout=90)
    assert status["runtimeStatus"] == "Completed"
    assert [len(child) for child in status["output"]] == [20, 20, 20]
    assert status["output"][1][0] == "done 1-0"


def test_continue_as_new_survives_a_kill(
    hosts: list[SubprocessHost], storage_connection: str, tmp_path: Path
) -> None:
    first = _host(hosts, storage_connection, tmp_path, crash_at="episode-after-history:5")
    started = _start(first, "Eternal", {"n": 0, "until": 10, "delay": 0})
    _died(first)
    second = _host(hosts, storage_connection, tmp_path)
    status = wait_for_status(_on(second, started["statusQueryGetUri"]), timeout=90)
    assert status["output"] == 10
    runs = _runs(storage_connection, started["id"])
    assert set(runs) == {f"gen-{n}" for n in range(10)} and set(runs.values()) <= {1, 2}


def test_two_hosts_share_a_task_hub_and_one_takes_over_when_the_other_dies(
    hosts: list[SubprocessHost], storage_connection: str, tmp_path: Path
) -> None:
    first = _host(hosts, storage_connection, tmp_path)
    second = _host(hosts, storage_connection, tmp_path)
    # Both hosts serve the API; whichever owns an instance's partition runs it.
    runs = [_start(host, "FanOut", {"items": ITEMS[:40], "delay": 0.02}) for host in (first, second) * 3]
    time.sleep(0.3)
    first.kill()
    for started in runs:
        status = wait_for_status(_on(second, started["statusQueryGetUri"]), timeout=120)
        assert status["output"] == [f"done {item}" for item in ITEMS[:40]]
        counts = _runs(storage_connection, started["id"])
        assert set(counts) == set(ITEMS[:40]) and set(counts.values()) <= {1, 2}
    # The survivor owns every partition in the end, including those the dead host had. All the
    # work may be done before that: a dead host's partition that held none of it is taken over
    # only once its lease has expired (and a request it made for a partition has gone stale).
    log = tmp_path / "host-1.log"
    wait_until(
        lambda: all(f"now owns crashhub-control-0{p}" in log.read_text() for p in range(4)),
        timeout=4 * LEASE_SECONDS + 10,
    )


def test_the_host_rides_out_azurite_going_away_and_coming_back(
    tmp_path: Path, hosts: list[SubprocessHost]
) -> None:
    from emulator.host._azurite import AzuriteServer

    storage = AzuriteServer.start(tmp_path / "azurite")
    try:
        host = SubprocessHost(
            CRASH_APP,
            connection_string=storage.connection_string,
            lease_seconds=LEASE_SECONDS,
            log_path=tmp_path / "host.log",
        )
        hosts.append(host)
        host.start()
        started = _start(host, "PlainFanOut", {"items": ITEMS[:60], "delay": 0.05})
        time.sleep(0.5)
        # An outage, not a data loss: Azurite is stopped (it saves its data) and started again.
        storage.stop()
        time.sleep(2.0)
        storage = AzuriteServer.start(tmp_path / "azurite", storage.endpoints)
        status = wait_for_status(started["statusQueryGetUri"], timeout=180)
        assert status["output"] == [f"done {item}" for item in ITEMS[:60]]
    finally:
        storage.stop()


def test_the_status_catches_up_when_the_host_died_between_history_and_status(
    hosts: list[SubprocessHost], storage_connection: str, tmp_path: Path
) -> None:
    # Episodes: start, timer fired, activity done; the last two are written in one transaction
    # (the activity's result comes back before the second episode's rows are written). That
    # history (with ExecutionCompleted) is written, then the host dies before the Instances row
    # says Completed.
    first = _host(hosts, storage_connection, tmp_path, crash_at="episode-after-history:2")
    started = _start(first, "TimerThenWork", 0.2)
    _died(first)
    second = _host(hosts, storage_connection, tmp_path)
    status = wait_for_status(_on(second, started["statusQueryGetUri"]), timeout=60)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == "done after-timer"
