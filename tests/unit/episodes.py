"""Drive orchestrators episode by episode over an in-memory history (no host, no storage).

The same ``execute_episode`` the host runs decides each episode, so these tests pin the
host's replay behaviour: history in, decisions out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from emulator.durable import _history as h
from emulator.durable._episode import Episode, execute_episode
from emulator.durable._history import HistoryEvent
from emulator.durable._replay import KnownFunctions

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


class EpisodeDriver:
    """Plays the host for one instance: keeps its history and runs one episode per call."""

    def __init__(
        self,
        orchestrators: dict[str, Callable[[Any], Any]],
        activities: list[str],
        instance_id: str = "inst-1",
        sessions: bool = False,
    ) -> None:
        self.sessions = sessions
        self.session: Any = None
        self.orchestrators = {k.lower(): v for k, v in orchestrators.items()}
        self.orchestrator_names = list(orchestrators)
        self._executions = 1
        self.activities = activities
        self.instance_id = instance_id
        self.history: list[HistoryEvent] = []
        self.clock = T0
        self.episodes: list[Episode] = []

    def _next_execution_id(self) -> str:
        self._executions += 1
        return f"exec-{self._executions}"

    def _tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def run(self, *events: HistoryEvent) -> Episode:
        episode = execute_episode(
            instance_id=self.instance_id,
            history=self.history,
            new_events=list(events),
            now=self._tick(),
            orchestrator=lambda name: self.orchestrators.get(name.lower()),
            known=KnownFunctions(
                activities=tuple(sorted(self.activities)),
                orchestrators=tuple(sorted(self.orchestrator_names)),
            ),
            new_execution_id=self._next_execution_id,
            session=self.session,
            keep_session=self.sessions,
        )
        self.session = episode.session
        if episode.new_generation:
            self.history = list(episode.rows)
        else:
            self.history.extend(episode.rows)
        self.episodes.append(episode)
        return episode

    def start(self, name: str, value: Any = None) -> Episode:
        # Python clients post json.dumps(input): the stored input is a JSON string literal.
        input_text = None if value is None else json.dumps(json.dumps(value))
        started = h.execution_started(
            instance_id=self.instance_id,
            execution_id="exec-1",
            name=name,
            input_text=input_text,
            timestamp=self.clock,
        )
        return self.run(started)

    def completed(self, task_id: int, value: Any) -> HistoryEvent:
        return h.task_completed(task_id, json.dumps(value), self.clock)

    def failed(self, task_id: int, reason: str) -> HistoryEvent:
        return h.task_failed(task_id, reason, json.dumps({"Message": reason}), self.clock)

    def raised(self, name: str, value: Any) -> HistoryEvent:
        return h.event_raised(name, json.dumps(value), self.clock)

    def sub_completed(self, task_id: int, value: Any) -> HistoryEvent:
        return h.sub_orchestration_completed(task_id, json.dumps(value), self.clock)

    def sub_failed(self, task_id: int, reason: str) -> HistoryEvent:
        return h.sub_orchestration_failed(task_id, reason, None, self.clock)

    def advance(self, delta: timedelta) -> None:
        self.clock += delta

    def fired(self, timer_id: int) -> HistoryEvent:
        created = next(
            e for e in self.history if e["EventType"] == h.EventType.TimerCreated and e["EventId"] == timer_id
        )
        return h.timer_fired(timer_id, created["FireAt"], self.clock)
