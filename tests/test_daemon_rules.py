"""The delivery rules as tables: every branch of a message's fate, no server, no database."""

from datetime import UTC, datetime, timedelta

import pytest

from daemon import rules
from daemon.breaker import BreakerState
from daemon.retry import RetryPolicy, backoff
from daemon.rules import Decision, Failure, Fate
from daemon.sender import Transient, Unauthorized
from notifyctl.services.delivery import AttemptRecord, Claimed, MailingSnapshot

pytestmark = pytest.mark.clock

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


# --- the dispatcher keeps the breaker honest ----------------------------------------------


def dispatcher_with_open_breaker(monkeypatch, answer):
    """A dispatcher whose breaker is half-open, probing with a request that ends in ``answer``."""
    from loguru import logger

    from daemon.clock import SystemClock
    from daemon.dispatcher import Counters, Dispatcher
    from daemon.metrics import DaemonMetrics
    from notifyctl.config import Settings

    dispatcher = Dispatcher(
        settings=Settings(breaker_threshold=1),
        clock=SystemClock(wait_scale=0),
        counters=Counters(),
        metrics=DaemonMetrics(),
        log=logger,
        stopping=lambda: False,
    )

    async def deliver(*_args, attempts, **_kwargs):
        if answer is not None:
            attempts.append(AttemptRecord(started_at=NOW, duration_ms=1.0, http_status=401))
            raise answer
        raise Transient("no time left before the mailing ends or the claim runs out")

    monkeypatch.setattr(dispatcher.sender, "deliver", deliver)
    dispatcher.breaker.failure()
    monkeypatch.setattr(dispatcher.breaker, "_reopen_at", 0.0)
    return dispatcher


def claimed_message() -> Claimed:
    return Claimed(1, 1, 1, "79160000000", "UTC", 0, datetime.now(UTC) + timedelta(seconds=30))


@pytest.mark.parametrize(
    ("answer", "after"),
    [
        (Unauthorized("401: the API refused our token"), BreakerState.closed),
        (None, BreakerState.open),  # no request went out: the next message probes at once
    ],
)
def test_the_probes_outcome_never_leaves_the_breaker_half_open(monkeypatch, answer, after):
    import asyncio

    dispatcher = dispatcher_with_open_breaker(monkeypatch, answer)
    now = datetime.now(UTC)
    snapshot = mailing(start_at=now - timedelta(hours=1), end_at=now + timedelta(hours=1))
    outcome = asyncio.run(dispatcher.process(claimed_message(), snapshot))
    assert outcome.status == "pending"
    assert dispatcher.breaker.state is after
    if after is BreakerState.open:
        assert dispatcher.breaker.probe_due()


def test_a_timezone_unknown_to_this_host_fails_the_message_with_the_reason():
    decision = before(mailing(window=WINDOW), tz="America/Nowhere_Newer")
    assert decision == Decision(
        Fate.fail, reason="unknown timezone 'America/Nowhere_Newer' on this host"
    )


def test_a_failed_retry_of_a_cancelled_mailing_cancels_the_message():
    assert after(Failure.transient, m=mailing(cancelled=True)).fate is Fate.cancel


@pytest.mark.parametrize(
    ("took", "expected"),
    [(0.001, "ClientConnectorError: refused"), (9.95, "timed out after 10.000s")],
)
def test_a_refused_connection_is_not_reported_as_a_timeout(took, expected):
    import httpx

    from daemon.sender import _timeout_reason

    class ClientConnectorError(Exception):
        pass

    error = httpx.ConnectTimeout("mapped by httpx-aiohttp")
    error.__cause__ = ClientConnectorError("refused")
    assert _timeout_reason(error, 10.0, took) == expected


# --- the client's consent (opt-out) --------------------------------------------------------

OPTED_OUT = Decision(Fate.cancel, reason="opted out")


@pytest.mark.parametrize(
    ("case", "snapshot", "consent", "expected"),
    [
        ("given: send", mailing(), rules.Consent.given, Decision(Fate.send)),
        ("withdrawn: cancelled", mailing(), rules.Consent.withdrawn, OPTED_OUT),
        ("withdrawn, transactional: send", mailing(transactional=True), "withdrawn", Fate.send),
        ("unknown: back, due now", mailing(), rules.Consent.unknown, Decision(Fate.wait, at=NOW)),
        ("unknown, transactional: send", mailing(transactional=True), "unknown", Fate.send),
        ("withdrawn beats ended", mailing(end_at=NOW), rules.Consent.withdrawn, OPTED_OUT),
        ("withdrawn beats paused", mailing(paused=True), rules.Consent.withdrawn, OPTED_OUT),
        ("cancelled mailing beats withdrawn", mailing(cancelled=True), "withdrawn", Fate.cancel),
        (
            "unknown, window closed: waits for the window",
            mailing(window=("00:00", "00:01"), end_at=NOW + timedelta(days=1)),
            rules.Consent.unknown,
            Decision(Fate.wait, at=datetime(2027, 3, 15, tzinfo=UTC)),
        ),
    ],
)
def test_before_send_asks_the_clients_consent(case, snapshot, consent, expected):
    asked = []
    decision = rules.before_send(
        mailing=snapshot,
        timezone="UTC",
        now=NOW,
        lease_seconds_left=30,
        request_timeout=10,
        may_send=lambda: asked.append(1) or True,
        consent=rules.Consent(consent),
    )
    if isinstance(expected, Fate):
        assert decision.fate is expected, case
    else:
        assert decision == expected, case
    assert bool(asked) is (decision.fate is Fate.send), case  # no probe wasted


@pytest.mark.parametrize(
    ("case", "failure", "snapshot", "consent", "expected"),
    [
        ("withdrawn: cancelled", Failure.transient, mailing(), "withdrawn", OPTED_OUT),
        ("withdrawn beats a rejection", Failure.rejected, mailing(), "withdrawn", OPTED_OUT),
        ("withdrawn, deleted mailing", Failure.transient, None, "withdrawn", OPTED_OUT),
        (
            "withdrawn, transactional: retried",
            Failure.transient,
            mailing(transactional=True),
            "withdrawn",
            Decision(Fate.wait, at=NOW, reason="HTTP 503"),
        ),
        (
            "unknown: retried, its claim looks again",
            Failure.transient,
            mailing(),
            "unknown",
            Decision(Fate.wait, at=NOW, reason="HTTP 503"),
        ),
    ],
)
def test_after_failure_asks_the_clients_consent(case, failure, snapshot, consent, expected):
    decision = rules.after_failure(
        policy=NO_WAITS,
        failure=failure,
        reason="HTTP 503",
        attempts=1,
        mailing=snapshot,
        now=NOW,
        consent=rules.Consent(consent),
    )
    assert decision == expected, case
