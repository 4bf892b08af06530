"""One claimed message's journey: the rules decide, the sender tries, an outcome results.

The dispatcher also holds what all messages share: the circuit breaker, whether the API
refused our token, the retry policy and the counters. The worker's senders call
``process`` for each message they take off the queue.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from daemon import rules
from daemon.breaker import CircuitBreaker
from daemon.clock import SystemClock
from daemon.metrics import DaemonMetrics
from daemon.optouts import OptOutView
from daemon.retry import RetryPolicy
from daemon.rules import Consent, Decision, Fate
from daemon.sender import Rejected, Sender, SendError, Unauthorized
from daemon.tracelog import MessageLog
from notifyctl.config import Settings
from notifyctl.models import MessageStatus
from notifyctl.services.delivery import AttemptRecord, Claimed, MailingSnapshot, Outcome

AUTH_PROBE_INTERVAL = 30.0  # seconds between tries after the API refused our token

#: the status an outcome records for each fate
_FATE_STATUS = {
    Fate.wait: MessageStatus.pending,
    Fate.fail: MessageStatus.failed,
    Fate.expire: MessageStatus.expired,
    Fate.cancel: MessageStatus.cancelled,
}


@dataclass
class Counters:
    """What this daemon did, for logs, ``--burst`` summaries and benchmarks."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    expired: int = 0
    released: int = 0
    cancelled: int = 0
    requests: int = 0
    leases_taken_over: int = 0
    dropped: int = 0
    restarts: int = 0
    activated: int = 0  #: mailings activated (a count: the counters are logged whole)


class _LazyLog:
    """Binds a message's ids to the logger only when a line is actually written.

    Binding costs microseconds, and most messages are sent without a single log line.
    """

    def __init__(self, log, claimed: Claimed) -> None:
        self._log, self._claimed = log, claimed

    def __getattr__(self, level: str):
        claimed = self._claimed
        bound = self._log.bind(
            message_id=claimed.id, mailing_id=claimed.mailing_id, client_id=claimed.client_id
        )
        return getattr(bound, level)


class _MessageLines:
    """A message's lines into the daemon's ``MessageLog``, in loguru's calling style."""

    def __init__(self, lines: MessageLog, claimed: Claimed) -> None:
        self._lines, self._ids = lines, _ids(claimed)

    def info(self, template: str, **fields) -> None:
        # (the templates are literals of ours; the values are data, as with loguru)
        self._lines.add(self._ids, template.format(**fields), fields)


def _ids(claimed: Claimed) -> dict[str, int]:
    """A message's ids, in the order a text line shows them (``notifyctl.logs.ID_KEYS``)."""
    return {
        "mailing_id": claimed.mailing_id,
        "message_id": claimed.id,
        "client_id": claimed.client_id,
    }


