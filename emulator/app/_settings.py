"""host.json and local.settings.json, read the way ``func start`` and the Functions host read them.

Both files go through Newtonsoft's ``JObject.Parse`` on the real host, which tolerates comments and
trailing commas, so the same files must load here. Settings are also resolved the host's way: an
environment variable wins over local.settings.json, ``%Name%`` refers to an app setting, and
``AzureFunctionsJobHost__a__b`` overrides the host.json value at ``a.b``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from emulator.app._config import get_ci
from emulator.app._dotnet import parse_timespan
from emulator.app._providers import AZURE_STORAGE, UnknownProviderError, emulate_provider, provider_type

HOST_JSON = "host.json"
LOCAL_SETTINGS_JSON = "local.settings.json"

DEFAULT_ROUTE_PREFIX = "api"
DEFAULT_HUB_NAME = "TestHubName"  # what the durable extension uses outside Azure
DEFAULT_STORAGE_CONNECTION = "AzureWebJobsStorage"
DEFAULT_PARTITION_COUNT = 4

# The durable extension's Azure Storage rules (AzureStorageDurabilityProviderFactory).
_HUB_NAME_MIN = 3
_HUB_NAME_MAX = 45
_HUB_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_APP_SETTING_REF_RE = re.compile(r"%([^%]+)%")
_HOST_OVERRIDE_PREFIX = "azurefunctionsjobhost__"


class AppLoadError(Exception):
    """The app cannot be loaded or started; the message is written for the user and stands alone."""


def _default_concurrency() -> int:
    return 10 * (os.cpu_count() or 1)


@dataclass(frozen=True)
class AppSettings:
    script_root: Path
    values: dict[str, str]
    host_json: dict[str, Any]
    route_prefix: str = DEFAULT_ROUTE_PREFIX
    hub_name: str = DEFAULT_HUB_NAME
    storage_connection_name: str = DEFAULT_STORAGE_CONNECTION
    max_concurrent_activities: int = field(default_factory=_default_concurrency)
    max_concurrent_orchestrations: int = field(default_factory=_default_concurrency)
    partition_count: int = DEFAULT_PARTITION_COUNT
    #: The start-up line for an app whose host.json selects another durable storage provider.
    storage_provider_notice: str | None = None
    #: ``extendedSessionsEnabled``: orchestrations stay in memory between episodes unless it is false.
    extended_sessions: bool = True
    #: ``storageProvider.controlQueueVisibilityTimeout``: how long a message stays leased without
    #: renewal (None: not set; the host then uses the real default of 5 minutes).
    control_queue_visibility_timeout: timedelta | None = None
    #: local.settings.json ``Host.CORS``: origins separated by commas, or "*" (None: no CORS).
    cors: str | None = None
    #: ``Host.CORSCredentials``: answers to allowed origins say credentials are allowed.
    cors_credentials: bool = False
    #: ``EMULATOR_ALLOWED_HOSTS``: host names the management API and the dashboard answer under,
    #: besides the loopback names (see emulator/http/_origin_guard.py).
    allowed_hosts: str | None = None

    def storage_connection_string(self) -> str:
        """The storage connection string, from the environment first, as the host resolves it."""
        name = self.storage_connection_name
        value = os.environ.get(name) or self.values.get(name)
        if not value:
            raise AppLoadError(
                f"The storage connection setting '{name}' is not defined. Add it to \"Values\" in "
                f'{LOCAL_SETTINGS_JSON} (for example "{name}": "UseDevelopmentStorage=true") or set '
                f"the environment variable {name}."
            )
        return value

    def apply_to_environment(self) -> list[str]:
        """Export the Values like ``func start``: a non-empty environment variable wins.

        Returns the names that were skipped because the environment already defines them, so the caller
        can print Core Tools' "Skipping 'X' from local settings..." line for each.
        """
        skipped: list[str] = []
        for name, value in self.values.items():
            if not name:
                continue
            if os.environ.get(name):
                skipped.append(name)
                continue
            os.environ[name] = value
        return skipped


def _relax_json(text: str) -> str:
    """Blank out comments and trailing commas, keeping every other character at its line and column.

    Keeping positions means json's error line/column still point into the user's file.
    """
    out = list(text)
    n = len(text)
    i = 0
    in_string = False
    last_significant: int | None = None
    while i < n:
        c = text[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
            continue
        if c == '"':
            in_string = True
            last_significant = i
            i += 1
            continue
        if c == "/" and i + 1 < n and text[i + 1] in "/*":
            if text[i + 1] == "/":
                end = text.find("\n", i)
                end = n if end < 0 else end
            else:
                end = text.find("*/", i + 2)
                end = n if end < 0 else end + 2
            for k in range(i, end):
                if out[k] not in "\r\n":
                    out[k] = " "
            i = end
            continue
        if c in "}]" and last_significant is not None and out[last_significant] == ",":
            out[last_significant] = " "
        if not c.isspace():
            last_significant = i
        i += 1
    return "".join(out)


def _read_json_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AppLoadError(f"{path.name} is not UTF-8 text ({path}): {exc.reason}.") from None
    except OSError as exc:
        raise AppLoadError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if not text.strip():
        return {}
    try:
        return json.loads(_relax_json(text))
    except json.JSONDecodeError as exc:
        raise AppLoadError(
            f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} ({path})."
        ) from None


def _set_ci(mapping: dict[str, Any], path: list[str], value: str) -> None:
    node = mapping
    for i, part in enumerate(path):
        existing = next((k for k in node if k.lower() == part.lower()), None)
        key = existing if existing is not None else part
        if i == len(path) - 1:
            node[key] = value
            return
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child


def _setting_lookup(name: str, values: Mapping[str, str]) -> str | None:
    env = os.environ.get(name)
    if env:
        return env
    return values.get(name)


def _apply_host_overrides(host_json: dict[str, Any], values: Mapping[str, str]) -> None:
    """AzureFunctionsJobHost__x__y settings override host.json, from the environment or the Values."""
    candidates = dict(values)
    candidates.update({k: v for k, v in os.environ.items() if v})
    for name, value in sorted(candidates.items()):
        if not name.lower().startswith(_HOST_OVERRIDE_PREFIX):
            continue
        path = [p for p in name[len(_HOST_OVERRIDE_PREFIX) :].split("__") if p]
        if path:
            _set_ci(host_json, path, value)


def _resolve_app_setting_refs(text: str, values: Mapping[str, str], what: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        resolved = _setting_lookup(name, values)
        if resolved is None:
            raise AppLoadError(
                f"{what} '{text}' in {HOST_JSON} refers to the app setting '{name}', which is not defined "
                f'in {LOCAL_SETTINGS_JSON} "Values" or in the environment.'
            )
        return resolved

    return _APP_SETTING_REF_RE.sub(replace, text)


def invalid_hub_name_message(hub_name: str) -> str | None:
    """Why the Azure Storage provider refuses this task hub name, or None if it takes it."""
    if _HUB_NAME_MIN <= len(hub_name) <= _HUB_NAME_MAX and _HUB_NAME_RE.fullmatch(hub_name):
        return None
    return (
        f"Task hub name '{hub_name}' should contain only alphanumeric characters, start with a letter, "
        f"and have length between {_HUB_NAME_MIN} and {_HUB_NAME_MAX}."
    )


def _validate_hub_name(hub_name: str) -> None:
    message = invalid_hub_name_message(hub_name)
    if message is not None:
        raise AppLoadError(f"{message} Fix extensions.durableTask.hubName in {HOST_JSON}.")


def _whole_number(value: Any, setting: str, default: int) -> int:
    if value is None:
        return default
    # JSON true/false are ints to Python but not to the host's configuration binder.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    # Values that come from AzureFunctionsJobHost__ overrides are strings.
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise AppLoadError(f"{setting} in {HOST_JSON} must be a whole number, not {json.dumps(value)}.")


def _concurrency(durable: Any, key: str) -> int:
    setting = f"extensions.durableTask.{key}"
    parsed = _whole_number(get_ci(durable, key), setting, _default_concurrency())
    if parsed < 1:
        raise AppLoadError(f"{setting} in {HOST_JSON} must be at least 1, not {parsed}.")
    return parsed


def _read_local_settings(script_root: Path) -> dict[str, Any]:
    path = script_root / LOCAL_SETTINGS_JSON
    if not path.is_file():
        return {}
    data = _read_json_file(path)
    if not isinstance(data, dict):
        raise AppLoadError(f"{LOCAL_SETTINGS_JSON} must contain a JSON object ({path}).")
    if data.get("IsEncrypted") is True:
        raise AppLoadError(
            f'{LOCAL_SETTINGS_JSON} is encrypted ("IsEncrypted": true) and the emulator cannot decrypt it. '
            f"Decrypt it with 'func settings decrypt' or write the values in plain text."
        )
    return data


def _read_values(data: dict[str, Any], path: Path) -> dict[str, str]:
    raw = get_ci(data, "Values")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise AppLoadError(f'"Values" in {LOCAL_SETTINGS_JSON} must be a JSON object ({path}).')
    values: dict[str, str] = {}
    for name, value in raw.items():
        if value is None:
            continue  # Core Tools skips null values too
        if isinstance(value, str):
            values[name] = value
        elif isinstance(value, bool):
            values[name] = "True" if value else "False"  # how .NET turns a JSON boolean into a string
        elif isinstance(value, int | float):
            values[name] = json.dumps(value)
        else:
            raise AppLoadError(
                f"The value of '{name}' in \"Values\" of {LOCAL_SETTINGS_JSON} must be a string, "
                f"not a JSON {'object' if isinstance(value, dict) else 'array'}."
            )
    return values


def _storage_connection_name(storage: Any) -> str:
    connection = get_ci(storage, "connectionStringName") or get_ci(storage, "connectionName")
    if connection is None:
        return DEFAULT_STORAGE_CONNECTION
    if not isinstance(connection, str):
        raise AppLoadError(
            f"extensions.durableTask.storageProvider.connectionName in {HOST_JSON} must be a string."
        )
    return connection


def _partition_count(storage: Any) -> int:
    partition_count = _whole_number(
        get_ci(storage, "partitionCount"),
        "extensions.durableTask.storageProvider.partitionCount",
        DEFAULT_PARTITION_COUNT,
    )
    if not 1 <= partition_count <= 16:
        raise AppLoadError(
            f"PartitionCount must be an integer value between 1 and 16 "
            f"(extensions.durableTask.storageProvider.partitionCount in {HOST_JSON} is {partition_count})."
        )
    return partition_count


def _flag(durable: Any, key: str, default: bool) -> bool:
    # JSON true/false, or "true"/"false" in any case from an AzureFunctionsJobHost__ override.
    value = get_ci(durable, key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise AppLoadError(
        f"extensions.durableTask.{key} in {HOST_JSON} must be true or false, not {json.dumps(value)}."
    )


def _visibility_timeout(storage: Any) -> timedelta | None:
    key = "controlQueueVisibilityTimeout"
    value = get_ci(storage, key)
    if value is None or value == "":
        return None
    parsed = parse_timespan(str(value))
    if parsed is None or parsed <= timedelta(0):
        raise AppLoadError(
            f"extensions.durableTask.storageProvider.{key} in {HOST_JSON} must be a positive TimeSpan "
            f'such as "00:05:00", not {json.dumps(value)}.'
        )
    return parsed


def _host_start_settings(host: Any, values: Mapping[str, str]) -> dict[str, Any]:
    """The ``Host`` section of local.settings.json that concerns browsers (keys in any case, as
    Newtonsoft binds them), and the allowed hosts setting."""
    where = f'"Host" in {LOCAL_SETTINGS_JSON}'
    if host is not None and not isinstance(host, dict):
        raise AppLoadError(f"{where} must be a JSON object.")
    cors = get_ci(host, "CORS")
    if cors is not None and not isinstance(cors, str):
        raise AppLoadError(f'CORS of {where} must be a string of origins such as "http://localhost:3000".')
    credentials = get_ci(host, "CORSCredentials")
    if isinstance(credentials, str) and credentials.strip().lower() in ("true", "false"):
        credentials = credentials.strip().lower() == "true"
    if credentials is not None and not isinstance(credentials, bool):
        raise AppLoadError(
            f"CORSCredentials of {where} must be true or false, not {json.dumps(credentials)}."
        )
    return {
        "cors": cors or None,
        "cors_credentials": bool(credentials),
        "allowed_hosts": _setting_lookup("EMULATOR_ALLOWED_HOSTS", values),
    }


def load_settings(script_root: Path) -> AppSettings:
    """Read and validate the app's host.json and local.settings.json."""
    root = Path(script_root).resolve()
    host_path = root / HOST_JSON
    if not host_path.is_file():
        raise AppLoadError(f"{HOST_JSON} not found in {root}: is this a Functions app folder?")
    host_json = _read_json_file(host_path)
    if not isinstance(host_json, dict):
        raise AppLoadError(f"{HOST_JSON} must contain a JSON object ({host_path}).")
    local_settings = _read_local_settings(root)
    values = _read_values(local_settings, root / LOCAL_SETTINGS_JSON)
    _apply_host_overrides(host_json, values)

    extensions = get_ci(host_json, "extensions")
    http = get_ci(extensions, "http")
    durable = get_ci(extensions, "durableTask")
    storage = get_ci(durable, "storageProvider")

    route_prefix = get_ci(http, "routePrefix")
    if route_prefix is None:
        route_prefix = DEFAULT_ROUTE_PREFIX
    elif not isinstance(route_prefix, str):
        raise AppLoadError(f"extensions.http.routePrefix in {HOST_JSON} must be a string.")

    hub_name = get_ci(durable, "hubName")
    if hub_name is None or hub_name == "":
        hub_name = None
    elif not isinstance(hub_name, str):
        raise AppLoadError(f"extensions.durableTask.hubName in {HOST_JSON} must be a string.")
    else:
        hub_name = _resolve_app_setting_refs(hub_name, values, "The task hub name")

    try:
        provider = provider_type(storage)
    except UnknownProviderError as exc:
        raise AppLoadError(str(exc)) from None
    notice = None
    if provider == AZURE_STORAGE:
        hub_name = hub_name or DEFAULT_HUB_NAME
        _validate_hub_name(hub_name)
        connection = _storage_connection_name(storage)
        partition_count = _partition_count(storage)
    else:
        emulated = emulate_provider(
            provider, storage, hub_name, lambda name: _setting_lookup(name, values), DEFAULT_HUB_NAME
        )
        hub_name, connection, notice = emulated.hub_name, emulated.storage_connection_name, emulated.notice
        partition_count = DEFAULT_PARTITION_COUNT

    return AppSettings(
        script_root=root,
        values=values,
        host_json=host_json,
        route_prefix=route_prefix.strip("/"),
        hub_name=hub_name,
        storage_connection_name=connection,
        max_concurrent_activities=_concurrency(durable, "maxConcurrentActivityFunctions"),
        max_concurrent_orchestrations=_concurrency(durable, "maxConcurrentOrchestratorFunctions"),
        partition_count=partition_count,
        storage_provider_notice=notice,
        extended_sessions=_flag(durable, "extendedSessionsEnabled", True),
        control_queue_visibility_timeout=_visibility_timeout(storage),
        **_host_start_settings(get_ci(local_settings, "Host"), values),
    )
