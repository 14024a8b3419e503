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
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from emulator.durable import _history as h
from emulator.durable._action_types import (
    CALL_ACTIVITY,
    CALL_ACTIVITY_WITH_RETRY,
    CALL_ENTITY,
    CALL_HTTP,
    CALL_SUB_ORCHESTRATOR,
    CALL_SUB_ORCHESTRATOR_WITH_RETRY,
    CONTINUE_AS_NEW,
    CREATE_TIMER,
    SIGNAL_ENTITY,
    WAIT_FOR_EXTERNAL_EVENT,
    WHEN_ALL,
    WHEN_ANY,
)
from emulator.durable._history import EventType, HistoryEvent, OrchestrationStatus
from emulator.durable._walk_memo import HistoryIndex, OpenCompound, WalkMemo, memoisable, plain_compound

#: The built-in activity the host runs for ``call_http``.
HTTP_ACTIVITY = "BuiltIn::HttpActivity"
#: The Azure Storage provider's longest durable delay (``ValidateDelayTime``).
MAX_TIMER_DELAY = timedelta(days=6)
#: ``SetCustomStatus`` cap, in KB of UTF-16.
MAX_CUSTOM_STATUS_KB = 16

_DECISION_NAMES = {
    EventType.TaskScheduled: "ScheduleTask",
    EventType.SubOrchestrationInstanceCreated: "CreateSubOrchestrationInstance",
    EventType.TimerCreated: "CreateTimer",
    EventType.EventSent: "SendEvent",
}


@dataclass(frozen=True)
class KnownFunctions:
    """The app's durable functions, for validating the names an orchestrator uses."""

    activities: tuple[str, ...] = ()
    orchestrators: tuple[str, ...] = ()
    #: Extra lower-cased names that also resolve (the SDK may send a Python ``__name__``).
    aliases: frozenset[str] = frozenset()

    #: The lower-cased names that resolve, made once: a fan-out's walk asks for every activity.
    _activity_names: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _orchestrator_names: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lowered = frozenset(n.lower() for n in self.activities) | self.aliases
        object.__setattr__(self, "_activity_names", lowered)
        lowered = frozenset(n.lower() for n in self.orchestrators) | self.aliases
        object.__setattr__(self, "_orchestrator_names", lowered)

    def has_activity(self, name: str) -> bool:
        return name.lower() in self._activity_names

    def has_orchestrator(self, name: str) -> bool:
        return name.lower() in self._orchestrator_names


@dataclass(frozen=True)
class ActivityWork:
    """An activity invocation to send to the work-item queue."""

    task_id: int
    name: str
    input: str | None
    #: For ``call_http``: the DurableHttpRequest the built-in activity sends.
    http_request: dict[str, Any] | None = None


@dataclass(frozen=True)
class TimerWork:
    """A durable timer: a TimerFired message due at ``fire_at``."""

    timer_id: int
    fire_at: str


@dataclass(frozen=True)
class SubOrchestrationWork:
    """A child instance to start; it reports back to ``task_id`` of the parent."""

    task_id: int
    name: str
    instance_id: str
    input: str | None


@dataclass(frozen=True)
class EntityWork:
    """An operation request for an entity (``@name@key``), as the real RequestMessage."""

    instance_id: str
    request: dict[str, Any]


@dataclass
class OrchestratorState:
    """The parsed ``OrchestratorState`` JSON the SDK returned (or embedded in its exception)."""

    is_done: bool
    actions: list[dict[str, Any]]
    output: Any = None
    has_output: bool = False
    error: str | None = None
    custom_status: Any = None
    schema_version: int = 0

    @classmethod
    def from_json(cls, text: str | dict[str, Any], error: str | None = None) -> OrchestratorState:
        raw = json.loads(text) if isinstance(text, str) else text
        groups = raw.get("actions") or [[]]
        schema = int(raw.get("schemaVersion", 0) or 0)
        # V1 sends a group per yield and V2/V3 one flat group: both flatten to the issue order.
        actions = [a for group in groups for a in (group or [])]
        return cls(
            is_done=bool(raw.get("isDone")),
            actions=actions,
            output=raw.get("output"),
            has_output="output" in raw,
            error=error if error is not None else (raw.get("error") or None),
            custom_status=raw.get("customStatus"),
            schema_version=schema,
        )


