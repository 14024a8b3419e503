"""The out-of-process orchestration shim: OrchestratorState in, history decisions out.

The Python SDK replays the user's generator and returns *every* action it has scheduled so
far. The real host (``OutOfProcOrchestrationShim``) turns that list back into DurableTask
calls in order, awaiting each top-level action before issuing the next, which is what keeps
the host's sequence ids equal to the SDK's. This module does the same over a history list,
with no I/O: given the history of the execution (this episode's new events included) and the
state the SDK returned, it says which new events to append and which work to send out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulator import _history as h
from emulator._history import EventType, HistoryEvent, OrchestrationStatus

# Action types (azure/durable_functions/models/actions/ActionType.py).
CALL_ACTIVITY = 0
CALL_ACTIVITY_WITH_RETRY = 1
CALL_SUB_ORCHESTRATOR = 2
CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
CONTINUE_AS_NEW = 4
CREATE_TIMER = 5
WAIT_FOR_EXTERNAL_EVENT = 6
CALL_ENTITY = 7
CALL_HTTP = 8
SIGNAL_ENTITY = 9
WHEN_ANY = 11
WHEN_ALL = 12

_ACTION_NAMES = {
    CALL_ACTIVITY: "ScheduleTask",
    CALL_ACTIVITY_WITH_RETRY: "ScheduleTask",
    CALL_SUB_ORCHESTRATOR: "CreateSubOrchestrationInstance",
    CALL_SUB_ORCHESTRATOR_WITH_RETRY: "CreateSubOrchestrationInstance",
    CREATE_TIMER: "CreateTimer",
    CALL_ENTITY: "SendEvent",
    SIGNAL_ENTITY: "SendEvent",
    CALL_HTTP: "ScheduleTask",
}


@dataclass(frozen=True)
class ActivityWork:
    """An activity invocation to send to the work-item queue."""

    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class TimerWork:
    """A durable timer: a TimerFired message due at ``fire_at``."""

    timer_id: int
    fire_at: str


@dataclass
class OrchestratorState:
    """The parsed ``OrchestratorState`` JSON the SDK returned (or embedded in its exception)."""

    is_done: bool
    actions: list[dict[str, Any]]
    output: Any = None
    has_output: bool = False
    error: str | None = None
    custom_status: Any = None

    @classmethod
    def from_json(cls, text: str | dict[str, Any], error: str | None = None) -> OrchestratorState:
        raw = json.loads(text) if isinstance(text, str) else text
        groups = raw.get("actions") or [[]]
        schema = raw.get("schemaVersion", 0)
        # V2/V3 send one flat group; V1 sends a group per yield, which flattens the same way.
        actions = [a for group in groups for a in group] if schema == 0 else list(groups[0] if groups else [])
        return cls(
            is_done=bool(raw.get("isDone")),
            actions=actions,
            output=raw.get("output"),
            has_output="output" in raw,
            error=error if error is not None else (raw.get("error") or None),
            custom_status=raw.get("customStatus"),
        )


@dataclass
class EpisodeDecisions:
    """What one episode adds: history events to append and work to send out."""

    new_events: list[HistoryEvent] = field(default_factory=list)
    activities: list[ActivityWork] = field(default_factory=list)
    timers: list[TimerWork] = field(default_factory=list)
    status: OrchestrationStatus = OrchestrationStatus.Running
    #: JSON text of the output when Completed, the failure reason when Failed.
    output: str | None = None
    custom_status: str | None = None

    @property
    def is_finished(self) -> bool:
        return self.status != OrchestrationStatus.Running


def unknown_function_message(name: str, kind: str, known: Sequence[str]) -> str:
    """The extension's ``GetInvalid{Activity,Orchestrator}FunctionMessage`` text."""
    message = (
        f"The function '{name}' doesn't exist, is disabled, or is not an {kind} function. Additional info: "
    )
    if known:
        listed = "', '".join(known)
        return message + f"The following are the known {kind} functions: '{listed}'."
    return message + f"No {kind} functions are currently registered!"


class NonDeterminismError(Exception):
    """The replayed actions disagree with the decisions already in history."""


