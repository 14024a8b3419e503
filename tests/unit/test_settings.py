"""host.json / local.settings.json loading: defaults, durable settings, validation and errors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.app._settings import AppLoadError, load_settings


@pytest.fixture(autouse=True)
def restore_environment() -> Iterator[None]:
    # apply_to_environment writes os.environ directly; put it back after every test.
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def write_app(root: Path, host: Any = None, local: Any = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if host is not None:
        text = host if isinstance(host, str) else json.dumps(host)
        (root / "host.json").write_text(text, encoding="utf-8")
    if local is not None:
        text = local if isinstance(local, str) else json.dumps(local)
        (root / "local.settings.json").write_text(text, encoding="utf-8")
    return root


def durable(**settings: Any) -> dict[str, Any]:
    return {"version": "2.0", "extensions": {"durableTask": settings}}


def test_missing_host_json_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match=r"host\.json not found in .*: is this a Functions app folder\?"):
        load_settings(tmp_path)


def test_defaults_when_host_json_has_no_extensions(tmp_path: Path) -> None:
    settings = load_settings(write_app(tmp_path, {"version": "2.0"}))
    assert settings.script_root == tmp_path.resolve()
    assert settings.values == {}
    assert settings.route_prefix == "api"
    assert settings.hub_name == "TestHubName"
    assert settings.storage_connection_name == "AzureWebJobsStorage"
    assert settings.partition_count == 4
    expected = 10 * (os.cpu_count() or 1)
    assert settings.max_concurrent_activities == expected
    assert settings.max_concurrent_orchestrations == expected
    assert settings.host_json == {"version": "2.0"}


def test_reads_http_and_durable_settings(tmp_path: Path) -> None:
    host = {
        "version": "2.0",
        "extensions": {
            "http": {"routePrefix": ""},
            "durableTask": {
                "hubName": "MyHub",
                "maxConcurrentActivityFunctions": 3,
                "maxConcurrentOrchestratorFunctions": 2,
                "storageProvider": {"connectionStringName": "DurableStorage", "partitionCount": 8},
            },
        },
    }
    local = {"IsEncrypted": False, "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", "X": "1"}}
    settings = load_settings(write_app(tmp_path, host, local))
    assert settings.route_prefix == ""
    assert settings.hub_name == "MyHub"
    assert settings.storage_connection_name == "DurableStorage"
    assert settings.partition_count == 8
    assert settings.max_concurrent_activities == 3
    assert settings.max_concurrent_orchestrations == 2
    assert settings.values == {"FUNCTIONS_WORKER_RUNTIME": "python", "X": "1"}


def test_connection_name_is_accepted_as_well_as_connection_string_name(tmp_path: Path) -> None:
    settings = load_settings(write_app(tmp_path, durable(storageProvider={"connectionName": "Other"})))
    assert settings.storage_connection_name == "Other"


def test_host_json_keys_are_case_insensitive(tmp_path: Path) -> None:
    host = {
        "version": "2.0",
        "Extensions": {"HTTP": {"RoutePrefix": "/v1/"}, "DurableTask": {"HubName": "Hub1"}},
    }
    settings = load_settings(write_app(tmp_path, host))
    assert settings.route_prefix == "v1"
    assert settings.hub_name == "Hub1"


def test_hub_name_app_setting_reference_resolves_from_values(tmp_path: Path) -> None:
    os.environ.pop("MyTaskHub", None)
    app = write_app(tmp_path, durable(hubName="%MyTaskHub%"), {"Values": {"MyTaskHub": "FromValues"}})
    assert load_settings(app).hub_name == "FromValues"


def test_hub_name_app_setting_reference_prefers_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MyTaskHub", "FromEnv")
    app = write_app(tmp_path, durable(hubName="%MyTaskHub%"), {"Values": {"MyTaskHub": "FromValues"}})
    assert load_settings(app).hub_name == "FromEnv"


def test_hub_name_reference_to_a_missing_setting_names_it(tmp_path: Path) -> None:
    os.environ.pop("NoSuchHubSetting", None)
    with pytest.raises(AppLoadError, match="'NoSuchHubSetting'"):
        load_settings(write_app(tmp_path, durable(hubName="%NoSuchHubSetting%")))


@pytest.mark.parametrize("hub_name", ["ab", "1Hub", "my-hub", "my_hub", "H" * 46, "Hüb"])
def test_invalid_hub_names_are_rejected_with_the_host_message(tmp_path: Path, hub_name: str) -> None:
    expected = (
        f"Task hub name '{hub_name}' should contain only alphanumeric characters, start with a letter, "
        f"and have length between 3 and 45."
    )
    with pytest.raises(AppLoadError) as caught:
        load_settings(write_app(tmp_path, durable(hubName=hub_name)))
    assert expected in str(caught.value)


@pytest.mark.parametrize("hub_name", ["abc", "Hub2", "H" * 45])
def test_valid_hub_names_are_accepted(tmp_path: Path, hub_name: str) -> None:
    assert load_settings(write_app(tmp_path, durable(hubName=hub_name))).hub_name == hub_name


@pytest.mark.parametrize("count", [0, 17, -1])
def test_partition_count_out_of_range_is_rejected(tmp_path: Path, count: int) -> None:
    app = write_app(tmp_path, durable(storageProvider={"partitionCount": count}))
    with pytest.raises(AppLoadError, match="PartitionCount must be an integer value between 1 and 16"):
        load_settings(app)


@pytest.mark.parametrize("count", [1, 16])
def test_partition_count_bounds_are_valid(tmp_path: Path, count: int) -> None:
    app = write_app(tmp_path, durable(storageProvider={"partitionCount": count}))
    assert load_settings(app).partition_count == count


def test_non_numeric_concurrency_is_rejected(tmp_path: Path) -> None:
    app = write_app(tmp_path, durable(maxConcurrentActivityFunctions="lots"))
    with pytest.raises(AppLoadError, match="maxConcurrentActivityFunctions"):
        load_settings(app)


def test_invalid_host_json_names_the_file_line_and_column(tmp_path: Path) -> None:
    app = write_app(tmp_path, '{\n  "version": "2.0",\n  "extensions": {oops}\n}\n')
    with pytest.raises(AppLoadError) as caught:
        load_settings(app)
    message = str(caught.value)
    assert "host.json is not valid JSON" in message
    assert "line 3, column 18" in message


def test_invalid_local_settings_json_names_the_file_line_and_column(tmp_path: Path) -> None:
    app = write_app(tmp_path, {"version": "2.0"}, '{\n  "Values": {\n    "A": "1"\n    "B": "2"\n  }\n}')
    with pytest.raises(AppLoadError) as caught:
        load_settings(app)
    message = str(caught.value)
    assert "local.settings.json is not valid JSON" in message
    assert "line 4, column 5" in message


def test_comments_and_trailing_commas_are_tolerated_like_json_net(tmp_path: Path) -> None:
    host = """// host settings
{
  "version": "2.0", /* the only version */
  "extensions": {
    "durableTask": { "hubName": "Commented", },  // trailing comma
  },
}
"""
    local = '{"Values": {"URL": "http://example.com//not-a-comment",},}'
    settings = load_settings(write_app(tmp_path, host, local))
    assert settings.hub_name == "Commented"
    assert settings.values == {"URL": "http://example.com//not-a-comment"}


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    write_app(tmp_path)
    (tmp_path / "host.json").write_bytes(b'\xef\xbb\xbf{"version": "2.0"}')
    assert load_settings(tmp_path).host_json == {"version": "2.0"}


def test_non_string_values_are_converted_like_core_tools(tmp_path: Path) -> None:
    local = {"Values": {"Flag": True, "Count": 3, "Nothing": None}}
    settings = load_settings(write_app(tmp_path, {"version": "2.0"}, local))
    assert settings.values == {"Flag": "True", "Count": "3"}


def test_object_values_are_rejected(tmp_path: Path) -> None:
    local = {"Values": {"Nested": {"a": 1}}}
    with pytest.raises(AppLoadError, match="'Nested'"):
        load_settings(write_app(tmp_path, {"version": "2.0"}, local))


def test_encrypted_local_settings_are_rejected(tmp_path: Path) -> None:
    local = {"IsEncrypted": True, "Values": {"A": "encrypted"}}
    with pytest.raises(AppLoadError, match="encrypted"):
        load_settings(write_app(tmp_path, {"version": "2.0"}, local))


def test_apply_to_environment_keeps_existing_variables_and_reports_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMU_TEST_EXISTING", "from-env")
    monkeypatch.delenv("EMU_TEST_NEW", raising=False)
    monkeypatch.setenv("EMU_TEST_EMPTY_ENV", "")
    local = {"Values": {"EMU_TEST_EXISTING": "from-file", "EMU_TEST_NEW": "new", "EMU_TEST_EMPTY_ENV": "x"}}
    settings = load_settings(write_app(tmp_path, {"version": "2.0"}, local))
    skipped = settings.apply_to_environment()
    assert skipped == ["EMU_TEST_EXISTING"]
    assert os.environ["EMU_TEST_EXISTING"] == "from-env"
    assert os.environ["EMU_TEST_NEW"] == "new"
    # An empty environment variable does not win (Core Tools checks IsNullOrEmpty).
    assert os.environ["EMU_TEST_EMPTY_ENV"] == "x"


def test_storage_connection_string_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EmuTestStorage", "UseDevelopmentStorage=true")
    app = write_app(tmp_path, durable(storageProvider={"connectionName": "EmuTestStorage"}))
    assert load_settings(app).storage_connection_string() == "UseDevelopmentStorage=true"


def test_storage_connection_string_after_apply_to_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    local = {"Values": {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}}
    settings = load_settings(write_app(tmp_path, {"version": "2.0"}, local))
    settings.apply_to_environment()
    assert os.environ["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert settings.storage_connection_string() == "UseDevelopmentStorage=true"


def test_missing_storage_connection_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EmuMissingStorage", raising=False)
    app = write_app(tmp_path, durable(storageProvider={"connectionStringName": "EmuMissingStorage"}))
    with pytest.raises(AppLoadError, match="'EmuMissingStorage' is not defined"):
        load_settings(app).storage_connection_string()


def test_azure_functions_job_host_overrides_apply_to_host_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__durableTask__hubName", "OverrideHub")
    local = {"Values": {"AzureFunctionsJobHost__extensions__http__routePrefix": "custom"}}
    settings = load_settings(write_app(tmp_path, durable(hubName="FileHub"), local))
    assert settings.hub_name == "OverrideHub"
    assert settings.route_prefix == "custom"
