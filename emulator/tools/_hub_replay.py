"""Replay every instance of a task hub that is not finished against the app's current code.

This is offline replay (:mod:`emulator.tools._offline_replay`) pointed at a task hub: each
instance's current execution is read with :meth:`TaskHub.read_history` (large values come
from their blobs) and replayed episode by episode, so a code change that would break an
orchestration in flight shows before the deploy, with the sequence ids where it differs.

The check only reads: it queries the Instances table and reads histories, never creates the
hub, receives a message or takes a partition, so it is safe to point at production storage.
One live session of the code goes through all the episodes of a history (the decisions are a
full replay's, see ``OrchestratorSession``), which makes a history one replay rather than one
per episode.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from emulator.app._app_index import AppIndex
from emulator.durable import _history as h
from emulator.durable._history import EventType, HistoryEvent, OrchestrationStatus
from emulator.taskhub._interface import InstanceQuery, InstanceRecord, TaskHub
from emulator.tools._history_files import SavedHistory
from emulator.tools._offline_replay import ReplayReport, replay_saved
from emulator.tools._recorded_episodes import HistoryFileError, split_episodes

#: The statuses of instances that will replay again: what the check reads by default.
NOT_FINISHED = (
    OrchestrationStatus.Pending,
    OrchestrationStatus.Running,
    OrchestrationStatus.Suspended,
    OrchestrationStatus.ContinuedAsNew,
)
#: Histories read at once: enough to keep the storage busy while the code replays.
DEFAULT_CONCURRENCY = 32
_PAGE_SIZE = 1000


class Verdict(enum.Enum):
    """What the check found for one instance."""

    OK = "ok"
    #: The code no longer makes the decisions the history recorded.
    NONDETERMINISM = "nondeterminism"
    #: The app has no orchestrator of the instance's name any more.
    MISSING_ORCHESTRATOR = "missing-orchestrator"
    #: The history could not be replayed at all (the message says why).
    UNREADABLE = "unreadable"
    #: Not started yet (Pending, no history): nothing to replay, the orchestrator exists.
    NOT_STARTED = "not-started"
    #: Entities do not replay an orchestrator's history: listed, not checked.
    ENTITY = "entity"
    #: The history was finished when it was read (the instance completed meanwhile).
    FINISHED = "finished"

    @property
    def breaks(self) -> bool:
        return self in (Verdict.NONDETERMINISM, Verdict.MISSING_ORCHESTRATOR, Verdict.UNREADABLE)


@dataclass
class InstanceCheck:
    """The verdict on one instance, with the replay's report when there was a replay."""

    instance_id: str
    name: str
    runtime_status: str
    verdict: Verdict
    report: ReplayReport | None = None
    message: str = ""

    def format(self) -> str:
        """One line (OK, or what is wrong), or the replay's diff for nondeterminism."""
        what = f"'{self.name}' (instance '{self.instance_id}', {self.runtime_status})"
        if self.report is not None and self.verdict in (Verdict.OK, Verdict.NONDETERMINISM):
            return self.report.format()
        if self.verdict == Verdict.MISSING_ORCHESTRATOR:
            return (
                f"MISSING ORCHESTRATOR: {what}: the app has no orchestrator '{self.name}' any more; "
                "the instance would fail at its next event."
            )
        if self.verdict == Verdict.ENTITY:
            return (
                f"NOT CHECKED: entity '{self.instance_id}' ({self.runtime_status}): entities do not replay."
            )
        if self.verdict == Verdict.NOT_STARTED:
            return f"OK: {what}: not started yet, no history to replay; the app has the orchestrator."
        if self.verdict == Verdict.FINISHED:
            return f"FINISHED: {what}: the instance finished while it was being checked."
        return f"CANNOT REPLAY: {what}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "instanceId": self.instance_id,
            "name": self.name,
            "runtimeStatus": self.runtime_status,
            "result": self.verdict.value,
        }
        if self.message:
            data["message"] = self.message
        report = self.report
        if report is not None:
            data["episodes"] = report.episodes
            data["replayed"] = report.replayed
            if report.notes:
                data["notes"] = report.notes
            if report.mismatch is not None:
                diff = report.mismatch
                data["mismatch"] = {
                    "episode": diff.number,
                    "orchestrationTime": diff.started_at,
                    "sequenceIds": diff.differing_ids(),
                    "recorded": [_decision_json(d) for d in diff.recorded],
                    "code": [_decision_json(d) for d in diff.produced],
                    "recordedStatus": diff.recorded_outcome.describe(),
                    "codeStatus": diff.produced_outcome.describe(),
                }
                data["diff"] = report.format()
        return data


def _decision_json(decision: Any) -> dict[str, Any]:
    return {"sequenceId": decision.sequence_id, "kind": decision.kind, "name": decision.name}


