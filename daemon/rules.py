"""The delivery rules in one place: what becomes of a claimed message, before and after a try.

Pure functions of the message, its mailing's snapshot, what the API answered and ``now``:
no database, no network, no clock of their own, so the table tests in
``tests/test_daemon_rules.py`` cover every branch in milliseconds. Model: procrastinate's
``retry.py`` (``get_retry_decision``).

The rules (DESIGN.md section 3):

- a message of a cancelled or deleted mailing is cancelled, and so is one whose client
  opted out (unless its mailing is transactional);
- a message whose client's consent is not known recently enough (``daemon.optouts``) is
  given back rather than sent;
- nothing starts within ``END_MARGIN`` of the mailing's end: the message expires;
- a paused mailing's messages, and any while sending is held (circuit breaker open, our
  token refused), are given back untouched;
- with a send window, a message waits for the next opening in its client's timezone, or
  expires when none comes before the end;
- a claim is never held past its lease: with too little lease left for one request, the
  message is given back, and quick retries stop where the lease would run out;
- a transient failure is retried quickly a few times, then rescheduled with backoff (never
  sooner than the API's ``Retry-After``), until ``max_attempts`` (failed) or the end
  (expired); a rejection fails the message; a refused token (401) gives it back.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfoNotFoundError

from daemon import windows
from daemon.retry import RetryPolicy
from notifyctl.services.delivery import MailingSnapshot
from notifyctl.services.optout import OPTED_OUT

END_MARGIN = timedelta(milliseconds=50)  # no request starts this close to end_at
MIN_REQUEST_SECONDS = 0.05  # no request starts with less time than this before a limit
LEASE_MARGIN = 1.0  # seconds of lease kept spare after a request's longest possible end


class Fate(StrEnum):
    send = "send"  #: make the request now
    wait = "wait"  #: give it back as pending, due again at ``at``
    fail = "fail"  #: final: failed
    expire = "expire"  #: final: expired (the end came first)
    cancel = "cancel"  #: final: cancelled


class Failure(StrEnum):
    transient = "transient"  #: timeout, connection error, 5xx, 408, 429, malformed body
    rejected = "rejected"  #: the API refused this message (4xx, non-zero code)
    unauthorized = "unauthorized"  #: 401: our token is wrong, no message can go out


class Consent(StrEnum):
    """What the daemon knows of a claimed message's client (``daemon.optouts``)."""

    given = "given"  #: not opted out as of a recent look (or a transactional mailing)
    withdrawn = "withdrawn"  #: opted out
    unknown = "unknown"  #: not looked at recently enough to send on


@dataclass(frozen=True, slots=True)
class Decision:
    fate: Fate
    #: when a ``wait``-ing message is due again
    at: datetime | None = None
    reason: str | None = None


SEND = Decision(Fate.send)


def deadline(mailing: MailingSnapshot) -> datetime:
    """The last moment a request may start."""
    return mailing.end_at - END_MARGIN


def window_decision(
    *, start: str, end: str, timezone: str, now: datetime, end_at: datetime
) -> Decision:
    """Send now, wait for the window's next opening, or expire when none comes in time.

    A timezone this host's zone data does not know (the client's was checked where it
    was entered, perhaps with newer data) fails the message with that reason.
    """
    try:
        opening = windows.next_opening(now, tz=timezone, start=start, end=end)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # (OSError: "America", a folder)
        return Decision(Fate.fail, reason=f"unknown timezone {timezone!r} on this host")
    if opening >= end_at - END_MARGIN:
        return Decision(Fate.expire, reason="no window before the end")
    if opening > now:
        return Decision(Fate.wait, at=opening)
    return SEND


def before_send(
    *,
    mailing: MailingSnapshot | None,
    timezone: str,
    now: datetime,
    lease_seconds_left: float,
    request_timeout: float,
    may_send: Callable[[], bool] = lambda: True,
    consent: Consent = Consent.given,
) -> Decision:
    """The fate of a claimed message just before its request.

    ``consent`` is its client's, as this daemon knows it; a transactional mailing needs
    none. ``may_send`` (the circuit breaker and the token's state) is asked last, and
    only when everything else says send: asking it may make this message the breaker's
    probe.
    """
    if mailing is None or mailing.cancelled:
        return Decision(Fate.cancel, reason="the mailing was cancelled")
    if consent is Consent.withdrawn and not mailing.transactional:
        return Decision(Fate.cancel, reason=OPTED_OUT)
    limit = deadline(mailing)
    if now >= limit:
        return Decision(Fate.expire, reason="the mailing ended")
    if mailing.paused:
        return Decision(Fate.wait, at=now)
    if mailing.window:
        decision = window_decision(
            start=mailing.window[0],
            end=mailing.window[1],
            timezone=timezone,
            now=now,
            end_at=mailing.end_at,
        )
        if decision.fate is not Fate.send:
            return decision
    if consent is Consent.unknown and not mailing.transactional:
        return Decision(Fate.wait, at=now)  # claimed afresh, it is looked at again
    longest = min(request_timeout, (limit - now).total_seconds())
    if lease_seconds_left < longest + LEASE_MARGIN:
        return Decision(Fate.wait, at=now)  # too little lease left: claim it afresh
    if not may_send():
        return Decision(Fate.wait, at=now)
    return SEND


def quick_retry_pause(
    *,
    policy: RetryPolicy,
    failures: int,
    attempts: int,
    retry_after: float | None,
    seconds_to_deadline: float,
    lease_seconds_left: float,
    request_timeout: float,
) -> float | None:
    """Seconds to wait before retrying within the claim, or None to give the message back.

    ``failures`` counts this claim's failed tries, ``attempts`` the message's whole life.
    A retry must not pass ``max_attempts``, must start before the deadline, and must end
    (at its longest) before the lease runs out; a ``Retry-After`` longer than the
    quick-retry cap is never slept through while holding the claim.
    """
    if policy.exhausted(attempts):
        return None
    pause = policy.quick_pause(failures, retry_after)
    if pause is None:
        return None
    if seconds_to_deadline - pause < MIN_REQUEST_SECONDS:
        return None
    longest = min(request_timeout, seconds_to_deadline - pause)
    if lease_seconds_left - pause < longest + LEASE_MARGIN:
        return None
    return pause


def after_failure(
    *,
    policy: RetryPolicy,
    failure: Failure,
    reason: str,
    attempts: int,
    mailing: MailingSnapshot | None,
    now: datetime,
    retry_after: float | None = None,
    speed: float = 1.0,
    consent: Consent = Consent.given,
) -> Decision:
    """The fate of a message whose last try failed; ``attempts`` counts its whole life.

    ``speed`` is the clock's: clock seconds per real second of waiting.
    """
    if mailing is not None and mailing.cancelled:
        return Decision(Fate.cancel, reason="the mailing was cancelled")
    if consent is Consent.withdrawn and not (mailing is not None and mailing.transactional):
        return Decision(Fate.cancel, reason=OPTED_OUT)
    if failure is Failure.rejected:
        return Decision(Fate.fail, reason=reason)
    if failure is Failure.unauthorized:
        return Decision(Fate.wait, at=now, reason=reason)
    if policy.exhausted(attempts):
        return Decision(Fate.fail, reason=f"{reason} (gave up after {attempts} attempts)")
    pause = policy.reschedule_pause(attempts, retry_after)
    at = now + timedelta(seconds=pause * speed)
    if mailing is not None and at >= deadline(mailing):
        return Decision(Fate.expire, reason=reason)
    return Decision(Fate.wait, at=at, reason=reason)
