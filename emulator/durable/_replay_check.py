"""Live orchestrations checked against a replay of their code from the start.

The real host runs a Python orchestrator's code again from the start at every episode, so an
orchestrator whose decisions depend on anything but its history (the wall clock, ``random``,
``uuid4``, the environment, files) fails with "Non-Deterministic workflow detected: ..." at the
first replay that decides differently from what its history recorded. The emulator keeps the
orchestration in memory between episodes instead (``OrchestratorSession``): each line of the
code runs once, and such code would never be caught. So, unless it is turned off, an episode of
a live orchestration is decided by a replay from the start instead

* when the history has grown ``REPLAY_GROWTH`` times since the code last ran from the start
  (for a chain of activities: its 3rd episode, then its 7th, 15th, 31st...), and
* always when the live orchestration ends its execution (completes, fails, continues as new):
  that episode is decided again by a replay, whose decisions are the ones committed.

A replay from the start is what the real host does for that episode: every decision of the
history is checked against the code (a disagreement fails the instance with the host's message)
and the episode gets the replay's decisions. Between checks the live orchestration decides the
same as a replay would, for deterministic code (``tests/unit/test_extended_sessions.py``). The
replays reuse the SDK's parsed events of the live orchestration; their total length is about
twice the final history's. A replay of an episode the live orchestration has already run counts
that episode's events as replayed, so code that runs only when ``context.is_replaying`` is false
runs once. When a replay fails the instance, the offline replay's diff of the history (one more
run of the code, compared episode by episode) is logged with it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from emulator.app._app_index import AppIndex
from emulator.durable._episode import Episode
from emulator.durable._history import HistoryEvent, OrchestrationStatus
from emulator.durable._worker import OrchestratorSession
from emulator.tools._history_files import SavedHistory
from emulator.tools._recorded_episodes import split_episodes

#: How much the history grows between two replays from the start of a live orchestration.
REPLAY_GROWTH = 2
#: The app setting (or environment variable) that turns the check off with "false".
SETTING = "EMULATOR_REPLAY_CHECK"
NONDETERMINISM = "Non-Deterministic workflow detected: "

_OFF = frozenset({"false", "0", "off", "no"})


def enabled(values: Mapping[str, str]) -> bool:
    """On unless the environment or else the app's Values set ``SETTING`` to false (0, off, no)."""
    value = os.environ.get(SETTING, values.get(SETTING))
    return value is None or value.strip().lower() not in _OFF


def replay_due(session: OrchestratorSession, history_length: int) -> bool:
    """True when the episode over ``history_length`` events is to be decided by a replay."""
    return history_length >= REPLAY_GROWTH * session.replayed_length


def note_replayed(episode: Episode, history_length: int) -> None:
    """Record how long the history is with the rows of an episode the code ran from the start.

    Counting the episode's own decisions keeps a big fan-out (a thousand rows written by its
    first episode) from being replayed again as soon as its first results come in.
    """
    if episode.session is not None:
        rows = len(episode.rows)
        episode.session.replayed_length = rows if episode.new_generation else history_length + rows


def ends_execution(episode: Episode) -> bool:
    """True when the orchestrator's code ran and ended its execution in this episode."""
    first = episode.generations[0] if episode.generations else episode.decisions
    return episode.state is not None and first.status != OrchestrationStatus.Running


def failed_by_nondeterminism(episode: Episode) -> bool:
    decisions = episode.decisions
    return decisions.status == OrchestrationStatus.Failed and NONDETERMINISM in (decisions.output or "")


def nondeterminism_report(
    instance_id: str, orchestrator: str, history: Sequence[HistoryEvent], index: AppIndex
) -> str:
    """The offline replay's diff of ``history`` (the episodes before the failing one)."""
    # Imported here: offline replay builds on the dispatcher's module, which imports this one.
    from emulator.tools._offline_replay import replay_saved

    saved = SavedHistory(
        instance_id, orchestrator, split_episodes([dict(e) for e in history]), "its history on this host"
    )
    report = replay_saved(saved, index, sessions=True)
    if report.ok:
        return (
            f"'{orchestrator}' (instance '{instance_id}'): another run of the code agreed with all "
            f"{report.episodes} recorded episodes: it decides differently from one run to the next."
        )
    return report.format()
