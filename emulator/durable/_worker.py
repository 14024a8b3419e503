"""The language worker's side of an orchestration: invoke orchestrators the way the real host does.

Orchestrators get the trigger payload of docs/sdk-protocol.md section 3.1 and return the
OrchestratorState JSON (or raise with it embedded after ``$OutOfProcData$``). Nothing here runs
user code other than the orchestrator itself, so an episode (``_episode``) stays pure; activities
run in ``emulator.functions._activity_worker``.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import OrchestrationTriggerConverter

from emulator.app import _sdk as sdk
from emulator.durable import _history as h
from emulator.durable._history import HistoryEvent
from emulator.durable._replay import OrchestratorState, WalkMemo

_OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"
#: A replay from the start over a history this long first collects the session it replaces
#: (a collection costs a fraction of such a replay; below this, the memory is not worth it).
COLLECT_BEFORE_REPLAY = 10_000


def orchestration_payload(
    *,
    instance_id: str,
    history: Sequence[HistoryEvent],
    parent_instance_id: str | None,
) -> str:
    """The JSON string the real host binds to ``orchestrationTrigger`` parameters."""
    started = next((e for e in history if h.event_type(e) == h.EventType.ExecutionStarted), None)
    raw_input = None if started is None else started.get("Input")
    return json.dumps(
        {
            "history": list(history),
            # The host hands over ExecutionStarted.Input parsed as a JSON token.
            "input": None if raw_input is None else json.loads(raw_input),
            "instanceId": instance_id,
            "isReplaying": bool(started and started.get("IsPlayed")),
            "parentInstanceId": parent_instance_id,
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
            "longRunningTimerIntervalDuration": "3.00:00:00",
            "maximumShortTimerDuration": "6.00:00:00",
            "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
        }
    )


def run_orchestrator(handle: Callable[[Any], Any], payload: str) -> OrchestratorState:
    """Run one replay through the orchestrator's ``handle``; user exceptions become ``state.error``."""
    sdk.use_timestamp_cache()
    context = OrchestrationTriggerConverter.decode(meta.Datum(payload, "string"), trigger_metadata=None)
    try:
        result = handle(context)
    except Exception as exc:
        message = str(exc)
        error_text, marker, state_json = message.partition(_OUT_OF_PROC_MARKER)
        if marker:
            return OrchestratorState.from_json(state_json, error=_error_of(state_json, error_text))
        # Errors raised by the SDK itself (bad history) carry no state: the episode fails.
        return OrchestratorState(is_done=False, actions=[], error=message or type(exc).__name__)
    if isinstance(result, meta.Datum):
        result = result.value
    return OrchestratorState.from_json(result)


def _error_of(state_json: str, fallback: str) -> str:
    try:
        error = json.loads(state_json).get("error")
    except ValueError:
        error = None
    return str(error) if error else fallback


async def close_client_sessions() -> None:
    """Close the durable client's process-wide HTTP session (the SDK never does it itself)."""
    await sdk.close_client_session()


