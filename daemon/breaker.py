"""A circuit breaker: when the API keeps failing, all sending pauses and one probe tests it."""

import time
from enum import StrEnum

from loguru import logger

COOLDOWN_MIN = 1.0  # seconds the breaker stays open the first time
COOLDOWN_MAX = 30.0  # seconds: the cooldown doubles after each failed probe, up to this
PROBE_TIMEOUT = 60.0  # seconds after which a probe that never reported is taken as lost


class BreakerState(StrEnum):
    closed = "closed"  #: requests flow
    open = "open"  #: nothing is sent until the cooldown ends
    half_open = "half_open"  #: one probe request is out; its fate decides


class CircuitBreaker:
    """Opens after ``threshold`` consecutive transient failures; probes after a cooldown."""

    def __init__(self, threshold: int, *, monotonic=time.monotonic) -> None:
        self.threshold = threshold
        self.state = BreakerState.closed
        self.failures = 0
        self.openings = 0
        self._cooldown = COOLDOWN_MIN
        self._reopen_at = 0.0
        self._probe_since = 0.0
        self._monotonic = monotonic

    def allow(self) -> bool:
        """May a request start now? In half-open state only the one probe may.

        A probe that never reports (its request was not made after all, or a bug lost
        it) is taken as lost after PROBE_TIMEOUT: the breaker never waits for it forever.
        """
        if self.state is BreakerState.closed:
            return True
        now = self._monotonic()
        stale = self.state is BreakerState.half_open and now - self._probe_since > PROBE_TIMEOUT
        if (self.state is BreakerState.open and now >= self._reopen_at) or stale:
            self.state = BreakerState.half_open
            self._probe_since = now
            logger.info("circuit breaker half-open: probing the sending API")
            return True
        return False

    def probe_due(self) -> bool:
        """Should someone claim a message to serve as the probe (cooldown over, none out)?"""
        if self.state is BreakerState.open:
            return self._monotonic() >= self._reopen_at
        return (
            self.state is BreakerState.half_open
            and self._monotonic() - self._probe_since > PROBE_TIMEOUT
        )

    def no_answer(self) -> None:
        """The request allowed by ``allow()`` was not made: let the next one probe."""
        if self.state is BreakerState.half_open:
            self.state = BreakerState.open
            self._reopen_at = self._monotonic()

    def is_open(self) -> bool:
        return self.state is not BreakerState.closed

    def seconds_to_probe(self) -> float:
        return max(0.0, self._reopen_at - self._monotonic())

    def success(self) -> None:
        if self.state is not BreakerState.closed:
            logger.info("circuit breaker closed: the sending API answers again")
        self.state = BreakerState.closed
        self.failures = 0
        self._cooldown = COOLDOWN_MIN

    def failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.half_open:
            self._cooldown = min(COOLDOWN_MAX, self._cooldown * 2)
            self._open()
        elif self.state is BreakerState.closed and self.failures >= self.threshold:
            self._open()

    def _open(self) -> None:
        self.state = BreakerState.open
        self.openings += 1
        self._reopen_at = self._monotonic() + self._cooldown
        logger.warning(
            "circuit breaker open after {failures} consecutive failures: sending paused for "
            "{cooldown_s}s",
            failures=self.failures,
            cooldown_s=round(self._cooldown),
        )