@dataclass
class EpisodeDecisions:
    """What one episode adds: history events to append and work to send out."""

    new_events: list[HistoryEvent] = field(default_factory=list)
    activities: list[ActivityWork] = field(default_factory=list)
    timers: list[TimerWork] = field(default_factory=list)
    sub_orchestrations: list[SubOrchestrationWork] = field(default_factory=list)
    entity_messages: list[EntityWork] = field(default_factory=list)
    status: OrchestrationStatus = OrchestrationStatus.Running
    #: JSON text of the output when Completed, the failure reason when Failed, the new input
    #: when ContinuedAsNew.
    output: str | None = None
    custom_status: str | None = None
    #: EventRaised events this generation did not consume, carried over by continue_as_new.
    carried_events: list[HistoryEvent] = field(default_factory=list)

    @property
    def is_finished(self) -> bool:
        return self.status not in (OrchestrationStatus.Running, OrchestrationStatus.ContinuedAsNew)


def unknown_function_message(name: str, kind: str, known: Sequence[str]) -> str:
    """The extension's ``GetInvalid{Activity,Orchestrator}FunctionMessage`` text."""
    message = (
        f"The function '{name}' doesn't exist, is disabled, or is not an {kind} function. Additional info: "
    )
    if known:
        listed = "', '".join(known)
        return message + f"The following are the known {kind} functions: '{listed}'."
    return message + f"No {kind} functions are currently registered!"