class OrchestratorSession:
    """An orchestration kept in memory between episodes (the real host's "extended sessions").

    The first episode replays the whole history through the SDK, as ``handle`` does; later
    episodes feed only their new events to the same generator and executor, so a long history
    is not replayed for every event. The decisions are the same as a full replay's: the SDK
    processes events one at a time either way (tests check both paths against each other).

    The live generator never runs its code again, so code that decides differently on a replay
    (``datetime.now()``, ``random``, I/O) would go unnoticed: ``replayed_from_start`` gives a
    session that runs the code again from the start over the whole history, as the real host
    does at every episode (see ``emulator.durable._replay_check``).
    """

    def __init__(self, handle: Callable[[Any], Any]) -> None:
        self._handle = handle
        self._function = handle.orchestrator_function  # type: ignore[attr-defined]
        self._input_type = getattr(handle, "_df_input_type", None)
        self._executor = sdk.new_executor()
        self._context: Any = None
        self.finished = False
        #: How many events of the history the live orchestration has processed.
        self._seen = 0
        #: The JSON of the SDK's actions so far (schema V2+: one flat list that only grows),
        #: so that an episode converts only its new actions rather than the whole list. Timers
        #: can still change (``cancel()``), so those are converted again every time.
        self._actions: list[dict[str, Any]] | None = None
        self._changeable: list[int] = []
        #: The decision walk's memo for this orchestration (see ``WalkMemo``).
        self.memo = WalkMemo()
        #: How long the last episode that resumed this orchestration took (none yet: forever).
        self.last_resume_seconds = math.inf
        #: The length of the history that the code last ran over from the start (``start``).
        self.replayed_length = 0
        #: Set by ``replayed_from_start``: what the replay at the next ``resume`` needs.
        self._replay_from: _ReplaySource | None = None

    @property
    def replay_pending(self) -> bool:
        """True when the next ``resume`` runs the code from the start rather than continuing."""
        return self._replay_from is not None

    def replayed_from_start(self, episode_ran: bool = False) -> OrchestratorSession:
        """A new session whose first ``resume`` replays the whole history through fresh code.

        It reuses the SDK's parsed form of the events this session has seen (parsing their
        timestamps is most of the SDK's replay time); nothing else is shared. ``episode_ran``:
        this session already ran the episode to replay, so its events count as replayed too
        (code that runs only when ``context.is_replaying`` is false then runs once, as on Azure).
        This session cannot be resumed afterwards.
        """
        context = self._context
        fresh = OrchestratorSession(self._handle)
        source = _ReplaySource(
            str(context.instance_id), context.parent_instance_id, list(context.histories), episode_ran
        )
        fresh._replay_from = source
        # This session is spent: its code, tasks and actions go before the replay makes them
        # again, so that a big fan-out does not hold both at once. The SDK's objects refer to
        # each other, so only a full collection frees them before the replay has run.
        del context
        self._executor = self._context = self._actions = None
        self.memo = WalkMemo()
        self.finished = True
        if len(source.parsed) >= COLLECT_BEFORE_REPLAY:
            gc.collect()
        return fresh

    @staticmethod
    def supports(handle: Callable[[Any], Any]) -> bool:
        return callable(getattr(handle, "orchestrator_function", None))

    def start(self, payload: str) -> OrchestratorState:
        context = sdk.orchestration_context(payload, self._input_type)
        self._context = context
        self._seen = self.replayed_length = len(context.histories)
        state = self._state(lambda: self._executor.execute(context, context.histories, self._function))
        if state.schema_version >= 2 and state.error is None:
            self._actions = list(state.actions)
            actions = sdk.actions(context)
            self._changeable = [i for i, action in enumerate(actions) if not _stable(action)]
        return state

    def resume(self, history: Sequence[HistoryEvent]) -> OrchestratorState:
        """Continue with the events of ``history`` (the whole history so far) not yet processed.

        Those are the decisions the host appended after the last episode (the SDK needs an
        EventSent to re-key an entity call, for one) and this episode's new events.
        """
        if self._replay_from is not None:
            return self._replay(history, self._replay_from)
        return self._continue(history, self._seen, self._seen, [])

    def _continue(
        self, history: Sequence[HistoryEvent], first: int, new_from: int, parsed: Sequence[Any]
    ) -> OrchestratorState:
        """Feed ``history[first:]``; events before ``new_from`` are replayed, not new."""
        self._seen = len(history)

        def run() -> str | OrchestratorState:
            sdk.feed_events(self._executor, self._context, history, first, new_from, parsed)
            return self._current_state()

        return self._state(run)

    def _replay(self, history: Sequence[HistoryEvent], source: _ReplaySource) -> OrchestratorState:
        """Run the code from the start over ``history``, as a full replay through ``handle`` does."""
        self._replay_from = None
        # The SDK's smallest history (OrchestratorStarted, ExecutionStarted) starts the code...
        payload = orchestration_payload(
            instance_id=source.instance_id, history=history[:2], parent_instance_id=source.parent_instance_id
        )
        state = self.start(payload)
        self.replayed_length = len(history)
        if self.finished or len(history) <= 2:
            return state
        # ...and the rest of the history is fed to it event by event.
        starts = [i for i, e in enumerate(history) if h.event_type(e) == h.EventType.OrchestratorStarted]
        new_from = len(history) if source.episode_ran else starts[-1]
        return self._continue(history, 2, new_from, source.parsed)

    def _current_state(self) -> str | OrchestratorState:
        """The SDK's ``get_orchestrator_state_str()``, without serialising every past action."""
        executor, context = self._executor, self._context
        output = executor.output
        if self._actions is None or executor.exception is not None or not _serialisable(output):
            self._actions = None  # the SDK's own path (it raises for failures)
            return str(executor.get_orchestrator_state_str())
        actions = sdk.actions(context)
        for position in self._changeable:
            self._actions[position] = sdk.to_json_value(actions[position].to_json())
        for position in range(len(self._actions), len(actions)):
            self._actions.append(sdk.to_json_value(actions[position].to_json()))
            if not _stable(actions[position]):
                self._changeable.append(position)
        custom_status = context.custom_status
        return OrchestratorState(
            is_done=bool(executor.orchestration_invocation_succeeded),
            actions=list(self._actions),
            output=None if output is None else sdk.to_json_value(output),
            has_output=output is not None,
            custom_status=sdk.to_json_value(custom_status) if custom_status else None,
            schema_version=sdk.schema_version(context),
        )

    def _state(self, run: Callable[[], str | OrchestratorState]) -> OrchestratorState:
        try:
            result = run()
        except Exception as exc:
            self.finished = True
            message = str(exc)
            error_text, marker, state_json = message.partition(_OUT_OF_PROC_MARKER)
            if marker:
                return OrchestratorState.from_json(state_json, error=_error_of(state_json, error_text))
            return OrchestratorState(is_done=False, actions=[], error=message or type(exc).__name__)
        state = result if isinstance(result, OrchestratorState) else OrchestratorState.from_json(result)
        self.finished = state.is_done
        return state


@dataclass(frozen=True)
class _ReplaySource:
    """What a replay from the start takes over from the session it replaces."""

    instance_id: str
    parent_instance_id: str | None
    #: The SDK's parsed events of the history so far, in order.
    parsed: list[Any]
    #: The episode's own events were already run by the live orchestration.
    episode_ran: bool = False


def _serialisable(value: Any) -> bool:
    try:
        json.dumps(value)
    except Exception:
        return False
    return True


def _stable(action: Any) -> bool:
    """An SDK action whose JSON cannot change any more (a timer can still be cancelled)."""
    if sdk.is_timer_action(action):
        return False
    return all(_stable(child) for child in getattr(action, "compound_tasks", None) or [])
