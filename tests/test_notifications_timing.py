"""Local times of day and quiet hours in the delivery's time zone, on both sides of DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from notifications.timing import BadTimeOfDay, local_time_on, quiet_until

TZ = "America/Toronto"


class TestLocalTimes:
    @pytest.mark.parametrize(
        ("day", "utc_hour"),
        [
            (date(2026, 10, 31), 22),  # Saturday before the November change: EDT, UTC-4
            (date(2026, 11, 1), 23),  # first Sunday of November, after 02:00: EST, UTC-5
            (date(2027, 3, 13), 23),  # Saturday before the March change: EST
            (date(2027, 3, 14), 22),  # second Sunday of March, after 02:00: EDT
        ],
    )
    def test_six_pm_stays_six_pm_on_the_wall_clock_across_dst(self, day, utc_hour):
        assert local_time_on(day, "18:00", TZ) == datetime(day.year, day.month, day.day, utc_hour, tzinfo=UTC)

    def test_a_time_skipped_by_the_spring_change_moves_forward(self):
        instant = local_time_on(date(2027, 3, 14), "02:30", TZ)
        assert instant == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)  # 03:30 EDT

    def test_a_bad_time_of_day_is_refused(self):
        with pytest.raises(BadTimeOfDay):
            local_time_on(date(2026, 12, 3), "25:00", TZ)


class TestQuietHours:
    def test_late_evening_waits_for_the_next_morning(self):
        at = datetime(2026, 12, 3, 3, 30, tzinfo=UTC)  # 22:30 EST on Dec 2
        assert quiet_until(at, "21:00", "08:00", TZ) == datetime(2026, 12, 3, 13, tzinfo=UTC)

    def test_early_morning_waits_until_the_end_the_same_day(self):
        at = datetime(2026, 12, 3, 12, 59, tzinfo=UTC)  # 07:59 EST
        assert quiet_until(at, "21:00", "08:00", TZ) == datetime(2026, 12, 3, 13, tzinfo=UTC)

    def test_daytime_is_not_quiet(self):
        assert quiet_until(datetime(2026, 12, 3, 17, tzinfo=UTC), "21:00", "08:00", TZ) is None

    def test_the_night_of_the_november_change_ends_at_eight_standard_time(self):
        at = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)  # 23:00 EDT on Oct 31
        assert quiet_until(at, "21:00", "08:00", TZ) == datetime(2026, 11, 1, 13, tzinfo=UTC)

    def test_the_night_of_the_march_change_ends_at_eight_daylight_time(self):
        at = datetime(2027, 3, 14, 4, 0, tzinfo=UTC)  # 23:00 EST on Mar 13
        assert quiet_until(at, "21:00", "08:00", TZ) == datetime(2027, 3, 14, 12, tzinfo=UTC)

    def test_a_daytime_quiet_period_is_honoured_too(self):
        at = datetime(2026, 12, 3, 17, 30, tzinfo=UTC)  # 12:30 EST
        assert quiet_until(at, "12:00", "13:00", TZ) == datetime(2026, 12, 3, 18, tzinfo=UTC)

    def test_equal_bounds_mean_no_quiet_hours(self):
        assert quiet_until(datetime(2026, 12, 3, 3, tzinfo=UTC), "00:00", "00:00", TZ) is None
