"""The one retry policy: which failures are retried, and how long to wait before each try.

Used by the sender (quick retries inside one claim), by the rules (rescheduling a message
for later) and by the report mailer (SMTP). Jittered exponential backoff ("full jitter"):
the n-th pause is uniform in ``[0, min(cap, base * 2**(n-1))]``, so that thousands of
messages failing together do not come back together. Model: hynek/stamina.
"""

import random
from dataclasses import dataclass

QUICK_TRIES = 3  # requests inside one claim before the message is rescheduled
QUICK_BASE = 0.1  # seconds: base of the quick retries' backoff
QUICK_CAP = 2.0  # seconds: the longest quick-retry pause; a longer Retry-After releases
RESCHEDULE_BASE = 1.0  # seconds: base of the backoff between claims


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempt``-th failure (1 = the first): full jitter."""
    ceiling = min(cap, base * 2 ** min(max(attempt, 1) - 1, 62))
    return (rng or random).uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long a message is tried (from the settings)."""

    #: attempts over the message's whole life, after which it fails
    max_attempts: int = 20
    #: seconds: the longest pause before a rescheduled attempt
    backoff_max: float = 60.0
    quick_tries: int = QUICK_TRIES
    quick_base: float = QUICK_BASE
    quick_cap: float = QUICK_CAP
    #: factor on every backoff pause (the clock's: 0 in tests); a Retry-After is never scaled
    wait_scale: float = 1.0

    def quick_pause(self, failures: int, retry_after: float | None = None) -> float | None:
        """Seconds before the next quick retry after ``failures`` failed tries in this claim,
        or None when the message should be given back instead (budget spent, or the API
        asks for a longer pause than a claim may sleep through)."""
        if failures >= self.quick_tries:
            return None
        if retry_after is not None and retry_after > self.quick_cap:
            return None
        pause = backoff(failures, base=self.quick_base, cap=self.quick_cap) * self.wait_scale
        return max(pause, retry_after or 0.0)

    def reschedule_pause(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before the message is claimed again, after ``attempts`` in its life;
        never shorter than the API's ``Retry-After``."""
        pause = backoff(attempts, base=RESCHEDULE_BASE, cap=self.backoff_max) * self.wait_scale
        return max(pause, retry_after or 0.0)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

    @classmethod
    def from_settings(cls, settings, *, wait_scale: float = 1.0) -> "RetryPolicy":
        return cls(
            max_attempts=settings.max_attempts,
            backoff_max=settings.retry_backoff_max,
            wait_scale=wait_scale,
        )


def mail_policy(*, wait_scale: float = 1.0) -> RetryPolicy:
    """The report mailer's tries: three, with pauses of up to 30 s."""
    return RetryPolicy(
        max_attempts=3, quick_tries=3, quick_base=1.0, quick_cap=30.0, wait_scale=wait_scale
    )
