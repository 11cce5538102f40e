"""Shift DICOM dates and times by one per-patient offset, keeping every interval.

A date with its partner time (StudyDate + StudyTime, ContentDate + ContentTime, ...) is
shifted as one instant, so a time crossing midnight moves its date too. A lone date moves
by the whole days of the offset, a lone time by its seconds (modulo a day), a DT by the
whole offset (its UTC-offset suffix kept). A value that is not a valid date or time is
not kept: the caller replaces it (``None`` means "could not shift").
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?$")
_TM = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")


def shift_date(value: str, shift: timedelta) -> str | None:
    value = value.strip()
    if "-" in value:  # a range (query style): shift both ends
        parts = [shift_date(p, shift) if p else "" for p in value.split("-", 1)]
        return None if None in parts else "-".join(p or "" for p in parts)
    try:
        day = datetime.strptime(value.replace(".", ""), "%Y%m%d").date()
        return _fmt_date(day + timedelta(days=shift.days))
    except (ValueError, OverflowError):
        return None


def shift_time(value: str, shift: timedelta) -> str | None:
    parsed = _parse_time(value)
    if parsed is None:
        return None
    seconds, fraction, digits = parsed
    moved = (seconds + shift.seconds) % 86400
    return _fmt_time(moved, fraction, digits)


def shift_pair(day_value: str, time_value: str, shift: timedelta) -> tuple[str, str] | None:
    parsed = _parse_time(time_value)
    if parsed is None:
        return None
    seconds, fraction, digits = parsed
    try:
        day = datetime.strptime(day_value.strip().replace(".", ""), "%Y%m%d")
        moved = day + timedelta(seconds=seconds) + shift
    except (ValueError, OverflowError):
        return None
    since_midnight = moved.hour * 3600 + moved.minute * 60 + moved.second
    return _fmt_date(moved.date()), _fmt_time(since_midnight, fraction, digits)


def shift_datetime(value: str, shift: timedelta) -> str | None:
    m = _DT.match(value.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    try:
        instant = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0),
                           int(minute or 0), int(second or 0))
        moved = instant + shift
    except (ValueError, OverflowError):
        return None
    out = moved.strftime("%Y%m%d%H%M%S") + (fraction or "")
    return out + (offset or "")


def _parse_time(value: str) -> tuple[int, str, int] | None:
    text = value.strip().replace(":", "")
    m = _TM.match(text)
    if m is None:
        return None
    hour, minute, second, fraction = m.groups()
    h, mi, s = int(hour), int(minute or 0), int(second or 0)
    if h > 23 or mi > 59 or s > 60:
        return None
    digits = 2 + (2 if minute else 0) + (2 if second else 0)
    return h * 3600 + mi * 60 + min(s, 59), fraction or "", digits


def _fmt_date(day: date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _fmt_time(seconds: int, fraction: str, digits: int) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    full = f"{h:02d}{m:02d}{s:02d}"
    # keep the original precision, but never fewer digits than needed to show a change
    return full[: max(digits, 6)] + fraction
