"""Days, clock times and delivery windows in the recipient's words, for the bot's replies and the
notification templates alike: a recipient reads "sam. 5 déc., 8 h à 10 h" in both, not two styles.

English, Canadian French and Spanish have their own day pattern; Quebec French writes whole hours as
"14 h" and a span as "14 h à 16 h", the others take CLDR's interval ("2:00–4:00 PM", "14:00–16:00").
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_interval, format_time

DAY_PATTERNS = {"en": "EEE MMM d", "fr_CA": "EEE d MMM", "es": "EEE d MMM"}


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def day(value: datetime | date, locale: str, timezone: str) -> str:
    """ "Sat Dec 5", "sam. 5 déc.", "sáb 5 dic"."""
    local = value.astimezone(_zone(timezone)) if isinstance(value, datetime) else value
    return format_date(local, DAY_PATTERNS.get(locale, DAY_PATTERNS["en"]), locale=locale)


def clock_time(value: datetime, locale: str, timezone: str) -> str:
    """ "2:00 PM", "14 h", "14 h 30", "14:00"."""
    local = value.astimezone(_zone(timezone))
    if locale == "fr_CA":
        return format_time(local, "H 'h'" if local.minute == 0 else "H 'h' mm", locale=locale)
    return format_time(local, "short", locale=locale)


def hours(start: datetime, end: datetime, locale: str, timezone: str) -> str:
    """A span of hours of one day: "2:00–4:00 PM", "14 h à 16 h", "14:00–16:00"."""
    if locale == "fr_CA":
        return f"{clock_time(start, locale, timezone)} à {clock_time(end, locale, timezone)}"
    zone = _zone(timezone)
    skeleton = "hm" if locale == "en" else "Hm"
    text = format_interval(start.astimezone(zone), end.astimezone(zone), skeleton, tzinfo=zone, locale=locale)
    return text.replace("\u2009–\u2009", "–").replace(" – ", "–")


def window(start: datetime, end: datetime, locale: str, timezone: str) -> str:
    """A delivery window: "Fri Dec 4, 2:00–4:00 PM"; one across midnight names both days."""
    zone = _zone(timezone)
    # a window ending at midnight ends that day
    if start.astimezone(zone).date() != (end.astimezone(zone) - timedelta(microseconds=1)).date():
        return f"{day(start, locale, timezone)}, {clock_time(start, locale, timezone)} – " + (
            f"{day(end, locale, timezone)}, {clock_time(end, locale, timezone)}"
        )
    return f"{day(start, locale, timezone)}, {hours(start, end, locale, timezone)}"