class Dispatcher:
    """Decides, sends and counts.

    ``stopping()`` says the daemon drains (no new request starts); ``snapshot(mailing_id)``
    is the mailing's state as last read, so that a retry stops once it is cancelled or
    paused. With ``lines``, every line about one message goes there (``daemon.tracelog``).
    ``optouts`` knows which clients opted out since their message was claimed; without
    it every client consents.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        clock: SystemClock,
        counters: Counters,
        metrics: DaemonMetrics,
        log,
        stopping: Callable[[], bool],
        snapshot: Callable[[int], MailingSnapshot | None] = lambda _id: None,
        lines: MessageLog | None = None,
        optouts: OptOutView | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.counters = counters
        self.metrics = metrics
        self.log = log
        self._stopping = stopping
        self._snapshot = snapshot
        self.lines = lines
        self.optouts = optouts
        self.policy = RetryPolicy.from_settings(settings, wait_scale=clock.wait_scale)
        self.breaker = CircuitBreaker(settings.breaker_threshold)
        self.sender = Sender(settings, clock=clock, policy=self.policy)
        self._auth_blocked_until = 0.0

    async def aclose(self) -> None:
        await self.sender.aclose()

    # --- the API's state -------------------------------------------------------------

    def held(self) -> bool:
        """Is all sending held: the circuit breaker open, or our token refused?"""
        return self.breaker.is_open() or self._token_blocked()

    def may_try(self) -> bool:
        """May a request start now (token not refused, breaker closed or probing, running)?"""
        if self._stopping() or self._token_blocked():
            return False
        return self.breaker.allow()

    def _token_blocked(self) -> bool:
        return time.monotonic() < self._auth_blocked_until

    def _token_refused(self) -> None:
        if self._token_blocked():
            return  # said already
        self._auth_blocked_until = time.monotonic() + AUTH_PROBE_INTERVAL
        self.log.error(
            "the sending API refused our token (401): check NOTIFY_SENDER_TOKEN. Sending "
            "stopped, messages stay pending; trying again in {retry_in_s}s",
            retry_in_s=round(AUTH_PROBE_INTERVAL),
        )

    def _consent(self, claimed: Claimed, mailing: MailingSnapshot | None) -> Consent:
        """The client's consent to ``claimed`` as known now; a transactional mailing needs none."""
        if self.optouts is None or mailing is None or mailing.transactional:
            return Consent.given  # (a message of a deleted mailing is cancelled anyway)
        return self.optouts.consent(claimed)

    def _still_on(self, mailing_id: int) -> bool:
        """Neither cancelled nor paused since the message was claimed?"""
        current = self._snapshot(mailing_id)
        return current is None or not (current.cancelled or current.paused)

    # --- one message -----------------------------------------------------------------

    async def process(self, claimed: Claimed, mailing: MailingSnapshot | None) -> Outcome:
        """Send ``claimed`` if the rules allow; the outcome to record, counted."""
        consent = self._consent(claimed, mailing)
        if consent is Consent.unknown:  # (a slow claim, or look-ups failing: wait for one)
            consent = await self.optouts.settle(claimed)
        decision = rules.before_send(
            mailing=mailing,
            timezone=claimed.timezone,
            now=self.clock.now(),
            lease_seconds_left=self.clock.seconds_until(claimed.lease_until),
            request_timeout=self.settings.request_timeout,
            may_send=self.may_try,
            consent=consent,
        )
        if decision.fate is not Fate.send:
            return self.outcome(claimed, decision)

        def consents() -> bool:
            current = self._snapshot(claimed.mailing_id) or mailing
            return self._consent(claimed, current) is Consent.given

        attempts = []
        try:
            await self.sender.deliver(
                claimed.id,
                claimed.phone,
                mailing.text,
                deadline=rules.deadline(mailing),
                lease_until=claimed.lease_until,
                attempts=attempts,
                earlier_attempts=claimed.attempts,
                # (the mailing and the client first: asking the breaker may make this
                # the probe)
                may_try=lambda: (
                    self._still_on(claimed.mailing_id) and consents() and self.may_try()
                ),
                still_wanted=consents,
                log=self._message_log(claimed),
            )
        except SendError as exc:
            self.counters.requests += len(attempts)
            if not attempts:
                self.breaker.no_answer()  # no request went out: it proved nothing
            elif isinstance(exc, Unauthorized):
                self.breaker.success()  # the API answers: it is up, our token is not
                self._token_refused()
            elif isinstance(exc, Rejected):
                self.breaker.success()  # the API answers: it is up
                self._message_log(claimed).info("rejected by the API: {reason}", reason=exc.reason)
            else:
                for attempt in attempts:
                    if attempt.error:
                        self.breaker.failure()
            current = self._snapshot(claimed.mailing_id) or mailing
            decision = rules.after_failure(
                policy=self.policy,
                failure=exc.failure,
                reason=exc.reason,
                attempts=claimed.attempts + len(attempts),
                mailing=current,
                now=self.clock.now(),
                retry_after=exc.retry_after,
                speed=self.clock.speed,
                consent=self._consent(claimed, current),
            )
            return self.outcome(claimed, decision, attempts)
        self.breaker.success()
        self.counters.requests += len(attempts)
        self.counters.sent += 1
        return Outcome(
            claimed.id,
            MessageStatus.sent,
            attempts,
            sent_at=self.clock.now(),
            mailing_id=claimed.mailing_id,
        )

    def outcome(self, claimed: Claimed, decision: Decision, attempts=None) -> Outcome:
        """The outcome that records ``decision``, counted."""
        attempts = attempts or []
        if decision.fate is Fate.wait:
            if attempts:
                self.counters.retried += 1
            else:
                self.counters.released += 1
        elif decision.fate is Fate.fail:
            self.counters.failed += 1
        elif decision.fate is Fate.expire:
            self.counters.expired += 1
        elif decision.fate is Fate.cancel:
            self.counters.cancelled += 1
        return Outcome(
            claimed.id,
            _FATE_STATUS[decision.fate],
            attempts,
            next_attempt_at=decision.at if decision.fate is Fate.wait else None,
            last_error=decision.reason,
            mailing_id=claimed.mailing_id,
        )

    def _message_log(self, claimed: Claimed):
        """Where lines about ``claimed`` go: the message log, or loguru when there is none."""
        if self.lines is not None:
            return _MessageLines(self.lines, claimed)
        return _LazyLog(self.log, claimed)

    def trace(self, claimed: Claimed, outcome: Outcome) -> None:
        """Log each request of the message with its answer, then the message's new status
        (into ``lines``, which must be set).

        Each value is a field of its own (``http_status``, ``body``, ``error``, ``reason``
        …); the message is the sentence a person reads.
        """
        lines, ids = self.lines, _ids(claimed)
        for number, attempt in enumerate(outcome.attempts, claimed.attempts + 1):
            _log_request(
                lines,
                ids,
                number=number,
                url=f"{self.settings.sender_url}/{claimed.id}",
                attempt=attempt,
            )
        status, reason = outcome.status.value, outcome.last_error
        if outcome.status == MessageStatus.pending:
            when = outcome.next_attempt_at.isoformat() if outcome.next_attempt_at else "now"
            fields = {"status": status, "next_attempt_at": when}
            message = f"status sending -> {status}, next attempt at {when}"
            if reason:
                fields["reason"] = reason
                message += f" ({reason})"
        else:
            fields = {"status": status}
            message = f"status sending -> {status}"
            if reason:
                fields["reason"] = reason
                message += f": {reason}"
        lines.add(ids, message, fields)


def _log_request(
    lines: MessageLog, ids: dict[str, int], *, number: int, url: str, attempt: AttemptRecord
) -> None:
    """One request's line: ``attempt``, ``http_status``, ``duration_ms``, ``body`` and
    ``error`` as fields, holding values only; the sentence quotes the body and the error."""
    excerpt, error = attempt.response_excerpt, attempt.error
    fields: dict[str, object] = {"attempt": number, "duration_ms": round(attempt.duration_ms, 1)}
    if attempt.http_status is not None:
        fields["http_status"] = attempt.http_status
        answer = f"HTTP {attempt.http_status}"
    else:
        answer = "no answer"
    message = f"request {number}: POST {url} -> {answer} in {attempt.duration_ms:.1f} ms"
    if excerpt:
        fields["body"] = excerpt
        message += f", body {excerpt!r}"
    if error:
        fields["error"] = error
        message += f", error: {error}"
    lines.add(ids, message, fields)
