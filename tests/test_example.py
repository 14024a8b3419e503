"""Tests for the sample app, run on the emulator by its pytest plugin (the README's example)."""

from pathlib import Path

import azure.durable_functions as df
import pytest

from emulator.testing import DurableHost, DurableHostFactory, assert_replays

COMPLETED = df.OrchestrationRuntimeStatus.Completed
GOLDEN = Path(__file__).parent / "golden"


def test_every_customer_is_processed(durable_host: DurableHost) -> None:
    status = durable_host.run_orchestration("ProcessCustomers", ["alice", "bob", "carol"])
    assert status.runtime_status == COMPLETED
    assert status.output == [f"Processed customer: {name}" for name in ("alice", "bob", "carol")]


def test_order_steps_run_after_the_lookup(durable_host: DurableHost) -> None:
    status = durable_host.run_orchestration("ProcessOrder", instance_id="order-7")
    assert status.output["orderId"] == "order-7"
    history = durable_host.history("order-7")
    steps = [event["Name"] for event in history if event["EventType"] == "TaskScheduled"]
    assert steps[0] == "GetOrderDetailsActivity"
    assert set(steps[1:4]) == {
        "NotifyCustomerActivity",
        "UpdateInventoryActivity",
        "ScheduleShippingActivity",
    }
    assert steps[4] == "CompleteOrderActivity"


def test_the_sdk_client_works_too(
    durable_host: DurableHost, durable_client: df.DurableOrchestrationClient
) -> None:
    instance_id = durable_host.call(durable_client.start_new("ProcessCustomers", client_input=["dave"]))
    status = durable_host.wait_for(instance_id)
    assert status.output == ["Processed customer: dave"]


@pytest.mark.durable_host("tests/apps/plugin_app")
def test_five_minutes_of_timers_take_no_wall_time(durable_host: DurableHost) -> None:
    # Reminders waits on five 1-minute timers: durable time jumps to each timer it waits on.
    status = durable_host.run_orchestration("Reminders", {"count": 5, "minutes": 1}, skip_timers=True)
    assert status.runtime_status == COMPLETED
    assert status.output["greeting"] == "Hello after the timers"


def test_a_crash_loses_nothing(durable_host_factory: DurableHostFactory) -> None:
    host = durable_host_factory(
        subprocess=True, crash_at="activity-after-run:2", env={"PROCESS_CUSTOMER_DELAY_SECONDS": "0.5"}
    )
    instance_id = host.start_orchestration("ProcessCustomers", ["a", "b", "c"])
    assert host.wait_exit() == -9  # killed right after the second activity ran, before its result was saved
    host.restart()
    status = host.wait_for(instance_id)
    assert status.output == ["Processed customer: a", "Processed customer: b", "Processed customer: c"]


@pytest.mark.parametrize("history", sorted(GOLDEN.glob("*.json")), ids=lambda path: path.name)
def test_the_code_still_replays_its_golden_histories(history: Path, pytestconfig: pytest.Config) -> None:
    assert_replays(history, script_root=pytestconfig.rootpath)
