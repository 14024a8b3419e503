"""Sub-orchestrations: explicit and default instance ids, fan-out, failures caught by the parent."""

from __future__ import annotations

from emulator.testing import BackgroundHost
from tests.support import history_rows, request, start_orchestration, wait_for_status


def test_parent_fans_out_children_that_fan_out_activities(
    features_host: BackgroundHost, storage_connection: str
) -> None:
    started = start_orchestration(features_host.base_url, "Parent", 3)
    status = wait_for_status(started["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed", status
    output = status["output"]
    assert output["named"] == {"n": 0, "parent": started["id"], "results": ["0-0", "0-1", "0-2"]}
    assert [c["results"] for c in output["fanned"]] == [[f"{n}-{i}" for i in range(3)] for n in (1, 2, 3)]
    assert output["caught"] == "Orchestrator function 'Child' failed: child 99 refuses "

    rows = history_rows(storage_connection, "FeaturesHub", started["id"])
    created = [r for r in rows if r["EventType"] == "SubOrchestrationInstanceCreated"]
    execution_id = rows[0]["ExecutionId"]
    assert created[0]["InstanceId"] == f"{started['id']}-named"
    # Without an explicit id, DTFx names the child "<parent execution id>:<sequence id>".
    assert [r["InstanceId"] for r in created[1:]] == [f"{execution_id}:{r['EventId']}" for r in created[1:]]
    completed = [r for r in rows if r["EventType"] == "SubOrchestrationInstanceCompleted"]
    assert sorted(r["TaskScheduledId"] for r in completed) == [r["EventId"] for r in created[:4]]

    child = request("GET", started["statusQueryGetUri"].replace(started["id"], f"{started['id']}-named"))
    assert child.status == 200 and child.json()["runtimeStatus"] == "Completed"
    child_rows = history_rows(storage_connection, "FeaturesHub", f"{started['id']}-named")
    assert '"InstanceId": "' + started["id"] + '"' in child_rows[1]["ParentInstance"]
