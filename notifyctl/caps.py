"""The frequency cap's setting: at most ``count`` messages to one client per rolling
``period`` (``NOTIFY_FREQUENCY_CAP=3/24h``). How claims keep to it:
``notifyctl.services.frequency``."""

import re
from dataclasses import dataclass
from datetime import timedelta

from notifyctl.errors import quoted
from notifyctl.timeutil import parse_duration

#: the longest period: a rolling window reaching further back than any retention is moot,
#: and "now - period" must stay inside the calendar
LONGEST = timedelta(days=3650)
_CAP = re.compile(r"^(?P<count>[0-9]{1,9})\s*/\s*(?P<period>[0-9]+\s*[smhd])$")


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    count: int
    period: timedelta
    #: as the operator wrote it, normalised ("3/24h"): shown in messages held back
    text: str

    def __str__(self) -> str:
        return self.text


def parse_frequency_cap(text: str) -> FrequencyCap | None:
    """``3/24h`` (count / period with s, m, h or d); empty: no cap (None).

    Raises ValueError saying what is expected (settings report it with their variable).
    """
    cleaned = text.strip().lower()
    if not cleaned:
        return None
    match = _CAP.match(cleaned)
    expected = (
        f"{quoted(text)} is not a frequency cap such as 3/24h "
        "(messages / rolling period in s, m, h or d, up to 3650d; empty: no cap)"
    )
    if match is None:
        raise ValueError(expected)
    try:
        count, period = int(match["count"]), parse_duration(match["period"])
    except ValueError:
        raise ValueError(expected) from None
    if count < 1 or not timedelta(0) < period <= LONGEST:
        raise ValueError(expected)
    return FrequencyCap(count, period, f"{count}/{match['period'].replace(' ', '')}")
