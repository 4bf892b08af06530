"""The delivery rules as tables: every branch of a message's fate, no server, no database."""

from datetime import UTC, datetime, timedelta

import pytest

from daemon import rules
from daemon.retry import RetryPolicy, backoff
from daemon.rules import Decision, Failure, Fate
from notifyctl.services.delivery import MailingSnapshot

NOW = datetime(2027, 3, 14, 12, 0, tzinfo=UTC)
NO_WAITS = RetryPolicy(max_attempts=5, backoff_max=60.0, wait_scale=0.0)


def mailing(**changes) -> MailingSnapshot:
    values = {
        "id": 1,
        "text": "Hello",
        "start_at": NOW - timedelta(hours=1),
        "end_at": NOW + timedelta(hours=1),
        "window": None,
        "paused": False,
        "cancelled": False,
    } | changes
    return MailingSnapshot(**values)


def before(m, *, tz="UTC", now=NOW, lease=30.0, timeout=10.0, may_send=True) -> Decision:
    return rules.before_send(
        mailing=m,
        timezone=tz,
        now=now,
        lease_seconds_left=lease,
        request_timeout=timeout,
        may_send=lambda: may_send,
    )


# --- before the request ------------------------------------------------------------------

ENDED = NOW + timedelta(milliseconds=30)  # inside the 50 ms end margin


@pytest.mark.parametrize(
    ("case", "snapshot", "kwargs", "expected"),
    [
        ("running: send", mailing(), {}, Decision(Fate.send)),
        ("deleted mailing", None, {}, Decision(Fate.cancel, reason="the mailing was cancelled")),
        ("cancelled", mailing(cancelled=True), {}, Fate.cancel),
        ("at the end", mailing(end_at=NOW), {}, Decision(Fate.expire, reason="the mailing ended")),
        ("within 50 ms of the end", mailing(end_at=ENDED), {}, Fate.expire),
        ("cancelled beats ended", mailing(end_at=NOW, cancelled=True), {}, Fate.cancel),
        ("paused: back, due now", mailing(paused=True), {}, Decision(Fate.wait, at=NOW)),
        ("ended beats paused", mailing(end_at=NOW, paused=True), {}, Fate.expire),
        ("breaker open: back", mailing(), {"may_send": False}, Decision(Fate.wait, at=NOW)),
        ("lease nearly over: back", mailing(), {"lease": 10.5}, Decision(Fate.wait, at=NOW)),
        ("lease enough for a request", mailing(), {"lease": 11.5}, Fate.send),
        # The request is capped at the time left, so a short lease suffices near the end.
        (
            "lease short, end near",
            mailing(end_at=NOW + timedelta(seconds=2)),
            {"lease": 3.5},
            Fate.send,
        ),
    ],
)
def test_before_send(case, snapshot, kwargs, expected):
    decision = before(snapshot, **kwargs)
    if isinstance(expected, Fate):
        assert decision.fate is expected, case
    else:
        assert decision == expected, case


def test_the_breaker_is_asked_last_so_no_probe_is_wasted():
    asked = []
    rules.before_send(
        mailing=mailing(paused=True),
        timezone="UTC",
        now=NOW,
        lease_seconds_left=30,
        request_timeout=10,
        may_send=lambda: asked.append(1) or True,
    )
    assert asked == []


WINDOW = ("09:00", "18:00")


@pytest.mark.parametrize(
    ("case", "tz", "now", "end_at", "expected"),
    [
        ("inside the window", "UTC", NOW, NOW + timedelta(hours=1), Decision(Fate.send)),
        (
            "before it opens: wait for 09:00 local",
            "Asia/Tokyo",  # 21:00 there
            NOW,
            NOW + timedelta(days=1),
            Decision(Fate.wait, at=datetime(2027, 3, 15, 0, 0, tzinfo=UTC)),
        ),
        (
            "no opening before the end: expire",
            "Asia/Tokyo",
            NOW,
            NOW + timedelta(hours=2),
            Decision(Fate.expire, reason="no window before the end"),
        ),
        (
            "opening exactly at the end margin: expire",
            "Asia/Tokyo",
            NOW,
            datetime(2027, 3, 15, 0, 0, 0, 40_000, tzinfo=UTC),
            Fate.expire,
        ),
        (
            # 2027-03-14 is the US change: New York is UTC-4 from 02:00 local, so 09:00
            # local is 13:00 UTC, not 14:00.
            "DST day in New York",
            "America/New_York",
            datetime(2027, 3, 14, 7, 0, tzinfo=UTC),
            NOW + timedelta(days=1),
            Decision(Fate.wait, at=datetime(2027, 3, 14, 13, 0, tzinfo=UTC)),
        ),
    ],
)
def test_windows(case, tz, now, end_at, expected):
    decision = before(mailing(window=WINDOW, end_at=end_at), tz=tz, now=now)
    if isinstance(expected, Fate):
        assert decision.fate is expected, case
    else:
        assert decision == expected, case


