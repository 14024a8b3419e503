"""The Azurite the emulator starts finds a row through the index with fewer candidates
(emulator/host/azurite_lookups.js): in the Durable Task layout every instance shares the RowKeys,
so a lookup by RowKey first tests one row per instance of the task hub, and one by PartitionKey
first every row of one long history."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.host._azurite import (
    LOOKUP_ORDER_SCRIPT,
    AzuriteServer,
    _with_lookup_order,
    find_azurite_executable,
)

pytestmark = pytest.mark.timeout(60)

# A History table of 300 instances of 4 rows each (SHAPE=instances: the RowKeys shared) or of
# one instance of 1,200 rows (SHAPE=partition); one lookup, the candidates it tests counted.
_COUNT_CANDIDATES = """
const path = require("path");
process.argv[1] = process.env.AZURITE_MAIN;
if (process.env.WITH_SCRIPT) require(process.env.WITH_SCRIPT);
const Loki = require(require.resolve("lokijs", { paths: [path.dirname(process.argv[1])] }));
const rows = new Loki("t").addCollection("History", { indices: ["PartitionKey", "RowKey"] });
const instances = process.env.SHAPE === "instances" ? 300 : 1;
const each = 1200 / instances;
const key = (r) => r.toString(16).padStart(16, "0");
for (let i = 0; i < instances; i++)
  for (let r = 0; r < each; r++) rows.insert({ PartitionKey: "i" + i, RowKey: key(r), n: i * each + r });
let tested = 0;
const eq = Loki.LokiOps.$eq;
Loki.LokiOps.$eq = function (a, b) { tested++; return eq.apply(this, arguments); };
const wanted = instances > 1 ? "i123" : "i0";
const found = rows.findOne({ RowKey: key(2), PartitionKey: wanted });
const missing = rows.findOne({ RowKey: key(5000), PartitionKey: wanted });
console.log(JSON.stringify({ n: found && found.n, missing, tested }));
"""


def _azurite_main() -> Path:
    launcher = find_azurite_executable([])
    assert launcher is not None, "Azurite is not installed: run ./dev setup"
    return launcher.resolve()


def _lookup(tmp_path: Path, shape: str, with_script: bool) -> dict[str, object]:
    node = shutil.which("node")
    assert node is not None
    script = tmp_path / "count.js"
    script.write_text(_COUNT_CANDIDATES)
    env = {**os.environ, "AZURITE_MAIN": str(_azurite_main()), "SHAPE": shape}
    if with_script:
        env["WITH_SCRIPT"] = str(LOOKUP_ORDER_SCRIPT)
    done = subprocess.run(
        [node, str(script)], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stderr == ""
    return dict(json.loads(done.stdout))


def test_a_lookup_tests_the_rows_of_one_instance_only(tmp_path: Path) -> None:
    plain = _lookup(tmp_path, "instances", with_script=False)
    ordered = _lookup(tmp_path, "instances", with_script=True)
    assert plain["n"] == ordered["n"] == 123 * 4 + 2
    assert plain["missing"] is None and ordered["missing"] is None
    assert int(str(plain["tested"])) >= 300  # every instance's row 0000000000000002
    assert int(str(ordered["tested"])) <= 8  # the rows of instance i123


def test_a_lookup_in_one_long_history_keeps_the_rowkey_index(tmp_path: Path) -> None:
    ordered = _lookup(tmp_path, "partition", with_script=True)
    assert ordered["n"] == 2 and ordered["missing"] is None
    assert int(str(ordered["tested"])) <= 2  # not the 1,200 rows of the partition


def test_the_script_is_added_to_node_options() -> None:
    alone = _with_lookup_order({})["NODE_OPTIONS"]
    assert alone == f'--require "{LOOKUP_ORDER_SCRIPT}"'
    kept = _with_lookup_order({"NODE_OPTIONS": "--max-old-space-size=4096"})["NODE_OPTIONS"]
    assert kept == f"--max-old-space-size=4096 {alone}"
    assert LOOKUP_ORDER_SCRIPT.is_file()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_started_azurite_runs_with_the_script(tmp_path: Path) -> None:
    server = AzuriteServer.start(tmp_path / "azurite")
    try:
        environ = Path(f"/proc/{server.process.pid}/environ").read_bytes().split(b"\0")
        options = [e for e in environ if e.startswith(b"NODE_OPTIONS=")]
        assert options and str(LOOKUP_ORDER_SCRIPT).encode() in options[0]
    finally:
        server.stop()
    assert "row lookups left" not in server.log_path.read_text()
