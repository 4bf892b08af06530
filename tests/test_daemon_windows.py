"""Local-time windows across timezones, midnight and DST changes."""

from datetime import UTC, datetime

import pytest

from daemon.windows import is_open, next_opening

pytestmark = pytest.mark.clock


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_open_inside_and_closed_outside_in_the_clients_zone():
    # 06:00 UTC is 09:00 in Moscow and 16:00 in Vladivostok.
    moment = utc(2026, 12, 1, 6, 0)
    assert is_open(moment, tz="Europe/Moscow", start="09:00", end="18:00")
    assert not is_open(moment, tz="Asia/Vladivostok", start="09:00", end="12:00")


def test_end_is_exclusive_and_start_inclusive():
    assert is_open(utc(2026, 12, 1, 9, 0), tz="UTC", start="09:00", end="10:00")
    assert not is_open(utc(2026, 12, 1, 10, 0), tz="UTC", start="09:00", end="10:00")


def test_window_wrapping_midnight():
    for hour, expected in [(23, True), (2, True), (6, False), (12, False), (22, True)]:
        assert is_open(utc(2026, 12, 1, hour, 0), tz="UTC", start="22:00", end="06:00") is expected


def test_next_opening_is_now_when_open_and_the_next_local_start_otherwise():
    inside = utc(2026, 12, 1, 12, 0)
    assert next_opening(inside, tz="UTC", start="09:00", end="18:00") == inside
    # 20:00 UTC = 23:00 Moscow: the next 09:00 Moscow is 06:00 UTC tomorrow.
    assert next_opening(
        utc(2026, 12, 1, 20, 0), tz="Europe/Moscow", start="09:00", end="18:00"
    ) == (utc(2026, 12, 2, 6, 0))
    # 03:00 UTC = 22:00 New York (EST): opens 09:00 EST = 14:00 UTC the same UTC day.
    assert next_opening(
        utc(2026, 12, 1, 3, 0), tz="America/New_York", start="09:00", end="17:00"
    ) == utc(2026, 12, 1, 14, 0)


def test_dst_start_shifts_the_utc_opening_by_an_hour():
    # New York springs forward on 2026-03-08: 09:00 is 14:00 UTC before, 13:00 UTC after.
    before = next_opening(utc(2026, 3, 7, 5, 0), tz="America/New_York", start="09:00", end="10:00")
    after = next_opening(utc(2026, 3, 8, 5, 0), tz="America/New_York", start="09:00", end="10:00")
    assert (before, after) == (utc(2026, 3, 7, 14, 0), utc(2026, 3, 8, 13, 0))


def test_window_starting_inside_the_dst_gap_opens_when_the_gap_ends():
    # 02:30 does not exist in New York on 2026-03-08; clocks jump from 02:00 EST to 03:00 EDT
    # at 07:00 UTC, which is the first local instant at or after 02:30.
    opening = next_opening(utc(2026, 3, 8, 5, 0), tz="America/New_York", start="02:30", end="05:00")
    assert opening == utc(2026, 3, 8, 7, 0)
    assert is_open(opening, tz="America/New_York", start="02:30", end="05:00")


def test_repeated_hour_at_dst_end_opens_at_its_first_occurrence():
    # New York falls back on 2026-11-01: 01:30 happens at 05:30 UTC (EDT) and 06:30 UTC (EST).
    opening = next_opening(
        utc(2026, 11, 1, 4, 0), tz="America/New_York", start="01:30", end="01:45"
    )
    assert opening == utc(2026, 11, 1, 5, 30)


@pytest.mark.parametrize("tz", ["Europe/Moscow", "Asia/Vladivostok", "America/New_York", "UTC"])
def test_every_opening_found_is_inside_the_window(tz):
    for hour in range(0, 24, 3):
        moment = utc(2026, 3, 8, hour, 17)
        opening = next_opening(moment, tz=tz, start="10:00", end="11:00")
        assert opening >= moment
        assert is_open(opening, tz=tz, start="10:00", end="11:00")


def test_a_window_in_the_repeated_hour_opens_again_at_its_second_occurrence():
    # New York, 2027-11-07: 02:00 EDT goes back to 01:00 EST, so 01:00-02:00 comes twice.
    after_first = utc(2027, 11, 7, 5, 50)  # 01:50 EDT, the first time round
    opening = next_opening(after_first, tz="America/New_York", start="01:30", end="01:45")
    assert opening == utc(2027, 11, 7, 6, 30)  # 01:30 EST, the second time
    assert is_open(opening, tz="America/New_York", start="01:30", end="01:45")
