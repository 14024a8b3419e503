"""Timer schedules: NCRONTAB parsing and occurrences, TimeSpan schedules, and the host's formats."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from emulator.app._dotnet import format_datetime, format_timespan, iso_json, iso_roundtrip, parse_timespan
from emulator.functions.triggers.ncrontab import CrontabError, CrontabSchedule
from emulator.functions.triggers.schedules import (
    ConstantSchedule,
    CronSchedule,
    ScheduleError,
    create_schedule,
)


def cron(expression: str) -> CrontabSchedule:
    return CrontabSchedule.parse(expression, including_seconds=len(expression.split()) != 5)


@pytest.mark.parametrize(
    ("expression", "base", "expected"),
    [
        ("*/5 * * * * *", datetime(2024, 1, 1, 10, 0, 3), datetime(2024, 1, 1, 10, 0, 5)),
        ("0 */5 * * * *", datetime(2024, 1, 1, 10, 0, 0), datetime(2024, 1, 1, 10, 5, 0)),
        ("0 30 9 * * 1-5", datetime(2024, 1, 6, 10, 0, 0), datetime(2024, 1, 8, 9, 30, 0)),  # Sat -> Mon
        ("0 30 9 * * Mon-Fri", datetime(2024, 1, 6, 10, 0, 0), datetime(2024, 1, 8, 9, 30, 0)),
        ("0 0 0 1 Jan *", datetime(2024, 1, 1, 0, 0, 0), datetime(2025, 1, 1, 0, 0, 0)),
        ("0 0 15,31 * *", datetime(2024, 1, 31, 0, 0, 0), datetime(2024, 2, 15, 0, 0, 0)),
        ("0 0 0 31 * *", datetime(2024, 1, 31, 1, 0, 0), datetime(2024, 3, 31, 0, 0, 0)),
        ("0 0 0 29 2 *", datetime(2024, 3, 1), datetime(2028, 2, 29)),
        # Day of month and day of week must both match (NCrontab), unlike Vixie cron.
        ("0 0 13 * 5", datetime(2024, 1, 1), datetime(2024, 9, 13)),
        ("5/20 * * * * *", datetime(2024, 1, 1, 0, 0, 26), datetime(2024, 1, 1, 0, 0, 45)),
        # NCrontab takes any prefix of a name (croniter only three letters): Thursday 4 January.
        ("0 0 9 * * Thurs", datetime(2024, 1, 1), datetime(2024, 1, 4, 9, 0, 0)),
        ("0 0 9 * * t", datetime(2024, 1, 1), datetime(2024, 1, 2, 9, 0, 0)),  # the first match: Tuesday
    ],
)
def test_next_occurrence_matches_ncrontab(expression: str, base: datetime, expected: datetime) -> None:
    assert cron(expression).next_occurrence(base) == expected


def test_the_expanded_form_is_what_the_host_logs() -> None:
    assert str(cron("*/15 * * * * *")) == "0,15,30,45 * * * * *"
    assert str(cron("0 0 9-17 * * Mon-Fri")) == "0 0 9-17 * * 1-5"
    assert str(cron("0 12 * * *")) == "0 12 * * *"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 61 * * * *", "61 is higher than the maximum allowable value for the \\[Minute\\] field"),
        ("* * * *", "It must contain 6 components"),
        ("0 0 * * * Funday", "'Funday' is not a known value name"),
        ("0 0 0 30 2 *", "has no occurrence"),
    ],
)
def test_invalid_or_impossible_expressions_are_reported(expression: str, message: str) -> None:
    with pytest.raises(CrontabError, match=message):
        cron(expression).next_occurrence(datetime(2024, 1, 1))


def test_create_schedule_takes_cron_then_timespan() -> None:
    assert isinstance(create_schedule("0 */5 * * * *"), CronSchedule)
    assert isinstance(create_schedule("*/5 * * * *"), CronSchedule)  # five fields: no seconds
    constant = create_schedule("00:00:30")
    assert constant == ConstantSchedule(timedelta(seconds=30))
    assert str(constant) == "Constant: 00:00:30"
    assert constant.runs_more_than_once_a_minute
    assert create_schedule("* * * * * *").runs_more_than_once_a_minute
    assert not create_schedule("0 0 * * * *").runs_more_than_once_a_minute


def test_schedules_come_from_app_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEANUP_SCHEDULE", "0 0 3 * * *")
    assert str(create_schedule("%CLEANUP_SCHEDULE%")) == "Cron: '0 0 3 * * *'"
    with pytest.raises(ScheduleError, match="MISSING_SCHEDULE"):
        create_schedule("%MISSING_SCHEDULE%")


def test_an_unrecognized_schedule_says_so() -> None:
    with pytest.raises(
        ScheduleError, match="was not recognized as a valid cron expression or timespan string"
    ):
        create_schedule("every five minutes")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:05", timedelta(seconds=5)),
        ("00:00:00.500", timedelta(milliseconds=500)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("02:30", timedelta(hours=2, minutes=30)),
        ("3", timedelta(days=3)),
        ("1:02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("24:00:00", None),
        ("soon", None),
    ],
)
def test_timespans_parse_like_dotnet(text: str, expected: timedelta | None) -> None:
    assert parse_timespan(text) == expected


def test_dotnet_formats() -> None:
    moment = datetime(2024, 5, 1, 10, 15, 0, 123456, tzinfo=timezone.utc)
    assert format_datetime(moment, "yyyy-MM-ddTHH-mm-ssK") == "2024-05-01T10-15-00Z"
    assert format_datetime(moment, "MM'/'dd'/'yyyy HH':'mm':'ssK") == "05/01/2024 10:15:00Z"
    assert format_datetime(moment, "dddd d MMM yy, h:mm tt") == "Wednesday 1 May 24, 10:15 AM"
    assert iso_roundtrip(moment) == "2024-05-01T10:15:00.1234560Z"
    assert iso_json(moment.replace(microsecond=0)) == "2024-05-01T10:15:00Z"
    assert format_timespan(timedelta(days=1, seconds=1)) == "1.00:00:01"
