"""Which trigger types the emulator runs, so the listing and the host agree on what is not emulated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Triggers the emulator fires (compared case-insensitively, as the host compares binding types).
EMULATED_TRIGGERS = frozenset(
    {
        "httptrigger",
        "orchestrationtrigger",
        "activitytrigger",
        "entitytrigger",
        "timertrigger",
        "queuetrigger",
        "blobtrigger",
    }
)


def not_emulated_reason(trigger: Mapping[str, Any]) -> str | None:
    """Why a function's trigger never fires on the emulator, or None when it does."""
    trigger_type = str(trigger.get("type", ""))
    if trigger_type.lower() not in EMULATED_TRIGGERS:
        return f"{trigger_type} triggers are not emulated"
    if trigger_type.lower() == "blobtrigger" and str(trigger.get("source", "")).lower() == "eventgrid":
        return "blob triggers with source EventGrid need Event Grid, which is not emulated"
    return None
