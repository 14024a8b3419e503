"""What the emulator uses of the SDKs beyond their documented API, in one place.

The Python worker drives an app through azure-functions' abstract context classes (``_abc``), and
extended sessions drive azure-functions-durable's orchestration executor event by event, which takes
members the SDK keeps private. Each such member is named here once, so a release that moves one
breaks this module and its test (tests/unit/test_sdk.py) rather than a replay somewhere else.
``./dev pythons`` runs that test, with the rest of the smoke part, on azure-functions 1.x at the
lowest versions the package allows and on 2.x (Python 3.13).

The SDK imports stay inside the functions: importing the durable SDK costs a start-up time that a
host without orchestrations need not pay.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from azure.functions import _abc as functions_abc

#: Any HTTP response an app can return (the worker's own check: apps may subclass it).
HttpResponseBase = functions_abc.HttpResponse
#: Base classes of the ``context`` objects a function receives (the worker subclasses these too).
RpcExceptionBase = functions_abc.RpcException
TraceContextBase = functions_abc.TraceContext
RetryContextBase = functions_abc.RetryContext


#: The history's timestamps (``_history.format_timestamp``, the SDK's and .NET's forms).
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,7}))?Z")
#: dateutil's answer for each whole second seen, to which only the microseconds are added.
_SECONDS: dict[str, datetime] = {}
_MAX_SECONDS = 4096


def _cached_parser(dt_parse: Callable[[str], datetime]) -> Callable[[str], datetime]:
    """``dateutil.parser.parse`` for the SDK's history events, with the same answers, cheaper.

    The SDK parses every event's ``Timestamp`` with dateutil, a quarter of the host's CPU in a
    big fan-out (hundreds of thousands of events). Its events share few distinct seconds:
    each second is parsed by dateutil once (its time zone object included) and the fraction added
    as dateutil adds it (six digits, truncated). Any other text goes to dateutil itself.
    """

    last: tuple[str, datetime] | None = None

    def parse(text: Any, *args: Any, **kwargs: Any) -> datetime:
        nonlocal last
        seen = last
        if seen is not None and seen[0] == text and not (args or kwargs):
            return seen[1]  # an episode's rows share one moment (a fan-out's 100,000 of them)
        match = _TIMESTAMP.fullmatch(text) if isinstance(text, str) and not (args or kwargs) else None
        if match is None:
            return dt_parse(text, *args, **kwargs)
        whole, fraction = match.groups()
        moment = _SECONDS.get(whole)
        if moment is None:
            if len(_SECONDS) >= _MAX_SECONDS:
                _SECONDS.clear()
            moment = _SECONDS[whole] = dt_parse(whole + "Z")
        if fraction:
            moment = moment.replace(microsecond=int(fraction.ljust(6, "0")[:6]))
        last = (text, moment)
        return moment

    parse.original = dt_parse  # type: ignore[attr-defined]
    return parse


def use_timestamp_cache() -> None:
    """Make the SDK's ``HistoryEvent`` parse timestamps through ``_cached_parser`` (once)."""
    # The module, not the class of the same name its package exports.
    module = importlib.import_module("azure.durable_functions.models.history.HistoryEvent")
    parser = getattr(module, "dt_parse")  # noqa: B009 (the SDK's private name, untyped)
    if not hasattr(parser, "original"):
        setattr(module, "dt_parse", _cached_parser(parser))  # noqa: B010


def new_executor() -> Any:
    """The SDK's orchestration executor, which an orchestrator session keeps between episodes.

    A copy of one made once, reset by the SDK's own ``initialize``: its constructor defines a
    ``namedtuple`` class each time (about 2 % of a busy host's event loop), for a table it only
    reads. The copy shares that table; ``initialize`` gives it fresh state for a new run.
    """
    use_timestamp_cache()
    executor = copy.copy(_executor_prototype())
    executor.initialize()
    return executor


@functools.cache
def _executor_prototype() -> Any:
    from azure.durable_functions.models.TaskOrchestrationExecutor import TaskOrchestrationExecutor

    return TaskOrchestrationExecutor()


def orchestration_context(payload: str, input_type: Any) -> Any:
    """The SDK's context for an orchestration trigger payload, as ``Orchestrator.handle`` makes it."""
    from azure.durable_functions.models.DurableOrchestrationContext import DurableOrchestrationContext

    use_timestamp_cache()
    context = DurableOrchestrationContext.from_json(payload)
    context._input_expected_type = input_type
    return context


def feed_events(
    executor: Any,
    context: Any,
    history: Sequence[Mapping[str, Any]],
    first: int,
    new_from: int,
    parsed: Sequence[Any] = (),
) -> None:
    """Feed ``history[first:]`` to a live executor one event at a time, as its own replay loop does.

    Events before ``new_from`` are replayed (``context.is_replaying``), the rest are new, as the SDK
    marks events before and after the last OrchestratorStarted. ``parsed`` holds SDK events already
    made for a prefix of ``history`` (parsing their timestamps is most of a replay's cost).
    """
    from azure.durable_functions.models.history.HistoryEvent import HistoryEvent as SdkEvent

    for position in range(first, len(history)):
        executor._is_processing_new_events = position >= new_from
        event = parsed[position] if position < len(parsed) else SdkEvent(**history[position])
        context._histories.append(event)
        executor.process_event(event)
        if executor.has_execution_completed:
            break


def actions(context: Any) -> list[Any]:
    """The orchestration's actions so far (schema V2 and later: one flat list that only grows)."""
    return list(context._action_payload_v2)


def schema_version(context: Any) -> int:
    return int(context._replay_schema.value)


def to_json_value(value: Any) -> Any:
    """``value`` as the SDK serialises it (its ``to_json`` objects and custom types included)."""
    from azure.durable_functions.models.utils.df_serialization import df_dumps

    return json.loads(df_dumps(value))


def is_timer_action(action: Any) -> bool:
    from azure.durable_functions.models.actions.CreateTimerAction import CreateTimerAction

    return isinstance(action, CreateTimerAction)


async def close_client_session() -> None:
    """Close the durable client's process-wide HTTP session (the SDK never does it itself)."""
    try:
        from azure.durable_functions.models.utils import http_utils
    except ImportError:
        return
    with contextlib.suppress(Exception):
        await http_utils._close_session()