def delay_limit_message() -> str:
    days = int(MAX_TIMER_DELAY.total_seconds() // 86400)
    return f"The Azure Storage provider supports a maximum of {days} days for time-based delays"


def custom_status_error(custom_status_json: str) -> str | None:
    """``MessagePayloadDataConverter``'s size check for custom status, or None when it fits."""
    size_kb = int(len(custom_status_json.encode("utf-16-le")) / 1024.0)
    if size_kb > MAX_CUSTOM_STATUS_KB:
        return (
            f"The UTF-16 size of the JSON-serialized payload must not exceed {MAX_CUSTOM_STATUS_KB} KB. "
            f"The current payload size is {size_kb:,} KB."
        )
    return None


class NonDeterminismError(Exception):
    """The replayed actions disagree with the decisions already in history."""


@dataclass
class _Retry:
    """The five retry options (``RetryOptionsConverter``); Python sends the first two."""

    first_interval: timedelta
    max_attempts: int
    backoff: float = 1.0
    max_interval: timedelta = timedelta(days=6)
    timeout: timedelta | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> _Retry:
        def millis(key: str) -> timedelta | None:
            value = raw.get(key)
            return None if value is None else timedelta(milliseconds=float(value))

        first = millis("firstRetryIntervalInMilliseconds")
        if first is None or first <= timedelta(0):
            raise ValueError("Invalid interval. Interval must be greater than zero.")
        options = cls(first, int(raw.get("maxNumberOfAttempts", 1)))
        if raw.get("backoffCoefficient") is not None:
            options.backoff = float(raw["backoffCoefficient"])
            if options.backoff <= 0:
                raise ValueError("The backoff coefficient must be greater than 0.")
        options.max_interval = millis("maxRetryIntervalInMilliseconds") or options.max_interval
        options.timeout = millis("retryTimeoutInMilliseconds")
        if first > MAX_TIMER_DELAY or options.max_interval > MAX_TIMER_DELAY:
            raise ValueError(delay_limit_message())
        return options

    def next_delay(self, failures: int, first_attempt: datetime, now: datetime) -> timedelta:
        """``RetryInterceptor.ComputeNextDelay``: zero means stop retrying."""
        if self.timeout is not None and now >= first_attempt + self.timeout:
            return timedelta(0)
        delay = self.first_interval * (self.backoff ** (failures - 1))
        return min(delay, self.max_interval)


class _Walk:
    """Issues actions in order against history, like the shim's ``ProcessAsyncActionsV2``."""

    def __init__(
        self,
        history: Sequence[HistoryEvent],
        now: datetime,
        known: KnownFunctions,
        execution_id: str,
        schema_version: int,
        instance_id: str = "",
        index: HistoryIndex | None = None,
    ) -> None:
        self.now = now
        self.instance_id = instance_id
        self.known = known
        self.execution_id = execution_id
        self.schema_version = schema_version
        self.next_id = 0
        if index is None:
            index = HistoryIndex()
            index.add(history)
        # The index is shared with the memo: only the raised-event queues are consumed here.
        self.scheduled = index.scheduled
        self.completed = index.completed
        self.raised = {name: list(events) for name, events in index.raised.items()}
        self.decisions = EpisodeDecisions()
        #: Issued activities, sub-orchestrations and timers not yet done: they keep the instance open.
        self.open_ids: set[int] = set()
        self.continue_as_new: dict[str, Any] | None = None

    def _take_id(self) -> int:
        task_id = self.next_id
        self.next_id += 1
        return task_id

    def _in_history(self, task_id: int, expected: EventType, name: str | None) -> bool:
        """True when history already holds this decision; raise if it holds a different one."""
        past = self.scheduled.get(task_id)
        if past is None:
            return False
        past_type = h.event_type(past)
        past_name = str(past.get("Name") or "")
        if past_type != expected:
            raise NonDeterminismError(
                f"A previous execution of this orchestration scheduled a {past_type.name} event with "
                f"sequence ID {task_id} and name '{past_name}' (version ''), but the current orchestration "
                f"replay instead produced a {_DECISION_NAMES[expected]} action with this sequence number. "
                "Was a change made to the orchestrator code after this instance had already started running?"
            )
        if name is not None and past_name.lower() != name.lower():
            what = "an activity task" if expected == EventType.TaskScheduled else "a sub-orchestration"
            raise NonDeterminismError(
                f"A previous execution of this orchestration scheduled {what} with sequence ID {task_id} "
                f"named '{past_name}' (version ''), but the current orchestration replay instead scheduled "
                f"{what} named '{name}' with this sequence number. Was a change made to the orchestrator "
                "code after this instance had already started running?"
            )
        return True

    def issue(self, action: dict[str, Any]) -> bool:
        """Issue one action (recursing into compounds); return True when it has finished."""
        kind = int(action["actionType"])
        if kind == WHEN_ALL:
            return all([self.issue(child) for child in action.get("compoundActions") or []])
        if kind == WHEN_ANY:
            return any([self.issue(child) for child in action.get("compoundActions") or []])
        if kind == CALL_ACTIVITY:
            return self._attempt_activity(action) is not None
        if kind == CALL_SUB_ORCHESTRATOR:
            return self._attempt_sub_orchestration(action) is not None
        if kind in (CALL_ACTIVITY_WITH_RETRY, CALL_SUB_ORCHESTRATOR_WITH_RETRY):
            return self._with_retry(action)
        if kind == CREATE_TIMER:
            return self._timer(action)
        if kind == CALL_HTTP:
            return self._attempt_activity(action, http=True) is not None
        if kind == WAIT_FOR_EXTERNAL_EVENT:
            # Not a DurableTask task: takes no id and never keeps the instance open.
            waiting = self.raised.get(str(action.get("externalEventName") or "").lower())
            if waiting:
                waiting.pop(0)
                return True
            return False
        if kind == CONTINUE_AS_NEW:
            self.continue_as_new = action
            return True
        if kind == SIGNAL_ENTITY:
            self._entity_request(action, signal=True)
            return True  # fire and forget: nothing to wait for
        if kind == CALL_ENTITY:
            # The response is an EventRaised named after the request id (the SDK re-keys to it).
            waiting = self.raised.get(self._entity_request(action, signal=False).lower())
            if waiting:
                waiting.pop(0)
                return True
            return False
        raise NotImplementedError(
            f"The orchestrator used an action the emulator does not support yet (actionType {kind})."
        )

    # -- leaves -----------------------------------------------------------------------------

    def _outcome(self, task_id: int) -> HistoryEvent | None:
        done = self.completed.get(task_id)
        if done is None:
            self.open_ids.add(task_id)
        return done

    def _attempt_activity(self, action: dict[str, Any], http: bool = False) -> HistoryEvent | None:
        """Schedule (or find in history) one activity attempt; its completion event if done."""
        name = HTTP_ACTIVITY if http else str(action.get("functionName") or "")
        if not http and not self.known.has_activity(name):
            raise ValueError(unknown_function_message(name, "activity", self.known.activities))
        task_id = self._take_id()
        if not self._in_history(task_id, EventType.TaskScheduled, name):
            request = action.get("httpRequest") if http else None
            # The built-in HTTP activity's input is the request, as the host serialises it.
            input_text = json.dumps(request) if request is not None else action.get("input")
            self.decisions.new_events.append(h.task_scheduled(task_id, name, self.now, input_text))
            self.decisions.activities.append(ActivityWork(task_id, name, action.get("input"), request))
        return self._outcome(task_id)

    def _attempt_sub_orchestration(self, action: dict[str, Any]) -> HistoryEvent | None:
        name = str(action.get("functionName") or "")
        if not self.known.has_orchestrator(name):
            raise ValueError(unknown_function_message(name, "orchestrator", self.known.orchestrators))
        task_id = self._take_id()
        if not self._in_history(task_id, EventType.SubOrchestrationInstanceCreated, name):
            # DTFx's default child id: the parent's execution id and the sequence number.
            child_id = action.get("instanceId") or f"{self.execution_id}:{task_id}"
            if child_id.startswith("@"):
                raise ValueError("Orchestration instance ids must not start with @.")
            self.decisions.new_events.append(h.sub_orchestration_created(task_id, name, child_id, self.now))
            self.decisions.sub_orchestrations.append(
                SubOrchestrationWork(task_id, name, child_id, action.get("input"))
            )
        return self._outcome(task_id)

    def _entity_request(self, action: dict[str, Any], signal: bool) -> str:
        """Issue an entity operation (one EventSent); return the request id it carries."""
        target = str(action.get("instanceId") or "")
        task_id = self._take_id()
        past = self.scheduled.get(task_id)
        if past is not None and h.event_type(past) == EventType.EventSent:
            if str(past.get("InstanceId") or "").lower() != target.lower():
                raise NonDeterminismError(
                    f"A previous execution of this orchestration sent an entity operation with sequence ID "
                    f"{task_id} to '{past.get('InstanceId')}', but the current orchestration replay sent it "
                    f"to '{target}'. Was a change made to the orchestrator code after this instance had "
                    "already started running?"
                )
            return str(json.loads(past["Input"])["id"])
        self._in_history(task_id, EventType.EventSent, None)
        # Derived from the sender and its sequence id, so an episode that is run again after a
        # crash sends the very same request, which the entity then recognises as a duplicate.
        request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.instance_id}|{self.execution_id}|{task_id}"))
        request: dict[str, Any] = {
            "op": action.get("operation"),
            "input": action.get("input"),
            "id": request_id,
            "parent": self.instance_id,
            "parentExecution": self.execution_id,
            "position": task_id,
            "timestamp": h.format_timestamp(self.now),
        }
        if signal:
            request["signal"] = True
        self.decisions.new_events.append(h.event_sent(task_id, target, json.dumps(request), self.now))
        self.decisions.entity_messages.append(EntityWork(target, request))
        return request_id

    def _timer_at(self, fire_at: datetime, cancelled: bool = False) -> bool:
        task_id = self._take_id()
        text = h.format_timestamp(fire_at)
        if not self._in_history(task_id, EventType.TimerCreated, None):
            self.decisions.new_events.append(h.timer_created(task_id, text, self.now))
            if not cancelled:
                self.decisions.timers.append(TimerWork(task_id, text))
        # A cancelled timer is done for the shim (its TimerFired, if any, is just logged).
        return cancelled or self._outcome(task_id) is not None

    def _timer(self, action: dict[str, Any]) -> bool:
        fire_at = h.parse_timestamp(str(action["fireAt"]))
        if (
            self.schema_version < 2
            and self.next_id not in self.scheduled
            and fire_at - self.now > MAX_TIMER_DELAY
        ):
            # Before schema V3 the SDK does not split long timers and the host rejects them.
            raise ValueError(delay_limit_message())
        return self._timer_at(fire_at, bool(action.get("isCanceled")))

    def _with_retry(self, action: dict[str, Any]) -> bool:
        """``RetryInterceptor``: attempts with durable timers between them, all from history."""
        options = _Retry.parse(action.get("retryOptions") or {})
        is_activity = int(action["actionType"]) == CALL_ACTIVITY_WITH_RETRY
        first_attempt: datetime | None = None
        failures = 0
        while True:
            task_id = self.next_id
            scheduled_at = self.scheduled.get(task_id)
            if first_attempt is None:
                first_attempt = h.parse_timestamp(scheduled_at["Timestamp"]) if scheduled_at else self.now
            outcome = (
                self._attempt_activity(action) if is_activity else self._attempt_sub_orchestration(action)
            )
            if outcome is None:
                return False
            if h.event_type(outcome) in (
                EventType.TaskCompleted,
                EventType.SubOrchestrationInstanceCompleted,
            ):
                return True
            failures += 1
            failed_at = self._decision_time(outcome)
            if failures >= options.max_attempts:
                # DTFx's "dummy timer for back-compat": the SDK waits for it before raising.
                return self._timer_at(failed_at)
            delay = options.next_delay(failures, first_attempt, failed_at)
            if delay <= timedelta(0):
                return True
            if not self._timer_at(failed_at + delay):
                return False

    def _decision_time(self, completion: HistoryEvent) -> datetime:
        """Orchestration time when a failure was handled: the retry timer counts from there."""
        timer = self.scheduled.get(self.next_id)
        if timer is not None and h.event_type(timer) == EventType.TimerCreated:
            return h.parse_timestamp(timer["Timestamp"])
        return self.now

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

    def unconsumed_events(self, new_events: Iterable[HistoryEvent]) -> list[HistoryEvent]:
        fresh = {id(e) for e in new_events}
        return [e for events in self.raised.values() for e in events if id(e) in fresh]


