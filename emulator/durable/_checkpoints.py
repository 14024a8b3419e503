"""An orchestration episode's history rows: appended under the sentinel ETag (docs/durability.md
invariant 1), or held in memory for a few milliseconds to go out with the next episode's (``Unflushed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from emulator.durable._crash import crash_point
from emulator.durable._episode import Episode
from emulator.durable._instance import OrchestrationInstance, Unflushed
from emulator.durable._reconcile import Delivery, Incoming
from emulator.durable._status_writer import StatusWriter
from emulator.taskhub._interface import InstanceUpdate, StoredHistory, TaskHub

#: How long an episode's rows may wait in memory for the next episode's (see ``Unflushed``).
FLUSH_DELAY = 0.05
#: Bigger episodes are written at once (one transaction holds at most 100 rows).
MAX_UNFLUSHED_ROWS = 60


class Checkpointer:
    """Appends, holds and flushes history rows; ``on_due`` is called when a held episode's wait
    is over (its rows are then to be written without waiting for more)."""

    def __init__(
        self,
        *,
        storage: TaskHub,
        status: StatusWriter,
        on_due: Callable[[OrchestrationInstance], None],
    ) -> None:
        self._storage = storage
        self._status = status
        self._on_due = on_due

    async def append(
        self, instance: OrchestrationInstance, stored: StoredHistory, episode: Episode
    ) -> Unflushed | None:
        """Append the episode's rows (with a held episode's before them, if any).

        Returns the held episode written with them, whose Instances-row columns are still to be
        queued; the episode's rows are then the instance's history in memory.
        """
        carried = instance.unflushed
        if carried is not None and episode.new_generation:
            await self.flush(instance)  # the old generation's rows first
            carried, stored = None, instance.history  # type: ignore[assignment]
            assert stored is not None
        if episode.new_generation:
            committed, rows = 0, episode.rows
        elif carried is not None:
            committed, rows = carried.start, [*stored.events[carried.start :], *episode.rows]
        else:
            committed, rows = len(stored.events), episode.rows
        etag = await self._storage.append_history(
            instance.instance_id, episode.execution_id, committed, rows, stored.version
        )
        instance.forget_unflushed()
        self.take_rows(instance, stored, episode, etag)
        crash_point("episode-after-history")
        return carried

    def hold(
        self,
        instance: OrchestrationInstance,
        stored: StoredHistory,
        episode: Episode,
        kept: list[Incoming],
        consumed: list[Delivery],
        update: InstanceUpdate,
    ) -> None:
        """Keep an episode's rows in memory for the next episode's transaction (``Unflushed``).

        ``kept`` is what it applied or dropped (pending again should its rows never be written).
        """
        start = len(stored.events)
        self.take_rows(instance, stored, episode, stored.version)  # the ETag of before: not written yet
        carried = instance.unflushed = Unflushed(start, kept, consumed, update)
        carried.timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._on_due, instance)

    @staticmethod
    def take_rows(
        instance: OrchestrationInstance, stored: StoredHistory, episode: Episode, etag: str | None
    ) -> None:
        """Make the episode's rows part of the instance's history in memory, and keep its session."""
        if episode.new_generation:
            events = list(episode.rows)
        else:
            events = stored.events  # extended in place: its index catches up with the new rows
            events.extend(episode.rows)
        instance.history = StoredHistory(events, etag, episode.execution_id)
        instance.session = episode.session

    async def flush(self, instance: OrchestrationInstance) -> None:
        """Write the rows of an episode kept in memory (no result came in time to join them)."""
        carried, history = instance.unflushed, instance.history
        if carried is None:
            return
        # An unflushed episode always leaves its execution's history in memory (hold).
        assert history is not None and history.execution_id is not None
        # On failure the episode stays unflushed: whoever handles the error makes it pending again.
        etag = await self._storage.append_history(
            instance.instance_id,
            history.execution_id,
            carried.start,
            history.events[carried.start :],
            history.version,
        )
        instance.forget_unflushed()
        instance.history = StoredHistory(history.events, etag, history.execution_id)
        crash_point("episode-after-history")
        self._status.queue_status_write(instance.status, carried.update, carried.consumed)
