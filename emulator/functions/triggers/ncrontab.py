"""NCRONTAB expressions, as the NCrontab library the timer trigger uses parses and evaluates them.

Five fields (minute hour day month day-of-week) or six with seconds first. Each field takes ``*``,
numbers, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (a to the maximum), comma lists, and
month and day names (any prefix, case-insensitive). Day of month and day of week must both match.

The occurrences come from croniter (``day_or=False``, ``second_at_beginning=True``), which finds
NCrontab's for every case of tests/unit/test_schedules.py. The parser stays ours, because croniter
parses otherwise than NCrontab in what the host shows and accepts:

* names: NCrontab takes any prefix (``Thurs``, ``Thursday``, ``T`` for Tuesday); croniter only the
  three-letter ones (``0 0 * * * Thurs``: ``CroniterNotAlphaError``);
* errors: the host reports NCrontab's messages (``61 is higher than the maximum allowable value for
  the [Minute] field``, ``'Funday' is not a known value name``); croniter has its own
  (``[0 61 * * * *] is not acceptable, out of range``);
* the expanded form the host logs (``0,15,30,45 * * * * *`` for ``*/15 * * * * *``), which croniter
  does not produce. croniter is given that form, so both read one schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from croniter import CroniterBadDateError, croniter

_NAMES = {
    "Month": (
        *("January", "February", "March", "April", "May", "June"),
        *("July", "August", "September", "October", "November", "December"),
    ),
    "DayOfWeek": ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"),
}
_RANGES = {
    "Second": (0, 59),
    "Minute": (0, 59),
    "Hour": (0, 23),
    "Day": (1, 31),
    "Month": (1, 12),
    "DayOfWeek": (0, 6),
}
_KINDS = ("Second", "Minute", "Hour", "Day", "Month", "DayOfWeek")


class CrontabError(ValueError):
    """An expression NCrontab rejects; the message is NCrontab's."""


@dataclass(frozen=True)
class CrontabField:
    kind: str
    values: frozenset[int]

    @property
    def first(self) -> int:
        return min(self.values) if self.values else -1

    def next(self, start: int) -> int:
        """The first value >= start, or -1."""
        return min((v for v in self.values if v >= start), default=-1)

    def format(self) -> str:
        """NCrontab's expanded form: ``*`` for the full range, else ranges and lists."""
        low, high = _RANGES[self.kind]
        ordered = sorted(self.values)
        if ordered == list(range(low, high + 1)):
            return "*"
        parts: list[str] = []
        start = previous = ordered[0]
        for value in [*ordered[1:], None]:
            if value is not None and value == previous + 1:
                previous = value
                continue
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            if value is not None:
                start = previous = value
        return ",".join(parts)


def _parse_value(kind: str, text: str) -> int:
    if not text:
        raise CrontabError("A crontab field value cannot be empty.")
    if text[0].isdigit():
        if not text.isdigit():
            raise CrontabError(f"'{text}' is not a valid [{kind}] crontab field value.")
        return int(text)
    names = _NAMES.get(kind)
    low, high = _RANGES[kind]
    if names is None:
        raise CrontabError(
            f"'{text}' is not a valid [{kind}] crontab field value. It must be a numeric value between "
            f"{low} and {high} (all inclusive)."
        )
    for index, name in enumerate(names):
        if name.lower().startswith(text.lower()):
            return index + low
    raise CrontabError(f"'{text}' is not a known value name. Use one of the following: {', '.join(names)}.")


def _accumulate(kind: str, start: int, end: int, interval: int, into: set[int]) -> None:
    low, high = _RANGES[kind]
    if start == end:
        if start < 0:
            start, end = low, high
        else:
            _check(kind, start)
    else:
        start, end = min(start, end), max(start, end)
        start = low if start < 0 else start
        end = high if end < 0 else end
        _check(kind, start)
        _check(kind, end)
    into.update(range(start, end + 1, max(interval, 1)))


def _check(kind: str, value: int) -> None:
    low, high = _RANGES[kind]
    if value < low:
        raise CrontabError(
            f"{value} is lower than the minimum allowable value for the [{kind}] field. "
            f"Value must be between {low} and {high} (all inclusive)."
        )
    if value > high:
        raise CrontabError(
            f"{value} is higher than the maximum allowable value for the [{kind}] field. "
            f"Value must be between {low} and {high} (all inclusive)."
        )


def _parse_part(kind: str, text: str, into: set[int]) -> None:
    if not text:
        raise CrontabError("A crontab field value cannot be empty.")
    every: int | None = None
    if "/" in text[1:]:
        text, _, step = text.partition("/")
        if not step.isdigit():
            raise CrontabError(f"'{step}' is not a valid step in a [{kind}] crontab field.")
        every = int(step)
    if text == "*":
        _accumulate(kind, -1, -1, every or 1, into)
        return
    if "-" in text[1:]:
        first, _, last = text.partition("-")
        _accumulate(kind, _parse_value(kind, first), _parse_value(kind, last), every or 1, into)
        return
    value = _parse_value(kind, text)
    if every is None:
        _accumulate(kind, value, value, 1, into)
    else:
        _accumulate(kind, value, _RANGES[kind][1], every, into)


def parse_field(kind: str, text: str) -> CrontabField:
    values: set[int] = set()
    try:
        for part in text.split(",") if "," in text[1:] else [text]:
            _parse_part(kind, part, values)
    except CrontabError as exc:
        raise CrontabError(f"'{text}' is not a valid [{kind}] crontab field expression. {exc}") from None
    return CrontabField(kind, frozenset(values))


@dataclass(frozen=True)
class CrontabSchedule:
    seconds: CrontabField | None
    minutes: CrontabField
    hours: CrontabField
    days: CrontabField
    months: CrontabField
    days_of_week: CrontabField

    @classmethod
    def parse(cls, expression: str, *, including_seconds: bool) -> CrontabSchedule:
        tokens = expression.split()
        expected = 6 if including_seconds else 5
        if len(tokens) != expected:
            sequence = "seconds, minutes, hours, days, months, and days of week"
            if not including_seconds:
                sequence = sequence.replace("seconds, ", "")
            raise CrontabError(
                f"'{expression}' is an invalid crontab expression. It must contain {expected} components "
                f"of a schedule in the sequence of {sequence}."
            )
        kinds = _KINDS if including_seconds else _KINDS[1:]
        fields = [parse_field(kind, token) for kind, token in zip(kinds, tokens, strict=True)]
        if not including_seconds:
            fields.insert(0, None)  # type: ignore[arg-type]
        return cls(*fields)

    def __str__(self) -> str:
        fields = [self.minutes, self.hours, self.days, self.months, self.days_of_week]
        if self.seconds is not None:
            fields.insert(0, self.seconds)
        return " ".join(f.format() for f in fields)

    def next_occurrence(self, base: datetime) -> datetime:
        """The first occurrence strictly after ``base`` (a naive wall-clock time), as NCrontab finds it."""
        # croniter reads the expanded form (numbers only); day_or=False: both day fields must match.
        search = croniter(str(self), base, day_or=False, second_at_beginning=self.seconds is not None)
        try:
            found: datetime = search.get_next(datetime)
        except CroniterBadDateError:  # croniter gives up after years without a match
            raise CrontabError(f"The schedule '{self}' has no occurrence after {base:%Y-%m-%d}.") from None
        return found