def test_a_window_wrapping_midnight_is_open_after_midnight():
    late = datetime(2027, 3, 14, 1, 0, tzinfo=UTC)
    snapshot = mailing(window=("22:00", "06:00"), start_at=late, end_at=late + timedelta(hours=3))
    assert before(snapshot, now=late).fate is Fate.send


# --- after a failure ---------------------------------------------------------------------


def after(failure, *, attempts=1, retry_after=None, m=None, policy=NO_WAITS, speed=1.0):
    return rules.after_failure(
        policy=policy,
        failure=failure,
        reason="HTTP 503",
        attempts=attempts,
        mailing=m if m is not None else mailing(),
        now=NOW,
        retry_after=retry_after,
        speed=speed,
    )


@pytest.mark.parametrize(
    ("case", "kwargs", "expected"),
    [
        (
            "rejected (4xx): failed",
            {"failure": Failure.rejected},
            Decision(Fate.fail, reason="HTTP 503"),
        ),
        (
            "401: back, due now",
            {"failure": Failure.unauthorized},
            Decision(Fate.wait, at=NOW, reason="HTTP 503"),
        ),
        (
            "transient: retry now (no waits)",
            {"failure": Failure.transient},
            Decision(Fate.wait, at=NOW, reason="HTTP 503"),
        ),
        (
            "transient, attempts used up: failed",
            {"failure": Failure.transient, "attempts": 5},
            Decision(Fate.fail, reason="HTTP 503 (gave up after 5 attempts)"),
        ),
        (
            "Retry-After 40 s: due then, not sooner",
            {"failure": Failure.transient, "retry_after": 40.0},
            Decision(Fate.wait, at=NOW + timedelta(seconds=40), reason="HTTP 503"),
        ),
        (
            "Retry-After past the end: expired",
            {"failure": Failure.transient, "retry_after": 3600.0},
            Decision(Fate.expire, reason="HTTP 503"),
        ),
        (
            "Retry-After on a fast clock",
            {"failure": Failure.transient, "retry_after": 2.0, "speed": 60.0},
            Decision(Fate.wait, at=NOW + timedelta(seconds=120), reason="HTTP 503"),
        ),
    ],
)
def test_after_failure(case, kwargs, expected):
    assert after(**kwargs) == expected, case


def test_backoff_grows_is_jittered_and_capped():
    policy = RetryPolicy(max_attempts=100, backoff_max=60.0)
    for attempts in (1, 3, 6, 10, 50):
        ceiling = min(60.0, 2 ** (attempts - 1))
        pauses = [policy.reschedule_pause(attempts) for _ in range(200)]
        assert all(0 <= p <= ceiling for p in pauses)
        assert len(set(pauses)) > 100  # jittered, not one fixed value
    decision = after(Failure.transient, attempts=50, policy=policy)
    assert NOW <= decision.at <= NOW + timedelta(seconds=60)


def test_backoff_past_the_end_expires_rather_than_waits():
    policy = RetryPolicy(max_attempts=100, backoff_max=3600.0)
    short = mailing(end_at=NOW + timedelta(seconds=1))
    fates = {after(Failure.transient, attempts=30, policy=policy, m=short).fate for _ in range(50)}
    assert fates == {Fate.expire}


def test_backoff_is_exponential_full_jitter():
    assert backoff(1, base=1.0, cap=60.0) <= 1.0
    assert backoff(100_000, base=1.0, cap=60.0) <= 60.0  # no overflow on huge counts


# --- quick retries inside one claim ------------------------------------------------------


def quick(**changes) -> float | None:
    values = {
        "policy": RetryPolicy(max_attempts=20, wait_scale=1.0),
        "failures": 1,
        "attempts": 1,
        "retry_after": None,
        "seconds_to_deadline": 3600.0,
        "lease_seconds_left": 30.0,
        "request_timeout": 10.0,
    } | changes
    return rules.quick_retry_pause(**values)


@pytest.mark.parametrize(
    ("case", "changes", "retries"),
    [
        ("first failure: retry", {}, True),
        ("quick budget spent", {"failures": 3}, False),
        ("max_attempts reached", {"attempts": 20}, False),
        ("Retry-After within the quick cap", {"retry_after": 1.5}, True),
        ("Retry-After beyond the quick cap: give back", {"retry_after": 40.0}, False),
        ("no time left before the end", {"seconds_to_deadline": 0.01}, False),
        ("the next request could outlive the lease", {"lease_seconds_left": 11.0}, False),
        (
            "a short request near the end fits the lease",
            {"lease_seconds_left": 4.5, "seconds_to_deadline": 2.0},
            True,
        ),
    ],
)
def test_quick_retries(case, changes, retries):
    assert (quick(**changes) is not None) is retries, case


def test_a_quick_retry_waits_at_least_retry_after():
    assert quick(retry_after=1.5) >= 1.5
