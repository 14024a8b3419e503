"""Binding expressions: ``%AppSetting%`` and ``{name}`` in binding properties, resolved like the host.

``{...}`` looks up the trigger's binding data (case-insensitively, with ``a.b`` paths into JSON
objects), the built-ins ``{rand-guid}`` and ``{datetime}`` (each with an optional ``:format``) and
``{sys.randguid}``, ``{sys.utcnow}``, ``{sys.methodname}``. ``{{`` and ``}}`` are literal braces.
Sources: WebJobs ``BindingTemplate``, ``BindingParameterResolver`` and ``BindingDataPathHelper``.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from emulator.app._dotnet import format_datetime, format_guid

_APP_SETTING_RE = re.compile(r"%([^%]+)%")
_TEMPLATE_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")

# A DateTime binding value without a format, as BindingDataPathHelper writes it (path-safe ISO).
DEFAULT_DATETIME_FORMAT = "yyyy-MM-ddTHH-mm-ssK"


class BindingExpressionError(ValueError):
    """A binding property that cannot be resolved; the message names the expression."""


class BindingData(Mapping[str, Any]):
    """Binding data of one invocation: case-insensitive keys, as in the host."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, tuple[str, Any]] = {}
        for key, value in (values or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        self._values[key.casefold()] = (key, value)

    def __getitem__(self, key: str) -> Any:
        return self._values[key.casefold()][1]

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._values.values())

    def __len__(self) -> int:
        return len(self._values)

    def lookup(self, path: str) -> tuple[bool, Any]:
        """(found, value) for ``a`` or ``a.b.c``; JSON text values are looked into as objects."""
        head, *rest = path.split(".")
        if head.casefold() not in self._values:
            return False, None
        value = self[head]
        for part in rest:
            if isinstance(value, str) and value.lstrip().startswith("{"):
                try:
                    value = json.loads(value)
                except ValueError:
                    return False, None
            if not isinstance(value, Mapping):
                return False, None
            match = next((k for k in value if isinstance(k, str) and k.casefold() == part.casefold()), None)
            if match is None:
                return False, None
            value = value[match]
        return True, value


def resolve_app_settings(text: str, lookup: Callable[[str], str | None] | None = None) -> str:
    """Replace ``%Name%`` with the app setting's value (environment, which holds local.settings.json)."""
    get = lookup or os.environ.get

    def replace(match: re.Match[str]) -> str:
        value = get(match.group(1))
        if value is None:
            raise BindingExpressionError(
                f"'%{match.group(1)}%' does not resolve to a value: define the app setting "
                f"'{match.group(1)}' in local.settings.json \"Values\" or in the environment."
            )
        return value

    return _APP_SETTING_RE.sub(replace, text)


def _to_text(value: Any, fmt: str | None, expression: str) -> str:
    """BindingDataPathHelper.ConvertParameterValueToString: primitives only."""
    if isinstance(value, bool):
        return "True" if value else "False"  # .NET Boolean.ToString()
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value != int(value) else str(int(value))
    if isinstance(value, datetime):
        return format_datetime(value, fmt or DEFAULT_DATETIME_FORMAT)
    if isinstance(value, uuid.UUID):
        return format_guid(value, fmt)
    raise BindingExpressionError(
        f"Binding expression '{{{expression}}}' refers to a value that is not a string or number "
        f"({type(value).__name__}); only primitive values can be used in binding expressions."
    )


def resolve_template(text: str, data: BindingData) -> str:
    """Replace every ``{expression}`` in ``text`` from ``data`` and the built-ins."""

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "{{":
            return "{"
        if whole == "}}":
            return "}"
        expression = match.group(1).strip()
        name, _, fmt = expression.partition(":")
        lowered = name.casefold()
        if lowered == "rand-guid":
            return format_guid(uuid.uuid4(), fmt or None)
        found, value = data.lookup(name)
        if found and value is not None:
            return _to_text(value, fmt or None, expression)
        if lowered == "datetime":
            return format_datetime(datetime.now(timezone.utc), fmt or DEFAULT_DATETIME_FORMAT)
        raise BindingExpressionError(f"No value for named parameter '{name}'.")

    return _TEMPLATE_RE.sub(replace, text)


def resolve(text: str, data: BindingData) -> str:
    """App settings first (``%x%``), then binding data (``{x}``), as the host resolves attributes."""
    return resolve_template(resolve_app_settings(text), data)


def system_binding_data(function_name: str) -> dict[str, Any]:
    """The ``sys`` entry every invocation gets (WebJobs SystemBindingData): fixed per invocation."""
    return {
        "sys": {
            "MethodName": function_name,
            "UtcNow": datetime.now(timezone.utc),
            "RandGuid": uuid.uuid4(),
        }
    }
