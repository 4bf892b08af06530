"""Local-time send windows: is a client's clock inside HH:MM-HH:MM, and when does it open next.

All maths goes through ``zoneinfo``: a local time is turned into UTC for each calendar
day, so DST changes shift the UTC instants as the local clocks do. A window start that
falls into a DST gap (a local time that does not exist that day) opens at the first
instant after the gap; one in a repeated hour opens at both of its occurrences.
"""

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DAYS_AHEAD = 3  # a window opens at least once a day, so three days always find the next


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def is_open(moment: datetime, *, tz: str, start: str, end: str) -> bool:
    """Whether the local clock of ``tz`` at ``moment`` reads inside [start, end)."""
    local = moment.astimezone(_zone(tz)).time().replace(second=0, microsecond=0)
    begin, finish = _hhmm(start), _hhmm(end)
    if begin < finish:
        return begin <= local < finish
    return local >= begin or local < finish  # wraps past midnight


def _local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of local ``day at``: its first occurrence, or the end of a DST gap."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # Skipped by a DST jump: find the earliest instant whose local reading is >= naive.
    # fold=1 reads before the gap, fold=0 after it; the transition lies in between.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low_s, high_s = int(low.timestamp()), int(first.timestamp())
    while high_s - low_s > 1:
        mid = (low_s + high_s) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= naive:
            high_s = mid
        else:
            low_s = mid
    return datetime.fromtimestamp(high_s, UTC)


def _second_occurrence(day: date, at: time, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of local ``day at`` when that reading comes twice (the hour repeated
    as clocks go back), its second time; otherwise None."""
    naive = datetime.combine(day, at)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if second != first and second.astimezone(zone).replace(tzinfo=None) == naive:
        return second
    return None


def next_opening(moment: datetime, *, tz: str, start: str, end: str) -> datetime:
    """``moment`` itself when the window is open, otherwise the UTC instant it next opens."""
    if is_open(moment, tz=tz, start=start, end=end):
        return moment
    zone = _zone(tz)
    today = moment.astimezone(zone).date()
    begin = _hhmm(start)
    for offset in range(DAYS_AHEAD):
        day = today + timedelta(days=offset)
        for opening in (_local_to_utc(day, begin, zone), _second_occurrence(day, begin, zone)):
            if opening is not None and opening > moment:
                return opening
    raise AssertionError("a daily window always opens within three days")  # pragma: no cover
