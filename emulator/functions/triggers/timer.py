"""Timer triggers, after the timer extension's ``TimerListener`` and ``StorageScheduleMonitorV2``.

With ``useMonitor`` (the default, turned off for schedules that fire more than once a minute) the
schedule status lives in blob ``azure-webjobs-hosts/timers/<host id>/Host.Functions.<name>/status``;
at startup a recorded next occurrence that has passed makes an immediate invocation with
``past_due`` set. Otherwise ``runOnStartup`` makes one. Invocations of a timer never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError
from azure.functions import meta

from emulator.app._app_index import FunctionInfo
from emulator.app._dotnet import iso_json, iso_roundtrip
from emulator.functions._bindings import TriggerValue
from emulator.functions.triggers._runner import FunctionRunner
from emulator.functions.triggers.hostid import HOSTS_CONTAINER, function_id
from emulator.functions.triggers.schedules import TimerSchedule, format_next_occurrences, local_now

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient

logger = logging.getLogger("emulator.triggers.timer")

_ISO_RE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?")
# Status dates below this are the "unset" DateTime.MinValue (ScheduleMonitor.DefaultDateTimeThreshold).
_UNSET_BEFORE_YEAR = 2


def _parse_date(value: Any) -> datetime | None:
    match = _ISO_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)[:4]) < _UNSET_BEFORE_YEAR:
        return None
    fraction = (match.group(2) or "0")[:6].ljust(6, "0")
    zone = match.group(3) or ""
    parsed = datetime.fromisoformat(f"{match.group(1)}.{fraction}{'+00:00' if zone == 'Z' else zone}")
    return parsed.astimezone()  # a date without offset is local time, like a .NET Local DateTime


def _format_date(value: datetime | None) -> str:
    if value is None:  # DateTime.MinValue.ToLocalTime(), as Newtonsoft writes it
        offset = local_now().strftime("%z")
        return f"0001-01-01T00:00:00{offset[:3]}:{offset[3:]}"
    return iso_json(value.astimezone())


@dataclass
class ScheduleStatus:
    """Last and next occurrence as the host records them; None stands for the unset MinValue."""

    last: datetime | None = None
    next: datetime | None = None
    last_updated: datetime | None = None

    def to_json(self) -> dict[str, str]:
        return {
            "Last": _format_date(self.last),
            "Next": _format_date(self.next),
            "LastUpdated": _format_date(self.last_updated),
        }

    @classmethod
    def from_json(cls, data: Any) -> ScheduleStatus:
        data = data if isinstance(data, dict) else {}
        return cls(
            _parse_date(data.get("Last")), _parse_date(data.get("Next")), _parse_date(data.get("LastUpdated"))
        )


class StorageScheduleMonitor:
    """Schedule status blobs in the host storage account."""

    def __init__(self, blobs: BlobServiceClient, host_id: str) -> None:
        self._container = blobs.get_container_client(HOSTS_CONTAINER)
        self._host_id = host_id

    def _blob_name(self, timer_name: str) -> str:
        return f"timers/{self._host_id}/{timer_name}/status"

    async def get_status(self, timer_name: str) -> ScheduleStatus | None:
        try:
            download = await self._container.get_blob_client(self._blob_name(timer_name)).download_blob()
            text = (await download.readall()).decode("utf-8-sig")
        except ResourceNotFoundError:
            return None
        try:
            return ScheduleStatus.from_json(json.loads(text))
        except ValueError:
            return None

    async def update_status(self, timer_name: str, status: ScheduleStatus) -> None:
        body = json.dumps(status.to_json()).encode("utf-8")
        blob = self._container.get_blob_client(self._blob_name(timer_name))
        try:
            try:
                await blob.upload_blob(body, overwrite=True)
            except ResourceNotFoundError:
                with contextlib.suppress(Exception):
                    await self._container.create_container()
                await blob.upload_blob(body, overwrite=True)
        except Exception as exc:  # best effort, as on the host
            logger.error("Function '%s' failed to update the timer trigger status: %s", timer_name, exc)

    async def check_past_due(
        self, timer_name: str, now: datetime, schedule: TimerSchedule, status: ScheduleStatus | None
    ) -> timedelta:
        """``ScheduleMonitor.CheckPastDueAsync``: how late the recorded next occurrence is (0 if not)."""
        if status is None:
            recorded_next = schedule.next_after(now)
            await self.update_status(timer_name, ScheduleStatus(None, recorded_next, now))
        else:
            if status.last is not None:
                expected, last_updated = schedule.next_after(status.last), status.last
            elif status.last_updated is not None:
                expected, last_updated = schedule.next_after(status.last_updated), status.last_updated
            else:
                expected, last_updated = schedule.next_after(now), now
            if status.next != expected:
                # The schedule changed since the status was written: don't report that as past due.
                if now > expected:
                    expected, last_updated = schedule.next_after(now), now
                status.last, status.next, status.last_updated = None, expected, last_updated
                await self.update_status(timer_name, status)
            assert status.next is not None
            recorded_next = status.next
        return now - recorded_next if now > recorded_next else timedelta(0)


def timer_info_json(status: ScheduleStatus | None, is_past_due: bool) -> str:
    """The ``TimerInfo`` the host serializes for the worker (``func.TimerRequest``)."""
    return json.dumps(
        {
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": None if status is None else status.to_json(),
            "IsPastDue": is_past_due,
        }
    )


class TimerListener:
    """Fires one timer-triggered function on its schedule."""

    def __init__(
        self,
        function: FunctionInfo,
        schedule: TimerSchedule,
        runner: FunctionRunner,
        monitor: StorageScheduleMonitor | None,
        *,
        run_on_startup: bool,
    ) -> None:
        self.function = function
        self.schedule = schedule
        self._runner = runner
        self._monitor = monitor
        self._run_on_startup = run_on_startup
        self._timer_name = function_id(function.name)
        self._status = ScheduleStatus()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        name = self.function.name
        now = local_now()
        logger.debug(
            "The '%s' timer is using the schedule '%s' and the local time zone: '%s'",
            name,
            self.schedule,
            now.tzname(),
        )
        past_due = timedelta(0)
        status: ScheduleStatus | None = None
        if self._monitor is not None:
            status = await self._monitor.get_status(self._timer_name)
            past_due = await self._monitor.check_past_due(self._timer_name, now, self.schedule, status)
        self._status = status or ScheduleStatus(None, self.schedule.next_after(now), None)
        logger.info(
            "The next 5 occurrences of the '%s' schedule (%s) will be:\n%s",
            name,
            self.schedule,
            format_next_occurrences(self.schedule),
        )
        startup: str | None = None
        if past_due > timedelta(0):
            startup = "past_due"
        elif self._run_on_startup:
            startup = "run_on_startup"
        self._task = asyncio.create_task(self._loop(startup), name=f"timer-{name}")

    async def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._task is None:
            return
        # An invocation in progress finishes first, as the host waits for it.
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _loop(self, startup: str | None) -> None:
        name = self.function.name
        while not self._stop.is_set():
            if startup is None:
                assert self._status.next is not None
                delay = (self._status.next - local_now()).total_seconds()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), max(delay, 0.0))
                if self._stop.is_set():
                    return
                await self._invoke(local_now())
                continue
            if startup == "past_due":
                logger.debug("Function '%s' is past due on startup. Executing now.", name)
                await self._invoke(local_now(), is_past_due=True)
            else:
                logger.debug("Function '%s' is configured to run on startup. Executing now.", name)
                await self._invoke(local_now(), run_on_startup=True)
            startup = None

    async def _invoke(
        self, now: datetime, *, is_past_due: bool = False, run_on_startup: bool = False
    ) -> None:
        status = self._status if self._monitor is not None else None
        trigger = TriggerValue(datum=meta.Datum(timer_info_json(status, is_past_due), "json"))
        await self._runner.run(self.function, trigger, reason=f"Timer fired at {iso_roundtrip(now)}")
        # Fired a little early (clock skew): count from the scheduled time so it doesn't fire twice.
        adjusted = now
        if (
            not is_past_due
            and not run_on_startup
            and self._status.next is not None
            and self._status.next > now
        ):
            adjusted = self._status.next
        following = self.schedule.next_after(adjusted)
        self._status = ScheduleStatus(adjusted, following, adjusted)
        if self._monitor is not None:
            await self._monitor.update_status(self._timer_name, self._status)
            logger.debug(
                "Function '%s' updated status: Last='%s', Next='%s', LastUpdated='%s'",
                self.function.name,
                iso_roundtrip(adjusted),
                iso_roundtrip(following),
                iso_roundtrip(adjusted),
            )
