"""Time as the daemon sees it; tests pass a clock that runs faster, to live a day in seconds."""

import asyncio
import time
from datetime import UTC, datetime, timedelta


class SystemClock:
    """The real time."""

    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def seconds_until(self, moment: datetime) -> float:
        """Real seconds until ``moment`` (negative when it has passed)."""
        return (moment - self.now()).total_seconds()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock(SystemClock):
    """A clock that starts at ``start`` and runs ``speed`` times faster than real time."""

    def __init__(self, start: datetime, *, speed: float = 1.0) -> None:
        self.start = start
        self.speed = speed
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._origin) * self.speed)

    def seconds_until(self, moment: datetime) -> float:
        return (moment - self.now()).total_seconds() / self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds / self.speed))
