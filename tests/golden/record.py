"""Record the golden histories of the seed app from real runs on the emulator.

    .venv/bin/python -m tests.golden.record

Each orchestration is saved in the shapes offline replay reads: ``durable get-history --json``
(``<name>.json``), the status API's ``historyEvents`` (``<name>.status.json``) and, for
ProcessOrder, the raw History table rows (``<name>.rows.json``). Re-record after an intended
change to an orchestrator; the replay tests then check the code against the new histories.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from emulator.host._azurite import AzuriteServer
from emulator.testing import DurableHost, HostConfig
from emulator.testing._durable_host import environment
from tests.support import request

GOLDEN = Path(__file__).resolve().parent
REPO_ROOT = GOLDEN.parents[1]

RUNS: list[tuple[str, Any, str | None]] = [
    ("ProcessCustomers", ["alice", "bob", "carol"], None),
    ("ProcessOrder", None, "order-1001"),
]


def table_rows(connection: str, hub: str, instance_id: str) -> list[dict[str, Any]]:
    """The instance's History rows, sentinel included, as a table export writes them."""
    from azure.data.tables import TableServiceClient

    with TableServiceClient.from_connection_string(connection) as service:
        table = service.get_table_client(f"{hub}History")
        rows = [dict(e) for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": instance_id})]
    return sorted(rows, key=lambda r: str(r["RowKey"]))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {value!r}")


def status_with_history(host: DurableHost, instance_id: str) -> dict[str, Any]:
    query = "showHistory=true&showHistoryOutput=true&showInput=true"
    reply = request("GET", f"{host.base_url}/runtime/webhooks/durabletask/instances/{instance_id}?{query}")
    assert reply.status == 200, reply.body
    status: dict[str, Any] = reply.json()
    return status


def _write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, default=_json_value) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(REPO_ROOT)}")


def main() -> None:
    with tempfile.TemporaryDirectory() as data, AzuriteServer.start(Path(data)) as azurite:
        connection = azurite.connection_string
        with environment({"AzureWebJobsStorage": connection}):
            host = DurableHost(HostConfig(REPO_ROOT), connection).start()
            try:
                for name, value, instance_id in RUNS:
                    status = host.run_orchestration(name, value, instance_id=instance_id)
                    assert status.runtime_status.value == "Completed", status.output
                    instance = status.instance_id
                    host.save_history(instance, GOLDEN / f"{name}.json")
                    _write(GOLDEN / f"{name}.status.json", status_with_history(host, instance))
                    if name == "ProcessOrder":
                        _write(GOLDEN / f"{name}.rows.json", table_rows(connection, host.hub_name, instance))
            finally:
                host.stop()


if __name__ == "__main__":
    main()