def _issue_remembered(walk: _Walk, memo: WalkMemo, action: dict[str, Any]) -> bool:
    """``walk.issue(action)``, or what it would answer from ``memo.open`` if that is this action."""
    remembered = memo.open
    if remembered is not None and remembered.action is action and remembered.first_id == walk.next_id:
        # The same fan-in as in the last walk, every task of it checked against the history
        # then (which has only grown since): only its open tasks can have changed.
        walk.next_id = remembered.end_id
        walk.open_ids.update(remembered.pending)
        if remembered.finished:
            memo.open = None
        return remembered.finished
    first_id, decided = walk.next_id, len(walk.decisions.new_events)
    finished = walk.issue(action)
    memo.open = None
    if not finished and len(walk.decisions.new_events) == decided and plain_compound(action):
        pending = {i for i in range(first_id, walk.next_id) if i not in walk.completed}
        is_any = int(action["actionType"]) == WHEN_ANY
        memo.open = OpenCompound(action, first_id, walk.next_id, pending, is_any)
    return finished


def decide(
    *,
    history: Sequence[HistoryEvent],
    orchestrator_name: str,
    state: OrchestratorState,
    now: datetime,
    known: KnownFunctions,
    execution_id: str = "",
    new_events: Sequence[HistoryEvent] = (),
    instance_id: str = "",
    memo: WalkMemo | None = None,
) -> EpisodeDecisions:
    """Turn the SDK's state into this episode's decisions, as the real shim and DTFx would.

    With ``memo`` (kept by a live orchestration between its episodes) the walk starts after the
    actions that had already finished; the decisions are the same as a walk from the start.
    """
    index = None if memo is None else memo.prepare(history, execution_id)
    walk = _Walk(history, now, known, execution_id, state.schema_version, instance_id, index)
    failure: str | None = None
    reached_end = True
    custom_status = None if state.custom_status is None else h.to_json_text(state.custom_status)
    skipped = 0 if memo is None else memo.skip(state.actions)
    if memo is not None:
        walk.next_id = memo.next_id
    try:
        if custom_status is not None and (too_big := custom_status_error(custom_status)):
            raise ValueError(too_big)
        extend_memo = memo is not None
        for action in state.actions[skipped:]:
            finished = walk.issue(action) if memo is None else _issue_remembered(walk, memo, action)
            if extend_memo and memo is not None:
                if finished and not walk.open_ids and memoisable(action):
                    memo.done_actions.append(action)
                    memo.next_id = walk.next_id
                else:
                    extend_memo = False
            if not finished:
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
        if memo is not None:
            memo.forget()
        reached_end = True
        walk.open_ids.clear()
        walk.decisions = EpisodeDecisions()

    decisions = walk.decisions
    decisions.custom_status = custom_status if custom_status and failure is None else None
    if failure is None:
        failure = state.error
    # DTFx completes only once the shim has finished and no activity or timer is still open.
    if not reached_end or walk.open_ids:
        return decisions
    if failure is not None:
        decisions.status = OrchestrationStatus.Failed
        decisions.output = f"Orchestrator function '{orchestrator_name}' failed: {failure}"
        completion = h.execution_completed(walk.next_id, decisions.status, decisions.output, now)
    elif state.is_done and walk.continue_as_new is not None:
        decisions.status = OrchestrationStatus.ContinuedAsNew
        decisions.output = walk.continue_as_new.get("input")
        decisions.carried_events = walk.unconsumed_events(new_events)
        completion = h.continued_as_new(walk.next_id, decisions.output, now)
    elif state.is_done:
        decisions.status = OrchestrationStatus.Completed
        decisions.output = h.to_json_text(state.output)
        completion = h.execution_completed(walk.next_id, decisions.status, decisions.output, now)
    else:
        return decisions
    decisions.new_events.append(completion)
    return decisions
