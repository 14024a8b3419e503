"""The SDK members the emulator uses beyond the documented API (emulator/app/_sdk.py), on the installed SDK.

``./dev pythons`` runs this on azure-functions 1.x at the lowest versions we allow and on 2.x, so a
release that moves one of these members fails here, by name, rather than somewhere in a replay.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from emulator.app import _sdk as sdk
from emulator.durable import _history as h
from emulator.durable._worker import orchestration_payload
from emulator.functions._invocation_context import RetryContext, TraceContext
from tests.unit.episodes import T0


def _activity_then_timer(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    first = yield context.call_activity("A", 1)
    yield context.create_timer(context.current_utc_datetime + timedelta(minutes=1))
    return {"first": first}


def test_a_live_executor_takes_new_events_and_reports_its_actions() -> None:
    handle = df.Orchestrator.create(_activity_then_timer)
    started = h.execution_started(
        instance_id="i", execution_id="e", name="Flow", input_text=None, timestamp=T0
    )
    history = [h.orchestrator_started(T0), started]
    context = sdk.orchestration_context(
        orchestration_payload(instance_id="i", history=history, parent_instance_id=None), input_type=None
    )
    executor = sdk.new_executor()
    executor.execute(context, context.histories, handle.orchestrator_function)

    scheduled = sdk.actions(context)
    assert [sdk.to_json_value(a.to_json())["functionName"] for a in scheduled] == ["A"]
    assert not sdk.is_timer_action(scheduled[0])
    assert sdk.schema_version(context) >= 2

    later = T0 + timedelta(seconds=1)
    history += [
        h.task_scheduled(0, "A", T0, json.dumps(1)),
        h.orchestrator_completed(T0),
        h.orchestrator_started(later),
        h.task_completed(0, json.dumps("done"), later),
    ]
    sdk.feed_events(executor, context, history, first=2, new_from=4)
    after = sdk.actions(context)
    assert len(after) == 2 and sdk.is_timer_action(after[1])
    assert not executor.has_execution_completed


def test_each_executor_starts_as_the_sdk_constructs_one_and_keeps_its_own_state() -> None:
    from azure.durable_functions.models.TaskOrchestrationExecutor import TaskOrchestrationExecutor

    handle = df.Orchestrator.create(_activity_then_timer)
    started = h.execution_started(
        instance_id="i", execution_id="e", name="Flow", input_text=None, timestamp=T0
    )
    history = [h.orchestrator_started(T0), started]
    used = sdk.new_executor()
    context = sdk.orchestration_context(
        orchestration_payload(instance_id="i", history=history, parent_instance_id=None), input_type=None
    )
    used.execute(context, context.histories, handle.orchestrator_function)

    fresh, constructed = sdk.new_executor(), TaskOrchestrationExecutor()
    assert type(fresh) is TaskOrchestrationExecutor
    assert fresh.current_task is not used.current_task
    assert fresh.current_task.id == constructed.current_task.id
    assert fresh.current_task.result is None and fresh.output is None and fresh.exception is None
    assert not fresh.orchestrator_returned and not fresh._is_processing_new_events
    assert set(vars(fresh)) == set(vars(constructed))
    assert fresh.event_to_SetTaskValuePayload == constructed.event_to_SetTaskValuePayload


def test_the_context_objects_implement_the_installed_base_classes() -> None:
    # Instantiating fails if a release adds an abstract member the emulator's classes lack.
    trace = TraceContext("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    retry = RetryContext(retry_count=1, max_retry_count=3)
    assert isinstance(trace, sdk.TraceContextBase) and trace.trace_parent.startswith("00-")
    assert isinstance(retry, sdk.RetryContextBase) and isinstance(retry.exception, sdk.RpcExceptionBase)
    assert isinstance(func.HttpResponse("ok"), sdk.HttpResponseBase)


def test_the_sdk_parses_history_timestamps_as_dateutil_does_through_a_cache() -> None:
    from azure.durable_functions.models.history.HistoryEvent import HistoryEvent as SdkEvent
    from dateutil.parser import parse

    sdk.use_timestamp_cache()
    sdk.use_timestamp_cache()  # once only: the cache does not wrap itself
    module = importlib.import_module("azure.durable_functions.models.history.HistoryEvent")
    assert module.dt_parse.original is parse
    texts = [
        "2026-12-04T21:15:54.1234567Z",
        "2026-12-04T21:15:54.1234569Z",
        "2026-12-04T21:15:54Z",
        "2026-12-04T21:15:54.12Z",
        "2026-03-29T01:59:59.9999999Z",
        "2026-12-04T21:15:54+01:00",
        "2026-12-04 21:15:54",
    ]
    for text in texts:
        event = SdkEvent(EventType=0, EventId=-1, IsPlayed=False, Timestamp=text)
        expected = parse(text)
        assert event.timestamp == expected and event.timestamp.tzinfo == expected.tzinfo, text
        assert event.timestamp.isoformat() == expected.isoformat(), text