class _Walk:
    """Issues actions in order against history, like the shim's ``ProcessAsyncActionsV2``."""

    def __init__(
        self,
        history: Sequence[HistoryEvent],
        now: datetime,
        activity_exists: Callable[[str], bool],
        known_activities: Callable[[], list[str]],
    ) -> None:
        self.now = now
        self.activity_exists = activity_exists
        self.known_activities = known_activities
        self.next_id = 0
        self.scheduled: dict[int, HistoryEvent] = {}
        self.completed: dict[int, HistoryEvent] = {}
        self.raised: dict[str, int] = {}
        for event in history:
            kind = h.event_type(event)
            if kind in h.SCHEDULING_EVENTS:
                self.scheduled[int(event["EventId"])] = event
            elif kind == EventType.EventRaised:
                name = str(event.get("Name") or "").lower()
                self.raised[name] = self.raised.get(name, 0) + 1
            else:
                key = h.completion_key(event)
                if key is not None:
                    self.completed.setdefault(key, event)
        self.decisions = EpisodeDecisions()
        #: Ids of issued activities/timers that have not completed: they keep the instance open.
        self.open_ids: set[int] = set()

    def _take_id(self) -> int:
        task_id = self.next_id
        self.next_id += 1
        return task_id

    def _check_history(self, task_id: int, expected: EventType, name: str | None, action_type: int) -> bool:
        """True when history already holds this decision; raise if it holds a different one."""
        past = self.scheduled.get(task_id)
        if past is None:
            return False
        past_type = h.event_type(past)
        past_name = str(past.get("Name") or "")
        if past_type != expected:
            raise NonDeterminismError(
                f"A previous execution of this orchestration scheduled a {past_type.name} event with "
                f"sequence ID {task_id} and name '{past_name}', but the current orchestration replay "
                f"instead produced a {_ACTION_NAMES.get(action_type, str(action_type))} action with this "
                "sequence number. Was a change made to the orchestrator code after this instance had "
                "already started running?"
            )
        if name is not None and past_name.lower() != name.lower():
            raise NonDeterminismError(
                f"A previous execution of this orchestration scheduled an activity task with sequence "
                f"ID {task_id} named '{past_name}' (version ''), but the current orchestration replay "
                f"instead scheduled an activity task named '{name}' with this sequence number. Was a "
                "change made to the orchestrator code after this instance had already started running?"
            )
        return True

    def issue(self, action: dict[str, Any]) -> bool:
        """Issue one action (recursing into compounds); return True when it has completed."""
        kind = int(action["actionType"])
        if kind == WHEN_ALL:
            results = [self.issue(child) for child in action.get("compoundActions") or []]
            return all(results)
        if kind == WHEN_ANY:
            results = [self.issue(child) for child in action.get("compoundActions") or []]
            return any(results)
        if kind == CALL_ACTIVITY:
            return self._activity(action)
        if kind == CREATE_TIMER:
            return self._timer(action)
        if kind == WAIT_FOR_EXTERNAL_EVENT:
            # Not a DurableTask task: takes no id and never keeps the instance open.
            name = str(action.get("externalEventName") or "").lower()
            if self.raised.get(name, 0) > 0:
                self.raised[name] -= 1
                return True
            return False
        raise NotImplementedError(
            f"The orchestrator used an action the emulator does not support yet (actionType {kind})."
        )

    def _activity(self, action: dict[str, Any]) -> bool:
        name = str(action.get("functionName") or "")
        if not self.activity_exists(name):
            raise ValueError(unknown_function_message(name, "activity", self.known_activities()))
        task_id = self._take_id()
        if not self._check_history(task_id, EventType.TaskScheduled, name, CALL_ACTIVITY):
            self.decisions.new_events.append(h.task_scheduled(task_id, name, self.now))
            self.decisions.activities.append(ActivityWork(task_id, name, action.get("input")))
        if task_id in self.completed:
            return True
        self.open_ids.add(task_id)
        return False

    def _timer(self, action: dict[str, Any]) -> bool:
        fire_at = h.format_timestamp(h.parse_timestamp(str(action["fireAt"])))
        task_id = self._take_id()
        cancelled = bool(action.get("isCanceled"))
        if not self._check_history(task_id, EventType.TimerCreated, None, CREATE_TIMER):
            self.decisions.new_events.append(h.timer_created(task_id, fire_at, self.now))
            if not cancelled:
                self.decisions.timers.append(TimerWork(task_id, fire_at))
        if cancelled or task_id in self.completed:
            return True
        self.open_ids.add(task_id)
        return False

    def check_nothing_missing(self) -> None:
        """History must not hold decisions the replay no longer makes."""
        for task_id in sorted(self.scheduled):
            if task_id >= self.next_id:
                past = self.scheduled[task_id]
                raise NonDeterminismError(
                    f"A previous execution of this orchestration scheduled a "
                    f"{h.event_type(past).name} event with sequence ID {task_id} and name "
                    f"'{past.get('Name') or ''}' (version ''), but the current replay execution hasn't "
                    "(yet?) scheduled this task. Was a change made to the orchestrator code after this "
                    "instance had already started running?"
                )


def decide(
    *,
    history: Sequence[HistoryEvent],
    orchestrator_name: str,
    state: OrchestratorState,
    now: datetime,
    activity_exists: Callable[[str], bool],
    known_activities: Callable[[], list[str]],
) -> EpisodeDecisions:
    """Turn the SDK's state into this episode's decisions, as the real shim and DTFx would."""
    walk = _Walk(history, now, activity_exists, known_activities)
    failure: str | None = None
    reached_end = True
    try:
        for action in state.actions:
            if not walk.issue(action):
                # The shim awaits each top-level action: nothing after it is issued yet.
                reached_end = False
                break
        if reached_end:
            walk.check_nothing_missing()
    except (NonDeterminismError, ValueError, NotImplementedError) as exc:
        # The shim's synchronous API errors are not swallowed: they fail the orchestration, and
        # nothing this episode issued is sent to an instance that is already over.
        prefix = "Non-Deterministic workflow detected: " if isinstance(exc, NonDeterminismError) else ""
        failure = f"{prefix}{exc}"
        reached_end = True
        walk.open_ids.clear()
        walk.decisions = EpisodeDecisions()

    decisions = walk.decisions
    if state.custom_status is not None:
        decisions.custom_status = h.to_json_text(state.custom_status)
    if failure is None:
        failure = state.error
    # DTFx completes only once the shim has finished and no activity or timer is still open.
    if not reached_end or walk.open_ids:
        return decisions
    if failure is not None:
        decisions.status = OrchestrationStatus.Failed
        decisions.output = f"Orchestrator function '{orchestrator_name}' failed: {failure}"
    elif state.is_done:
        decisions.status = OrchestrationStatus.Completed
        decisions.output = h.to_json_text(state.output)
    else:
        return decisions
    decisions.new_events.append(h.execution_completed(walk.next_id, decisions.status, decisions.output, now))
    return decisions
