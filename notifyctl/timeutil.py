"""Time at the edges: parsing user input into aware UTC datetimes, and the current time.

Inside the program every datetime is timezone-aware UTC. A datetime typed without an
offset is read in the default timezone (``NOTIFY_DEFAULT_TIMEZONE``, UTC unless set).
A caller's time must fall within ``EARLIEST``..``LATEST``: far enough inside the years
1-9999 that Python's ``datetime`` can hold for it to be shown in any timezone and moved
by a send window's days without leaving that range.
"""

import re
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

from notifyctl.errors import InvalidInput, quoted

# ASCII digits only: \d takes any script's digits.
_RELATIVE = re.compile(r"^now\s*(?:(?P<sign>[+-])\s*(?P<n>[0-9]+)\s*(?P<unit>[smhd]))?$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_HHMM = re.compile(r"^(?P<h>[01]?[0-9]|2[0-3]):(?P<m>[0-5][0-9])$")
#: The earliest and latest times a caller may give (a mailing's start and end).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
#: Names in the zone database that are no place's time: the host's own clock, a placeholder.
NOT_ZONES = frozenset({"localtime", "factory", "posixrules"})


@lru_cache(maxsize=1)
def _zones_by_folded_name() -> dict[str, str]:
    names = available_timezones()
    return {name.casefold(): name for name in names if name.casefold() not in NOT_ZONES}


def zone_names() -> list[str]:
    """Every zone name ``zone_name`` accepts, sorted (for shell completion)."""
    return sorted(_zones_by_folded_name().values())


@lru_cache(maxsize=1)
def _packaged_zones() -> frozenset[str]:
    """The names the tzdata package lists in one file: part of ``available_timezones()``,
    which reads this file too, then opens every file of the system's zone directories
    (tens of milliseconds, on every command: NOTIFY_DEFAULT_TIMEZONE is checked)."""
    try:
        import tzdata

        listing = Path(tzdata.__file__).with_name("zones").read_text(encoding="utf-8")
    except (ImportError, OSError, TypeError, ValueError):  # (no tzdata, or not as files)
        return frozenset()
    return frozenset(listing.split())


def zone_name(raw: str) -> str | None:
    """The IANA zone ``raw`` names (case corrected), or None for anything else.

    Only the zone database's place names: no "localtime", no file paths. Client input
    (``services.validation.timezone``) and settings (``config``) both go through here.
    """
    name = raw.strip()
    if name in _packaged_zones() and name.casefold() not in NOT_ZONES:
        return name  # spelled as the database spells it: the answer of the scan below
    return _zones_by_folded_name().get(name.casefold())


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime, *, field: str, default_tz: str = "UTC") -> datetime:
    """Return ``value`` in UTC; a naive value is read in ``default_tz``.

    Raises InvalidInput naming ``field`` for a time outside ``EARLIEST``..``LATEST``
    (among them those, like 0001-01-01T00:00+05:00, that have no UTC time at all).
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(default_tz))
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise InvalidInput(
            f"{value.isoformat()} is out of range: give a time between "
            f"{EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)",
            field=field,
        )
    return moment


def parse_datetime(text: str, *, field: str, default_tz: str = "UTC") -> datetime:
    """Parse ISO-8601 (``2026-12-01T09:00+03:00``) or ``now``/``now+15m`` into aware UTC."""
    cleaned = text.strip()
    match = _RELATIVE.match(cleaned.lower())
    if match:
        moment = utcnow().replace(microsecond=0)
        if match["n"]:
            try:
                delta = timedelta(**{_UNITS[match["unit"]]: int(match["n"])})
                moment = moment + delta if match["sign"] == "+" else moment - delta
            except (OverflowError, ValueError):  # (ValueError: more digits than int() takes)
                raise InvalidInput(f"{quoted(text)} is too far from now", field=field) from None
        return as_utc(moment, field=field)
    try:
        parsed = datetime.fromisoformat(cleaned.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{quoted(text)} is not an ISO-8601 datetime such as 2026-12-01T09:00+03:00"
            " (or now+10m)",
            field=field,
        ) from None
    return as_utc(parsed, field=field, default_tz=default_tz)


def parse_hhmm(text: str, *, field: str) -> time:
    """Parse ``HH:MM`` (24-hour clock)."""
    match = _HHMM.match(text.strip())
    if not match:
        raise InvalidInput(f"{quoted(text)} is not a time of day as HH:MM", field=field)
    return time(int(match["h"]), int(match["m"]))


_DURATION = re.compile(r"^(?P<n>[0-9]+)\s*(?P<unit>[smhd])?$")


def parse_duration(text: str) -> timedelta:
    """Parse a period such as ``365d``, ``12h``, ``30m`` or ``45s`` (``0`` needs no unit).

    Raises ValueError saying what is expected (settings report it with their variable).
    """
    match = _DURATION.match(text.strip().lower())
    if match is None or (match["unit"] is None and int(match["n"]) != 0):
        raise ValueError(
            f"{quoted(text)} is not a duration such as 365d, 12h, 30m or 45s (0: forever)"
        )
    if match["unit"] is None:
        return timedelta(0)
    try:
        return timedelta(**{_UNITS[match["unit"]]: int(match["n"])})
    except (OverflowError, ValueError):  # (ValueError: more digits than int() takes)
        raise ValueError(f"{quoted(text)} is longer than any calendar holds") from None
