""".NET text formats the Functions host uses where user-visible strings depend on them.

Binding expressions format dates and GUIDs with .NET format strings (``{datetime:yyyy-MM-dd}``,
``{rand-guid:N}``), timer schedules may be ``TimeSpan`` strings, and the status and metadata the host
writes use .NET's ISO date layouts. Only what those features need is implemented.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

# Custom date format specifiers, longest first so "yyyy" wins over "yy".
_DATE_TOKEN_RE = re.compile(
    r"yyyy|yyy|yy|y|MMMM|MMM|MM|M|dddd|ddd|dd|d|HH|H|hh|h|mm|m|ss|s|f{1,7}|F{1,7}|tt|t|zzz|zz|z|K|"
    r"'[^']*'|\"[^\"]*\"|\\.|."
)
_MONTHS = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Standard (single-letter) formats the host's binding data uses, as custom patterns.
_STANDARD_DATE_FORMATS = {
    "d": "MM/dd/yyyy",
    "D": "dddd, dd MMMM yyyy",
    "s": "yyyy-MM-ddTHH:mm:ss",
    "u": "yyyy-MM-dd HH:mm:ssZ",
    "t": "HH:mm",
    "T": "HH:mm:ss",
    "g": "MM/dd/yyyy HH:mm",
    "G": "MM/dd/yyyy HH:mm:ss",
    "M": "MMMM dd",
    "m": "MMMM dd",
    "Y": "yyyy MMMM",
    "y": "yyyy MMMM",
}


def _offset_text(dt: datetime, with_minutes: bool = True, pad: bool = True) -> str:
    offset = dt.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    hours = f"{minutes // 60:02d}" if pad else str(minutes // 60)
    return f"{sign}{hours}:{minutes % 60:02d}" if with_minutes else f"{sign}{hours}"


def _date_token(dt: datetime, token: str) -> str:
    ticks = f"{dt.microsecond:06d}0"  # .NET has 7 fractional digits (100 ns ticks)
    hour12 = dt.hour % 12 or 12
    simple = {
        "yyyy": f"{dt.year:04d}",
        "yyy": f"{dt.year:03d}",
        "yy": f"{dt.year % 100:02d}",
        "y": str(dt.year % 100),
        "MMMM": _MONTHS[dt.month - 1],
        "MMM": _MONTHS[dt.month - 1][:3],
        "MM": f"{dt.month:02d}",
        "M": str(dt.month),
        "dddd": _DAYS[dt.weekday()],
        "ddd": _DAYS[dt.weekday()][:3],
        "dd": f"{dt.day:02d}",
        "d": str(dt.day),
        "HH": f"{dt.hour:02d}",
        "H": str(dt.hour),
        "hh": f"{hour12:02d}",
        "h": str(hour12),
        "mm": f"{dt.minute:02d}",
        "m": str(dt.minute),
        "ss": f"{dt.second:02d}",
        "s": str(dt.second),
        "tt": "AM" if dt.hour < 12 else "PM",
        "t": "A" if dt.hour < 12 else "P",
        "zzz": _offset_text(dt),
        "zz": _offset_text(dt, with_minutes=False),
        "z": _offset_text(dt, with_minutes=False, pad=False),
    }
    if token in simple:
        return simple[token]
    if token[0] == "f":
        return ticks[: len(token)]
    if token[0] == "F":
        return ticks[: len(token)].rstrip("0")
    if token == "K":
        if dt.tzinfo is None:
            return ""
        return "Z" if dt.utcoffset() == timedelta(0) and dt.tzinfo is timezone.utc else _offset_text(dt)
    if token[0] in "'\"":
        return token[1:-1]
    if token[0] == "\\":
        return token[1:]
    return token


def format_datetime(dt: datetime, fmt: str) -> str:
    """``DateTime.ToString(fmt, InvariantCulture)`` for custom and the common standard formats."""
    if fmt == "o" or fmt == "O":
        return iso_roundtrip(dt)
    pattern = _STANDARD_DATE_FORMATS.get(fmt, fmt) if len(fmt) == 1 else fmt
    return "".join(_date_token(dt, m.group(0)) for m in _DATE_TOKEN_RE.finditer(pattern))


def iso_roundtrip(dt: datetime) -> str:
    """.NET's round-trip ``"o"`` format: seven fractional digits and the offset (``Z`` for UTC)."""
    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{dt.microsecond:06d}0"
    if dt.tzinfo is None:
        return text
    return text + ("Z" if dt.tzinfo is timezone.utc else _offset_text(dt))


def iso_json(dt: datetime) -> str:
    """How Newtonsoft.Json writes a date: ISO 8601, fraction trimmed of trailing zeros, with offset."""
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{dt.microsecond:06d}".rstrip("0")
    if fraction:
        text += "." + fraction
    if dt.tzinfo is None:
        return text
    return text + ("Z" if dt.tzinfo is timezone.utc else _offset_text(dt))


def format_guid(value: uuid.UUID, fmt: str | None) -> str:
    """``Guid.ToString(fmt)``: D (default), N, B, P; X is not supported and falls back to D."""
    text = str(value)
    kind = (fmt or "D").upper()
    if kind == "N":
        return value.hex
    if kind == "B":
        return "{" + text + "}"
    if kind == "P":
        return "(" + text + ")"
    return text


_FRACTION = r"(?:\.(?P<fraction>\d{1,7}))?"
# The invariant layouts TimeSpan.TryParse accepts: [-][d.]hh:mm[:ss[.f]] ("c") and [-]d:hh:mm:ss[.f] ("g").
_TIMESPAN_RES = (
    re.compile(
        r"\s*(?P<sign>-)?(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{1,2})"
        rf"(?::(?P<seconds>\d{{1,2}}){_FRACTION})?\s*"
    ),
    re.compile(
        r"\s*(?P<sign>-)?(?P<days>\d+):(?P<hours>\d{1,2}):(?P<minutes>\d{1,2}):(?P<seconds>\d{1,2})"
        rf"{_FRACTION}\s*"
    ),
)
_DAYS_ONLY_RE = re.compile(r"\s*(?P<sign>-)?(?P<days>\d+)\s*")


def parse_timespan(text: str) -> timedelta | None:
    """``TimeSpan.TryParse`` for the invariant layouts: ``[-][d.]hh:mm[:ss[.fffffff]]``, ``d:hh:mm:ss`` or
    whole days; None when it is none of them or a component is out of range."""
    days_only = _DAYS_ONLY_RE.fullmatch(text)
    if days_only:
        value = timedelta(days=int(days_only.group("days")))
        return -value if days_only.group("sign") else value
    match = next((m for m in (r.fullmatch(text) for r in _TIMESPAN_RES) if m is not None), None)
    if match is None:
        return None
    hours, minutes = int(match.group("hours")), int(match.group("minutes"))
    seconds = int(match.group("seconds") or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    fraction = match.group("fraction") or ""
    value = timedelta(
        days=int(match.group("days") or 0),
        hours=hours,
        minutes=minutes,
        seconds=seconds,
        microseconds=int((fraction + "0000000")[:7]) / 10,
    )
    return -value if match.group("sign") else value


def format_timespan(value: timedelta) -> str:
    """``TimeSpan.ToString()`` (the constant ``"c"`` format): ``[-][d.]hh:mm:ss[.fffffff]``."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if value.days:
        text = f"{value.days}.{text}"
    if value.microseconds:
        text += f".{value.microseconds:06d}0"
    return sign + text
