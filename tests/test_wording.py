"""core.wording: one wording of days, times and windows for the bot and the notifications."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from core import wording

TORONTO = "America/Toronto"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=ZoneInfo(TORONTO))


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", "Sat Dec 5, 2:00–4:00\u202fPM"),
        ("fr_CA", "sam. 5 déc., 14 h à 16 h"),
        ("es", "sáb 5 dic, 14:00–16:00"),
    ],
)
def test_a_window_in_each_language(locale, expected):
    assert wording.window(at(5, 14), at(5, 16), locale, TORONTO) == expected


def test_quebec_french_writes_the_minutes_only_when_there_are_some():
    assert wording.clock_time(at(5, 14), "fr_CA", TORONTO) == "14 h"
    assert wording.clock_time(at(5, 14, 30), "fr_CA", TORONTO) == "14 h 30"


def test_a_window_ending_at_midnight_ends_that_day():
    assert wording.window(at(6, 22), at(7, 0), "en", TORONTO) == "Sun Dec 6, 10:00\u202fPM–12:00\u202fAM"


def test_a_window_across_midnight_names_both_days():
    assert wording.window(at(6, 23), at(7, 1), "en", TORONTO).startswith("Sun Dec 6, 11:00")
    assert "Mon Dec 7, 1:00" in wording.window(at(6, 23), at(7, 1), "en", TORONTO)


def test_the_day_is_the_one_of_the_time_zone_given():
    late_evening = datetime(2026, 12, 6, 3, 30, tzinfo=ZoneInfo("UTC"))  # Dec 5, 22:30 in Toronto
    assert wording.day(late_evening, "en", TORONTO) == "Sat Dec 5"
