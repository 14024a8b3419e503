"""host.json keys are case-insensitive for every setting the host reads, the durable ones included."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from emulator.app._settings import AppLoadError, load_settings
from emulator.host._host import EmulatorHost, HostOptions

HTTP_BASICS = Path(__file__).resolve().parents[2] / "tests" / "apps" / "http_basics"

OTHER_CASING = {
    "version": "2.0",
    "EXTENSIONS": {
        "DurableTask": {
            "ExtendedSessionsEnabled": False,
            "maxconcurrentactivityfunctions": 3,
            "MAXCONCURRENTORCHESTRATORFUNCTIONS": 2,
            "StorageProvider": {"CONTROLQUEUEVISIBILITYTIMEOUT": "00:00:42", "PARTITIONCOUNT": 2},
        }
    },
}


def write_host_json(root: Path, host: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "host.json").write_text(json.dumps(host), encoding="utf-8")
    return root


def test_durable_settings_are_read_whatever_their_casing(tmp_path: Path) -> None:
    settings = load_settings(write_host_json(tmp_path, OTHER_CASING))
    assert settings.extended_sessions is False
    assert settings.control_queue_visibility_timeout == timedelta(seconds=42)
    assert settings.max_concurrent_activities == 3
    assert settings.max_concurrent_orchestrations == 2
    assert settings.partition_count == 2


def test_the_host_takes_its_options_from_them(tmp_path: Path) -> None:
    # The app has no local.settings.json: loading it exports nothing to the environment.
    app = shutil.copytree(HTTP_BASICS, tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    write_host_json(app, OTHER_CASING)
    host = EmulatorHost(HostOptions(script_root=app))
    host.load()
    assert host.settings is not None
    assert host.settings.extended_sessions is False
    assert host._lease_seconds(host.settings) == 42.0


def test_defaults_when_the_durable_settings_are_absent(tmp_path: Path) -> None:
    settings = load_settings(write_host_json(tmp_path, {"version": "2.0"}))
    assert settings.extended_sessions is True
    assert settings.control_queue_visibility_timeout is None


def test_override_settings_are_read_whatever_their_casing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AzureFunctionsJobHost__ overrides are strings, in whatever casing the user wrote.
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__durableTask__extendedSessionsEnabled", "False")
    timeout = "AZUREFUNCTIONSJOBHOST__EXTENSIONS__DURABLETASK__STORAGEPROVIDER__CONTROLQUEUEVISIBILITYTIMEOUT"
    monkeypatch.setenv(timeout, "1.00:00:00")
    settings = load_settings(write_host_json(tmp_path, {"version": "2.0"}))
    assert settings.extended_sessions is False
    assert settings.control_queue_visibility_timeout == timedelta(days=1)


@pytest.mark.parametrize(
    ("durable", "message"),
    [
        (
            {"extendedSessionsEnabled": "sometimes"},
            r"extendedSessionsEnabled in host\.json must be true or false",
        ),
        (
            {"storageProvider": {"controlQueueVisibilityTimeout": "five minutes"}},
            r"controlQueueVisibilityTimeout in host\.json must be a positive TimeSpan",
        ),
    ],
)
def test_invalid_values_stop_the_load(tmp_path: Path, durable: dict[str, object], message: str) -> None:
    host = {"version": "2.0", "extensions": {"durableTask": durable}}
    with pytest.raises(AppLoadError, match=message):
        load_settings(write_host_json(tmp_path, host))