@dataclass
class HubCheck:
    """Every instance checked in one task hub."""

    task_hub: str
    instances: list[InstanceCheck] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(check.verdict.breaks for check in self.instances)

    @property
    def broken(self) -> list[InstanceCheck]:
        return [check for check in self.instances if check.verdict.breaks]

    def counts(self) -> dict[str, int]:
        counts = {verdict.value: 0 for verdict in Verdict}
        for check in self.instances:
            counts[check.verdict.value] += 1
        return counts

    def summary(self) -> str:
        counts = self.counts()
        replayed = counts["ok"] + counts["nondeterminism"] + counts["unreadable"]
        broken = len(self.broken)
        parts = [
            f"{len(self.instances)} instances not finished in task hub '{self.task_hub}': "
            f"{counts['ok'] + counts['not-started']} OK, {broken} would break",
        ]
        if broken:
            parts[0] += (
                f" ({counts['nondeterminism']} nondeterministic, {counts['missing-orchestrator']} with "
                f"the orchestrator missing, {counts['unreadable']} not replayable)"
            )
        parts.append(f"{replayed} histories replayed")
        if counts["entity"]:
            parts.append(f"{counts['entity']} entities not checked")
        if counts["finished"]:
            parts.append(f"{counts['finished']} finished meanwhile")
        return "; ".join(parts) + f" ({self.seconds:.1f} s)."

    def format(self) -> str:
        """One line per instance (the diff for a broken one), then the counts."""
        shown = [check.format() for check in self.instances if check.verdict != Verdict.FINISHED]
        return "\n".join([*shown, self.summary()])

    def to_json(self) -> dict[str, Any]:
        return {
            "taskHub": self.task_hub,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "counts": self.counts(),
            "instances": [c.to_json() for c in self.instances if c.verdict != Verdict.FINISHED],
        }


async def not_finished_instances(
    hub: TaskHub, statuses: Iterable[OrchestrationStatus] | None = None, instance_id_prefix: str | None = None
) -> list[InstanceRecord]:
    """The records of the instances to check, page after page (no inputs: they are not needed)."""
    wanted = tuple(status.name for status in (statuses or NOT_FINISHED))
    query = InstanceQuery(statuses=wanted, instance_id_prefix=instance_id_prefix or None)
    records: list[InstanceRecord] = []
    continuation: str | None = None
    while True:
        page, continuation = await hub.query_instances(
            query, page_size=_PAGE_SIZE, continuation=continuation, fetch_input=False
        )
        records.extend(page)
        if continuation is None:
            return records


async def check_task_hub(
    hub: TaskHub,
    index: AppIndex,
    *,
    statuses: Iterable[OrchestrationStatus] | None = None,
    instance_id_prefix: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> HubCheck:
    """Replay each matching instance's current execution against ``index``; reads only.

    Histories are read ``concurrency`` at a time and each is replayed as soon as it arrives,
    so the storage serves the next reads while the code replays. Storage failures propagate.
    """
    started = time.perf_counter()
    records = await not_finished_instances(hub, statuses, instance_id_prefix)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def check(record: InstanceRecord) -> InstanceCheck:
        if record.instance_id.startswith("@"):
            return _check(record, Verdict.ENTITY)
        if index.orchestrator(record.name) is None and record.name:
            return _check(record, Verdict.MISSING_ORCHESTRATOR)
        async with gate:
            stored = await hub.read_history(record.instance_id)
        return check_history(record, stored.events, index)

    checks = await asyncio.gather(*(check(record) for record in records))
    result = HubCheck(hub.name, sorted(checks, key=lambda c: c.instance_id))
    result.seconds = time.perf_counter() - started
    return result


def _check(record: InstanceRecord, verdict: Verdict, **details: Any) -> InstanceCheck:
    return InstanceCheck(record.instance_id, record.name, record.runtime_status.name, verdict, **details)


def check_history(record: InstanceRecord, events: list[HistoryEvent], index: AppIndex) -> InstanceCheck:
    """The verdict on one instance whose current execution's history is ``events``."""
    if not events:
        # A client start not yet picked up: its first episode will run the current code anyway.
        return _check(record, Verdict.NOT_STARTED)
    status = record.runtime_status.name
    try:
        episodes = split_episodes(events)
        last = episodes[-1].completion
        if last is not None and h.event_type(last) != EventType.ContinueAsNew:
            return _check(record, Verdict.FINISHED)
        saved = SavedHistory(record.instance_id, _orchestrator_name(events, record), episodes, status)
        if index.orchestrator(saved.orchestrator) is None:
            return InstanceCheck(record.instance_id, saved.orchestrator, status, Verdict.MISSING_ORCHESTRATOR)
        report = replay_saved(saved, index, sessions=True)
    except (HistoryFileError, ValueError, KeyError, TypeError) as exc:
        # Nothing the user's code raises gets here (the replay reports it as the instance failing).
        return _check(record, Verdict.UNREADABLE, message=f"{type(exc).__name__}: {exc}")
    verdict = Verdict.OK if report.ok else Verdict.NONDETERMINISM
    return InstanceCheck(record.instance_id, saved.orchestrator, status, verdict, report)


def _orchestrator_name(events: list[HistoryEvent], record: InstanceRecord) -> str:
    started = next((e for e in events if h.event_type(e) == EventType.ExecutionStarted), None)
    if started is None:
        raise HistoryFileError("The history has no ExecutionStarted event: it cannot be replayed.")
    return str(started.get("Name") or record.name)
