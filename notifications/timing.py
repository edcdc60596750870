"""When notifications are due: local times of day in the delivery's time zone, and quiet hours.

Every computation goes through `zoneinfo`, so 18:00 the day before is 18:00 on the wall clock on
both sides of a DST change (the UTC instant moves by an hour, the local time does not).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DEFAULT_REMINDER_TIME = "18:00"
DEFAULT_MORNING_TIME = "08:00"
DEFAULT_ARRIVING_STOPS = 3
ARRIVING_MINUTES = 30


def arriving_stops(settings: Mapping[str, Any] | None) -> int:
    """How many stops away the arriving message goes (a retailer's `arriving_stops`, 3 by default)."""
    return int((settings or {}).get("arriving_stops", DEFAULT_ARRIVING_STOPS))


class BadTimeOfDay(ValueError):
    pass


def parse_hhmm(value: str) -> time:
    match = HHMM.match(value.strip())
    if not match:
        raise BadTimeOfDay(f"a time of day is HH:MM (24 h), not {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


def local_time_on(day: date, hhmm: str, timezone: str) -> datetime:
    """The UTC instant of a wall-clock time on a local day (a time skipped by DST moves forward)."""
    zone = ZoneInfo(timezone)
    # fold=0 reads a skipped time (02:30 when clocks jump to 03:00) with the old offset: 03:30 after
    return datetime.combine(day, parse_hhmm(hhmm), tzinfo=zone).astimezone(UTC)


def quiet_until(instant: datetime, start: str, end: str, timezone: str) -> datetime | None:
    """The end of the quiet hours `instant` falls in (local `start` to `end`), or None outside them."""
    quiet_start, quiet_end = parse_hhmm(start), parse_hhmm(end)
    if quiet_start == quiet_end:
        return None
    local = instant.astimezone(ZoneInfo(timezone))
    now = local.time().replace(tzinfo=None)
    if quiet_start > quiet_end:  # over midnight, e.g. 21:00 to 08:00
        if now >= quiet_start:
            return local_time_on(local.date() + timedelta(days=1), end, timezone)
        if now < quiet_end:
            return local_time_on(local.date(), end, timezone)
        return None
    if quiet_start <= now < quiet_end:
        return local_time_on(local.date(), end, timezone)
    return None


def local_day(instant: datetime, timezone: str) -> date:
    return instant.astimezone(ZoneInfo(timezone)).date()
