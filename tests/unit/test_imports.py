"""What importing a module loads: ``emulator`` itself nothing heavy, an episode nothing that runs functions.

Each check runs in a fresh interpreter, since this one has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def modules_loaded_by(module: str) -> list[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_importing_emulator_loads_no_stage() -> None:
    # EmulatorHost loads the host on first use: `import emulator` must stay cheap.
    loaded = modules_loaded_by("emulator")
    assert "aiohttp" not in loaded
    assert [m for m in loaded if m.startswith("emulator.")] == []


def test_an_episode_loads_no_function_running_host_or_storage_code() -> None:
    # An episode is pure: history in, decisions out. Activities, bindings and storage live elsewhere.
    loaded = modules_loaded_by("emulator.durable._episode")
    assert "emulator.durable._episode" in loaded
    stages = ("emulator.functions", "emulator.taskhub", "emulator.host")
    impure = [m for m in loaded if any(m == stage or m.startswith(f"{stage}.") for stage in stages)]
    assert impure == []
    assert "aiohttp" not in loaded
    assert "azure.storage.queue" not in loaded


@pytest.mark.parametrize("package", ["app", "functions", "http", "client", "durable", "tools"])
def test_a_stage_package_re_exports_nothing(package: str) -> None:
    # Their modules are imported by name (emulator.<stage>._module); the package itself stays empty.
    loaded = modules_loaded_by(f"emulator.{package}")
    assert [m for m in loaded if m.startswith("emulator.")] == [f"emulator.{package}"]
    assert "aiohttp" not in loaded
