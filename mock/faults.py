"""The fault plan: how badly the mock behaves, changeable while it runs."""

import random
import time
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Outcome(StrEnum):
    ok = "ok"  #: 200 {"code": 0, "message": "OK"}
    error = "error"  #: 500, 502 or 503
    garbage = "garbage"  #: 200 with a broken or wrong body
    drop = "drop"  #: the connection closes without an answer


HOUR_MS = 3_600_000.0  # the longest delay: an answer later than that is a drop
YEAR_SECONDS = 366 * 86_400.0  # the longest outage
MAX_RATE = 1e9  # requests/s: beyond any load, and a bucket that float maths keeps exact


class Faults(BaseModel):
    """Fault settings as ``GET``/``PUT /v1/_faults`` show and take them (PUT: any subset).

    Every number is finite and bounded (NaN and infinity are refused, as JSON cannot show
    them and a sleep cannot end on them), and ``outage_at`` has a UTC time.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    latency_ms: float = Field(0.0, ge=0, le=HOUR_MS, description="fixed delay before answering")
    jitter_ms: float = Field(
        0.0, ge=0, le=HOUR_MS, description="extra random delay, uniform in 0..jitter"
    )
    error_rate: float = Field(0.0, ge=0, le=1, description="share answered 500/502/503")
    garbage_rate: float = Field(0.0, ge=0, le=1, description="share answered 200 with a bad body")
    drop_rate: float = Field(0.0, ge=0, le=1, description="share whose connection is dropped")
    rate_limit: float | None = Field(
        None, gt=0, le=MAX_RATE, description="requests/s above which 429 comes"
    )
    retry_after: float = Field(
        1.0, ge=0, le=86_400, description="seconds in the Retry-After header of a 429"
    )
    error_body_bytes: int = Field(
        0, ge=0, le=64 * 1024 * 1024, description="padding added to the body of 5xx/429 answers"
    )
    outage_seconds: float | None = Field(
        None,
        ge=0,
        le=YEAR_SECONDS,
        description="refuse everything (503) for this long from outage_at / now",
    )
    outage_at: datetime | None = Field(None, description="start of the outage (default: now)")

    @field_validator("outage_at")
    @classmethod
    def _has_a_utc_time(cls, value: datetime | None) -> datetime | None:
        """0001-01-01T00:00+05:00 is a datetime with no UTC time (nor a timestamp)."""
        if value is None:
            return None
        try:
            return value.astimezone(UTC)  # (a naive value is read in local time, as before)
        except (OverflowError, ValueError):
            raise ValueError("has no UTC time: it lies beyond the years 1-9999") from None


class FaultPlan:
    """The live plan: decides each request's fate."""

    def __init__(self, faults: Faults | None = None, *, seed: int | None = None) -> None:
        self.faults = Faults()
        self._rng = random.Random(seed)
        self._outage: tuple[float, float] | None = None
        self._tokens = 0.0
        self._refilled = time.monotonic()
        self._padding = b""
        if faults is not None:
            self.apply(faults)

    def apply(self, changes: Faults) -> None:
        """Take the fields that ``changes`` sets explicitly; the others stay as they are."""
        names = changes.model_fields_set
        self.faults = self.faults.model_copy(update={n: getattr(changes, n) for n in names})
        if "rate_limit" in names:
            self._tokens = self.faults.rate_limit or 0.0
        if names & {"outage_seconds", "outage_at"} and self.faults.outage_seconds is not None:
            at = self.faults.outage_at
            start = at.timestamp() if at is not None else time.time()
            self._outage = (start, start + self.faults.outage_seconds)
            self.faults = self.faults.model_copy(
                update={"outage_at": datetime.fromtimestamp(start, UTC)}
            )

    def in_outage(self, now: float) -> bool:
        return self._outage is not None and self._outage[0] <= now < self._outage[1]

    def over_rate(self) -> bool:
        """Token bucket: True when this request exceeds ``rate_limit``."""
        limit = self.faults.rate_limit
        if limit is None:
            return False
        now = time.monotonic()
        self._tokens = min(limit, self._tokens + (now - self._refilled) * limit)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return False
        return True

    def delay(self) -> float:
        """Seconds to wait before answering."""
        jitter = self._rng.uniform(0, self.faults.jitter_ms) if self.faults.jitter_ms else 0.0
        return (self.faults.latency_ms + jitter) / 1000.0

    def outcome(self) -> Outcome:
        roll = self._rng.random()
        for rate, outcome in (
            (self.faults.error_rate, Outcome.error),
            (self.faults.garbage_rate, Outcome.garbage),
            (self.faults.drop_rate, Outcome.drop),
        ):
            if roll < rate:
                return outcome
            roll -= rate
        return Outcome.ok

    def error_body(self, body: bytes) -> bytes:
        """``body`` padded with spaces to ``error_body_bytes`` (a huge answer, on demand)."""
        size = self.faults.error_body_bytes
        if size <= len(body):
            return body
        if len(self._padding) != size - len(body):
            self._padding = b" " * (size - len(body))
        return body + self._padding

    def pick(self, options):
        return self._rng.choice(options)
