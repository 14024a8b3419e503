"""One orchestration episode's replay, on an orchestrator thread or inline, with its invocation
recorded and the replay checks of ``emulator.durable._replay_check``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from emulator.app._app_index import AppIndex
from emulator.durable import _history as h
from emulator.durable._episode import Episode, execute_episode
from emulator.durable._history import EventType, HistoryEvent
from emulator.durable._replay import KnownFunctions
from emulator.durable._replay_check import (
    ends_execution,
    failed_by_nondeterminism,
    nondeterminism_report,
    note_replayed,
    replay_due,
)
from emulator.durable._worker import OrchestratorSession
from emulator.functions._invocations import InvocationLog
from emulator.functions._threads import WorkerThreads

logger = logging.getLogger("emulator.orchestrations")

#: A live orchestration whose last step took less than this resumes on the event loop: user
#: code that yields this quickly costs less than the hand-off to an orchestrator thread and back.
INLINE_RESUME_SECONDS = 0.002
#: ...and only for a few new events (a fan-in of hundreds of results stays off the loop).
INLINE_RESUME_EVENTS = 4


def known_functions(index: AppIndex) -> KnownFunctions:
    aliases = {
        fn.python_name.lower()
        for fn in index.functions
        if fn.is_kind("activityTrigger") or fn.is_kind("orchestrationTrigger")
    }
    return KnownFunctions(
        activities=tuple(index.names("activityTrigger")),
        orchestrators=tuple(index.names("orchestrationTrigger")),
        aliases=frozenset(aliases),
    )


class EpisodeRunner:
    def __init__(
        self,
        *,
        index: AppIndex,
        invocations: InvocationLog,
        max_concurrent: int,
        extended_sessions: bool,
        replay_check: bool,
    ) -> None:
        self._app = index
        self._known = known_functions(index)
        self._invocations = invocations
        self._extended_sessions = extended_sessions
        #: Check live orchestrations against replays from the start (``emulator.durable._replay_check``).
        self._replay_check = replay_check
        # Orchestrator replays are CPU work in user code: keep them off the event loop.
        self._threads = WorkerThreads(min(max_concurrent, 4), "orchestrator")

    def shutdown(self) -> None:
        self._threads.shutdown()

    async def run(
        self,
        instance_id: str,
        history: list[HistoryEvent],
        new_events: list[HistoryEvent],
        now: datetime,
        session: OrchestratorSession | None,
    ) -> Episode:
        index = self._app

        def orchestrator(name: str) -> Callable[[Any], Any] | None:
            function = index.orchestrator(name)
            return None if function is None else function.user_function

        def run(session: OrchestratorSession | None) -> Episode:
            began = time.perf_counter()
            replayed = session is None or session.finished or session.replay_pending
            episode = execute_episode(
                instance_id=instance_id,
                history=history,
                new_events=new_events,
                now=now,
                orchestrator=orchestrator,
                known=self._known,
                session=session,
                keep_session=self._extended_sessions,
            )
            if episode.session is not None:
                # A first episode (or a full replay) costs at least what a step would.
                episode.session.last_resume_seconds = time.perf_counter() - began
            if replayed:
                note_replayed(episode, len(history))
            return episode

        live = session is not None and not session.finished and self._replay_check
        if live and session is not None and replay_due(session, len(history) + len(new_events) + 1):
            session, live = session.replayed_from_start(), False

        def final_replay(episode: Episode) -> OrchestratorSession | None:
            # Before an execution ends, its last episode is decided as the real host decides
            # it: by a replay of the code from the start.
            if live and session is not None and ends_execution(episode):
                return session.replayed_from_start(episode_ran=True)
            return None

        def run_and_replay() -> Episode:
            # On an orchestrator thread: the episode and its final replay in one hand-off.
            episode = run(session)
            replay = final_replay(episode)
            return episode if replay is None else run(replay)

        name = _orchestrator_name(history, new_events)
        function = index.orchestrator(name)
        with self._invocations.invoke(
            function.name if function else name, reason="(null)", instance_id=instance_id
        ) as record:
            if (
                session is not None
                and not session.replay_pending
                and session.last_resume_seconds < INLINE_RESUME_SECONDS
                and len(new_events) <= INLINE_RESUME_EVENTS
            ):
                # The live orchestration's last step was this quick and this one is as small:
                # two thread hand-offs would cost more than running it right here. A replay is
                # not quick: that one still goes to a thread.
                episode = run(session)
                if (replay := final_replay(episode)) is not None:
                    episode = await self._threads.run(functools.partial(run, replay))
            else:
                episode = await self._threads.run(run_and_replay)
            if episode.state is not None and episode.state.error:
                record.succeeded = False
                record.error = episode.state.error
        if failed_by_nondeterminism(episode):
            report = await self._threads.run(
                functools.partial(nondeterminism_report, instance_id, name, history, index)
            )
            logger.warning("Orchestration '%s' (%s) is not deterministic:\n%s", name, instance_id, report)
        return episode


def _orchestrator_name(history: list[HistoryEvent], new_events: list[HistoryEvent]) -> str:
    for event in itertools.chain(history, new_events):
        if h.event_type(event) == EventType.ExecutionStarted:
            return str(event.get("Name") or "")
    return ""
