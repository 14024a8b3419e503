"""A host restarted after a crash on the same machine and port owns its partitions at once.

The partitions of a SIGKILLed host stay leased to it for up to 30 s, since nobody can tell a
dead owner from a slow one. A host that finds them held by its own predecessor (same machine,
same port, a process that no longer exists) can: it takes them over without waiting. Any other
holder is waited for, and the host says for whom and for how long.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from azure.data.tables import TableClient

from emulator.host._azurite import free_port
from emulator.testing import SubprocessHost
from tests.conftest import TEST_APPS
from tests.support import wait_until


def _app_on_new_hub(tmp_path: Path) -> tuple[Path, str]:
    """The crash test app, on a task hub of its own."""
    root = tmp_path / "app"
    shutil.copytree(TEST_APPS / "crash_app", root)
    hub = f"Takeover{uuid.uuid4().hex[:8]}"
    host_json = json.loads((root / "host.json").read_text())
    host_json["extensions"]["durableTask"]["hubName"] = hub
    (root / "host.json").write_text(json.dumps(host_json))
    return root, hub


def _owners(connection: str, hub: str) -> list[str]:
    with TableClient.from_connection_string(connection, f"{hub}Partitions") as table:
        rows = sorted(table.query_entities("PartitionKey eq ''"), key=lambda r: r["RowKey"])
    return [str(r["CurrentOwner"]) for r in rows]


def _waits(log: Path, hub: str) -> list[str]:
    """The host's lines about the holder of each partition, once it has written all four."""
    lines = [
        x for x in log.read_text().splitlines() if f"{hub.lower()}-control-0" in x and "is owned by" in x
    ]
    return lines if len(lines) >= 4 else []


def _identity(host: SubprocessHost) -> str:
    import socket

    assert host.process is not None
    return f"{socket.gethostname()}-{host.process.pid}-{host.port}"


def test_a_host_restarted_on_its_port_after_a_kill_owns_the_partitions_at_once(
    storage_connection: str, tmp_path: Path
) -> None:
    root, hub = _app_on_new_hub(tmp_path)
    port = free_port()
    # The default lease: the dead host's partitions would stay its own for 30 s.
    first = SubprocessHost(root, connection_string=storage_connection, port=port, log_path=tmp_path / "1.log")
    second = SubprocessHost(
        root, connection_string=storage_connection, port=port, log_path=tmp_path / "2.log"
    )
    try:
        first.start()
        assert _owners(storage_connection, hub) == [_identity(first)] * 4
        first.kill()
        second.start()
        # Owned by the new host when it first answers: no lease was waited out.
        assert _owners(storage_connection, hub) == [_identity(second)] * 4
        said = f"is held by '{_identity(first)}', an earlier host on this machine and port"
        wait_until(lambda: said in (tmp_path / "2.log").read_text())
    finally:
        first.kill()
        second.kill()


def test_a_host_says_whose_lease_it_waits_for_and_how_long(storage_connection: str, tmp_path: Path) -> None:
    root, hub = _app_on_new_hub(tmp_path)
    # Short leases, for the wait at the end.
    first = SubprocessHost(
        root, connection_string=storage_connection, lease_seconds=4, log_path=tmp_path / "1.log"
    )
    second = SubprocessHost(
        root, connection_string=storage_connection, lease_seconds=4, log_path=tmp_path / "2.log"
    )
    try:
        first.start()
        first.kill()  # on another port: not the second host's predecessor
        second.start()
        assert _owners(storage_connection, hub) == [_identity(first)] * 4
        lines = wait_until(lambda: _waits(tmp_path / "2.log", hub))
        assert len(lines) == 4
        for line in lines:
            assert f"is owned by host '{_identity(first)}' (lease for " in line
            assert "or this host takes it once that lease expires without renewal" in line
        # ...and it takes them once the lease has run out.
        wait_until(lambda: _owners(storage_connection, hub) == [_identity(second)] * 4)
    finally:
        first.kill()
        second.kill()
