"""Configuration lookups the way the host makes them: host.json and local.settings.json keys are
case-insensitive (.NET configuration), so ``MaxConcurrentActivityFunctions`` and
``maxconcurrentactivityfunctions`` are the same setting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def get_ci(mapping: Any, key: str) -> Any:
    """``mapping[key]`` with ``key`` matched case-insensitively (an exact match first); None when
    ``mapping`` is not a mapping or has no such key."""
    if not isinstance(mapping, Mapping):
        return None
    if key in mapping:
        return mapping[key]
    wanted = key.lower()
    return next((v for k, v in mapping.items() if isinstance(k, str) and k.lower() == wanted), None)


def get_path_ci(mapping: Any, *keys: str) -> Any:
    """The value under ``keys`` (``"extensions", "durableTask", ...``), each matched as ``get_ci``."""
    for key in keys:
        mapping = get_ci(mapping, key)
    return mapping
