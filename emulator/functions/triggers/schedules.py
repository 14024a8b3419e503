"""Timer trigger schedules: NCRONTAB expressions and TimeSpan intervals (``TimerSchedule.Create``).

An expression with five fields is a cron schedule without seconds, any other one that NCrontab accepts
with seconds; otherwise a ``TimeSpan`` (``hh:mm:ss``) makes a constant interval. Schedules run in the
machine's local time zone, as the host's do. Daylight-saving ambiguities are not adjusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

from emulator.app._dotnet import format_datetime, format_timespan, parse_timespan
from emulator.functions._binding_expressions import BindingExpressionError, resolve_app_settings
from emulator.functions.triggers.ncrontab import CrontabError, CrontabSchedule


class ScheduleError(ValueError):
    """A schedule expression the timer extension rejects."""


class TimerSchedule(Protocol):
    def next_after(self, now: datetime) -> datetime:
        """The next occurrence after ``now`` (both aware, local time)."""
        ...

    @property
    def runs_more_than_once_a_minute(self) -> bool:
        """Sub-minute schedules turn schedule monitoring off."""
        ...


def local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True)
class CronSchedule:
    cron: CrontabSchedule

    def next_after(self, now: datetime) -> datetime:
        wall = now.astimezone().replace(tzinfo=None)
        return self.cron.next_occurrence(wall).astimezone()

    @property
    def runs_more_than_once_a_minute(self) -> bool:
        now = local_now()
        first = self.next_after(now)
        return self.next_after(first) < now + timedelta(minutes=1)

    def __str__(self) -> str:
        return f"Cron: '{self.cron}'"


@dataclass(frozen=True)
class ConstantSchedule:
    interval: timedelta

    def next_after(self, now: datetime) -> datetime:
        return now + self.interval

    @property
    def runs_more_than_once_a_minute(self) -> bool:
        return self.interval < timedelta(minutes=1)

    def __str__(self) -> str:
        return f"Constant: {format_timespan(self.interval)}"


def create_schedule(expression: str) -> CronSchedule | ConstantSchedule:
    """The schedule for a timer trigger's ``schedule`` property (``%AppSetting%`` allowed)."""
    try:
        resolved = resolve_app_settings(expression).strip()
    except BindingExpressionError as exc:
        raise ScheduleError(str(exc)) from None
    fields = resolved.split()
    try:
        return CronSchedule(CrontabSchedule.parse(resolved, including_seconds=len(fields) != 5))
    except CrontabError as cron_error:
        interval = parse_timespan(resolved)
        if interval is None:
            raise ScheduleError(
                f"The schedule expression '{resolved}' was not recognized as a valid cron expression or "
                f"timespan string. {cron_error}"
            ) from None
    if interval <= timedelta(0):
        raise ScheduleError(f"The timespan schedule '{resolved}' must be longer than zero.")
    return ConstantSchedule(interval)


def next_occurrences(schedule: TimerSchedule, count: int, now: datetime | None = None) -> list[datetime]:
    current = now or local_now()
    found: list[datetime] = []
    for _ in range(count):
        current = schedule.next_after(current)
        found.append(current)
    return found


def format_next_occurrences(schedule: TimerSchedule, count: int = 5) -> str:
    """``TimerInfo.FormatNextOccurrences``: UTC times, or local times followed by UTC in parentheses."""
    fmt = "MM'/'dd'/'yyyy HH':'mm':'ssK"
    lines = []
    for occurrence in next_occurrences(schedule, count):
        utc = format_datetime(occurrence.astimezone(timezone.utc), fmt)
        if occurrence.utcoffset() == timedelta(0):
            lines.append(utc)
        else:
            lines.append(f"{format_datetime(occurrence, fmt)} ({utc})")
    return "\n".join(lines) + "\n"
