"""Conversions between a plan's seconds-since-local-midnight and aware datetimes.

Seconds are elapsed time since local midnight of the plan's day, so on a DST day 10:00 local is not
36,000 s: arithmetic goes through UTC, never through wall-clock addition.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def local_midnight(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone))


def at(day: date, timezone: str, seconds: int) -> datetime:
    """The aware UTC instant `seconds` after local midnight of `day`."""
    return local_midnight(day, timezone).astimezone(UTC) + timedelta(seconds=seconds)


def seconds_since_midnight(day: date, timezone: str, instant: datetime) -> int:
    return int((instant - local_midnight(day, timezone)).total_seconds())
