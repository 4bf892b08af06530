"""Time as the daemon sees it: one object, so that tests have one switch for time.

``now()`` is the clock's time, ``sleep()`` sleeps that clock's seconds, and ``wait_scale``
multiplies every retry pause (0 in tests: retries without waiting, as stamina's testing
mode). ``ScaledClock`` runs faster than real time, to live a day in seconds.
"""

import asyncio
import time
from datetime import UTC, datetime, timedelta


class SystemClock:
    """The real time."""

    speed = 1.0

    def __init__(self, *, wait_scale: float = 1.0) -> None:
        #: factor on every retry pause (quick retries, rescheduling, the report's SMTP tries)
        self.wait_scale = wait_scale

    def now(self) -> datetime:
        return datetime.now(UTC)

    def seconds_until(self, moment: datetime) -> float:
        """Real seconds until ``moment`` (negative when it has passed)."""
        return (moment - self.now()).total_seconds()

    def after(self, seconds: float) -> datetime:
        """The clock's time ``seconds`` of real time from now."""
        return self.now() + timedelta(seconds=seconds * self.speed)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of real time."""
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock(SystemClock):
    """A clock that starts at ``start`` and runs ``speed`` times faster than real time."""

    def __init__(self, start: datetime, *, speed: float = 1.0, wait_scale: float = 1.0) -> None:
        super().__init__(wait_scale=wait_scale)
        self.start = start
        self.speed = speed
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._origin) * self.speed)

    def seconds_until(self, moment: datetime) -> float:
        return (moment - self.now()).total_seconds() / self.speed
