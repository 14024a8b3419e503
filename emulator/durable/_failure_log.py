"""The Durable Functions extension's error line for a durable function that failed.

The extension logs every failure of an orchestrator, an activity or an entity operation at Error
level, with the reason, in the form ``<instance>: Function '<name> (<type>)' failed with an error.
Reason: <reason>. IsReplay: False. State: Failed. ...``; users search their logs for it. The
fields the emulator has no value for (the site and slot name of an Azure app) are empty, as they
are under ``func start``; the extension's version field is left out.
"""

from __future__ import annotations

import itertools
import logging
from typing import Literal

logger = logging.getLogger("emulator.durable")

FunctionType = Literal["Orchestrator", "Activity", "Entity"]

_sequence = itertools.count()


def function_failed(
    hub_name: str,
    function_name: str,
    function_type: FunctionType,
    instance_id: str,
    reason: str,
    *,
    task_event_id: int = -1,
) -> None:
    """An orchestration or activity failed (an entity operation: :func:`entity_operation_failed`)."""
    logger.error(
        "%s: Function '%s (%s)' failed with an error. Reason: %s. IsReplay: False. State: Failed. "
        "RuntimeStatus: Failed. HubName: %s. AppName: . SlotName: . SequenceNumber: %d. TaskEventId: %d",
        instance_id,
        function_name,
        function_type,
        reason,
        hub_name,
        next(_sequence),
        task_event_id,
    )


def entity_operation_failed(
    hub_name: str, function_name: str, instance_id: str, operation: str, operation_id: str, reason: str
) -> None:
    """One operation of an entity batch failed (the entity's state keeps the other operations')."""
    logger.error(
        "%s: Function '%s (Entity)' failed '%s' operation %s with an error. Reason: %s. IsReplay: False. "
        "State: Failed. HubName: %s. AppName: . SlotName: . SequenceNumber: %d.",
        instance_id,
        function_name,
        operation,
        operation_id,
        reason,
        hub_name,
        next(_sequence),
    )
