"""Activity invocations: they travel in memory, from the history's ``TaskScheduled`` rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WorkItem:
    """One activity invocation."""

    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None
    #: The DurableHttpRequest of a ``call_http`` (the built-in HTTP activity).
    http_request: dict[str, Any] | None = None
