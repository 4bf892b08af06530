"""The sending loop: claim due messages, send them, record what happened, keep house.

One asyncio loop per daemon. Database work runs in threads (``asyncio.to_thread``) so
that requests keep flowing while rows are written. Tasks:

- the claimer takes batches of due messages (leases) while there is room in flight;
- ``concurrency`` senders each take one message at a time and deliver it;
- the recorder writes outcomes in batches every few milliseconds;
- the housekeeper runs the ``schedule`` jobs: activation, mailing snapshots, expiry and
  completion, lease reaping.
"""

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import schedule
from loguru import logger
from sqlalchemy.engine import Engine

from daemon import windows
from daemon.breaker import BreakerState, CircuitBreaker
from daemon.clock import SystemClock
from daemon.mailer import MailError, send_report
from daemon.metrics import DaemonMetrics
from daemon.sender import Rejected, Sender, SendError, Transient, Unauthorized, backoff
from notifyctl.config import Settings
from notifyctl.db import session_scope
from notifyctl.logs import writes
from notifyctl.models import MessageStatus
from notifyctl.services import delivery, report
from notifyctl.services.delivery import Claimed, MailingSnapshot, Outcome

CLAIM_BATCH = 500  # messages per claim, at most
IDLE_POLL = 0.1  # seconds between claims while nothing is due
CLAIM_RETRY = 1.0  # seconds before claiming again after the database failed
RECORD_INTERVAL = 0.05  # seconds between writes of outcomes
SNAPSHOT_INTERVAL = 0.5  # seconds between refreshes of the mailings' state
ACTIVATE_INTERVAL = 0.25  # seconds between looks for mailings whose start has come
EXPIRE_INTERVAL = 0.5  # seconds between expiry/completion passes
REAP_INTERVAL = 5.0  # seconds between takeovers of dead daemons' leases
REPORT_INTERVAL = 30.0  # seconds between looks at whether the daily report is due
BACKLOG_INTERVAL = 5.0  # seconds between counts of the backlog (a metric)
END_MARGIN = timedelta(milliseconds=50)  # no request starts this close to end_at
AUTH_PROBE_INTERVAL = 30.0  # seconds between tries after the API refused our token
DRAIN_TIMEOUT = 30.0  # seconds SIGTERM waits for requests in flight


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
    activated: list[int] = field(default_factory=list)


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


def take_over_orphans(engine: Engine) -> int:
    """Give back every claim: only for a daemon that knows it is alone (SQLite's lock)."""
    with session_scope(engine) as session:
        taken = delivery.reap_leases(session=session, now=None)
    if taken:
        logger.warning("took over {n} messages claimed by a daemon that died", n=taken)
    return taken


def make_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Sends every due message of every live mailing until stopped."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        clock: SystemClock | None = None,
        burst: bool = False,
        wait_scale: float = 1.0,
        owner: str | None = None,
        exclusive: bool = False,
        metrics: DaemonMetrics | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock or SystemClock()
        self.burst = burst
        self.wait_scale = wait_scale
        self.owner = owner or make_owner()
        #: the only daemon on this database (SQLite's lock): leases found at start are orphans
        self.exclusive = exclusive
        self.counters = Counters()
        self.metrics = metrics or DaemonMetrics()
        #: log each message's requests and new status (only when some sink takes INFO)
        self.trace = settings.log_messages and writes(settings, "INFO")
        self.breaker = CircuitBreaker(settings.breaker_threshold)
        self._stop = asyncio.Event()
        self._queue: asyncio.Queue[Claimed] = asyncio.Queue()
        self._in_flight = 0
        self._outcomes: list[Outcome] = []
        self._mailings: dict[int, MailingSnapshot] = {}
        self._auth_blocked_until = 0.0
        self._jobs_running: set[str] = set()
        self._idle_rounds = 0
        self.log = logger.bind(daemon=self.owner)

    # --- life cycle ------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming, finish what is in flight, give back the rest. Idempotent."""
        if not self._stop.is_set():
            self.log.info("stopping: finishing requests in flight")
        self._stop.set()

    async def run(self) -> Counters:
        """Run until ``stop()`` (or, with ``burst``, until nothing is due)."""
        self.log.info(
            "daemon started: concurrency {c}, rate limit {r}/s, sending to {url}",
            c=self.settings.concurrency,
            r=self.settings.rate_limit or "no",
            url=self.settings.sender_url,
        )
        self._sender = Sender(
            self.settings,
            seconds_until=self.clock.seconds_until,
            sleep=self.clock.sleep,
            wait_scale=self.wait_scale,
        )
        if self.exclusive:
            await asyncio.to_thread(self._take_over_orphans)
        await asyncio.to_thread(self._job_activate)
        await asyncio.to_thread(self._job_snapshots)
        senders = [asyncio.create_task(self._send_loop()) for _ in range(self.settings.concurrency)]
        helpers = [
            asyncio.create_task(self._claim_loop()),
            asyncio.create_task(self._record_loop()),
            asyncio.create_task(self._housekeeping_loop()),
        ]
        try:
            await self._stop.wait()
        finally:
            await self._drain(senders, helpers)
        self.log.info("daemon stopped: {c}", c=self.counters)
        return self.counters

    async def _drain(self, senders: list[asyncio.Task], helpers: list[asyncio.Task]) -> None:
        # Nobody claims any more; messages still queued go back untouched.
        helpers[0].cancel()
        while not self._queue.empty():
            claimed = self._queue.get_nowait()
            self._outcomes.append(self._release(claimed, self.clock.now()))
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT):
                while self._in_flight:
                    await asyncio.sleep(0.01)
        except TimeoutError:
            self.log.warning("{n} requests still in flight at shutdown", n=self._in_flight)
        for task in senders + helpers:
            task.cancel()
        await asyncio.gather(*senders, *helpers, return_exceptions=True)
        await asyncio.to_thread(self._flush)
        await asyncio.to_thread(self._release_everything)
        await self._sender.aclose()

    # --- claiming --------------------------------------------------------------------

    def _sendable(self, now: datetime) -> list[int]:
        return [
            m.id
            for m in self._mailings.values()
            if not m.paused and not m.cancelled and m.start_at <= now < m.end_at - END_MARGIN
        ]

    async def _claim_loop(self) -> None:
        capacity = 2 * self.settings.concurrency  # in flight plus a queue to keep senders busy
        while not self._stop.is_set():
            if self.breaker.is_open() or self._token_blocked():
                await asyncio.sleep(min(0.1, max(0.01, self.breaker.seconds_to_probe())))
                if self.breaker.state is BreakerState.open and self.breaker.seconds_to_probe() == 0:
                    await self._claim(1)  # the probe
                continue
            room = capacity - self._in_flight - self._queue.qsize()
            if room < min(CLAIM_BATCH, self.settings.concurrency) // 2:
                await asyncio.sleep(0.005)
                continue
            try:
                claimed = await self._claim(min(room, CLAIM_BATCH))
            except Exception:
                # The database may be restarting: keep the daemon alive and try again.
                self.log.exception("could not claim messages; trying again in {s}s", s=CLAIM_RETRY)
                await asyncio.sleep(CLAIM_RETRY)
                continue
            if not claimed:
                await self._idle()

    async def _claim(self, want: int) -> int:
        now = self.clock.now()
        mailing_ids = self._sendable(now)
        if not mailing_ids:
            return 0
        lease_until = now + timedelta(seconds=self.settings.lease_seconds * self.clock.speed)
        batch = await asyncio.to_thread(self._claim_rows, want, mailing_ids, now, lease_until)
        for claimed in batch:
            self._queue.put_nowait(claimed)
        self.counters.claimed += len(batch)
        return len(batch)

    def _claim_rows(self, want, mailing_ids, now, lease_until) -> list[Claimed]:
        with session_scope(self.engine) as session:
            if self.settings.rate_limit:
                want = delivery.take_permits(
                    session=session, want=want, rate=self.settings.rate_limit, now=now
                )
            return delivery.claim(
                session=session,
                owner=self.owner,
                mailing_ids=mailing_ids,
                now=now,
                lease_until=lease_until,
                limit=want,
            )

    async def _idle(self) -> None:
        if self.burst and not self._in_flight and self._queue.empty() and not self._outcomes:
            self._idle_rounds += 1
            if self._idle_rounds >= 3 and await asyncio.to_thread(self._nothing_due):
                self.stop()
                return
        else:
            self._idle_rounds = 0
        await asyncio.sleep(IDLE_POLL)

    def _nothing_due(self) -> bool:
        self._job_activate()
        self._job_snapshots()
        now = self.clock.now()
        with session_scope(self.engine) as session:
            return not delivery.any_due(session=session, mailing_ids=self._sendable(now), now=now)

    # --- sending ---------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            claimed = await self._queue.get()
            self._in_flight += 1
            try:
                outcome = await self._process(claimed)
            except Exception as exc:  # a bug must not lose the message or stop the daemon
                self.log.exception("unexpected error sending message {id}", id=claimed.id)
                outcome = self._retry_later(claimed, [], f"internal error: {exc}", self.clock.now())
            finally:
                self._in_flight -= 1
            self._outcomes.append(outcome)
            self.metrics.observe(outcome.attempts, earlier=claimed.attempts, status=outcome.status)
            if self.trace:
                self._trace(claimed, outcome)

    def _trace(self, claimed: Claimed, outcome: Outcome) -> None:
        """Log each request of the message with its answer, then the message's new status."""
        log = self.log.bind(
            message_id=claimed.id, mailing_id=claimed.mailing_id, client_id=claimed.client_id
        )
        for number, attempt in enumerate(outcome.attempts, claimed.attempts + 1):
            log.info(
                "request {n}: POST {url}/{id} -> {answer} in {ms:.1f} ms{body}{error}",
                n=number,
                url=self.settings.sender_url,
                id=claimed.id,
                answer=f"HTTP {attempt.http_status}" if attempt.http_status else "no answer",
                ms=attempt.duration_ms,
                body=f", body {attempt.response_excerpt!r}" if attempt.response_excerpt else "",
                error=f", error: {attempt.error}" if attempt.error else "",
            )
        if outcome.status == MessageStatus.pending:
            when = outcome.next_attempt_at.isoformat() if outcome.next_attempt_at else "now"
            reason = f" ({outcome.last_error})" if outcome.last_error else ""
            log.info("status sending -> pending, next attempt at {when}{r}", when=when, r=reason)
        else:
            reason = f": {outcome.last_error}" if outcome.last_error else ""
            log.info("status sending -> {status}{r}", status=outcome.status, r=reason)

    async def _process(self, claimed: Claimed) -> Outcome:
        now = self.clock.now()
        mailing = self._mailings.get(claimed.mailing_id)
        if mailing is None or mailing.cancelled:
            self.counters.cancelled += 1
            return Outcome(claimed.id, MessageStatus.cancelled)
        deadline = mailing.end_at - END_MARGIN
        if now >= deadline:
            self.counters.expired += 1
            return Outcome(claimed.id, MessageStatus.expired, last_error="the mailing ended")
        if mailing.paused:
            return self._release(claimed, now)
        if mailing.window:
            start, end = mailing.window
            opening = windows.next_opening(now, tz=claimed.timezone, start=start, end=end)
            if opening >= deadline:
                self.counters.expired += 1
                return Outcome(
                    claimed.id, MessageStatus.expired, last_error="no window before the end"
                )
            if opening > now:
                return self._release(claimed, opening)
        if not self._may_try():
            return self._release(claimed, now)

        attempts = []
        try:
            await self._sender.deliver(
                claimed.id,
                claimed.phone,
                mailing.text,
                deadline=deadline,
                attempts=attempts,
                may_try=self._may_try,
                max_tries=self.settings.max_attempts - claimed.attempts,
                log=self._message_log(claimed),
            )
        except Unauthorized as exc:
            self._token_refused()
            self.counters.requests += len(attempts)
            return self._release(claimed, self.clock.now(), attempts, exc.reason)
        except Rejected as exc:
            self.breaker.success()
            self._count(attempts, failed=True)
            self._message_log(claimed).info("rejected by the API: {reason}", reason=exc.reason)
            return Outcome(claimed.id, MessageStatus.failed, attempts, last_error=exc.reason)
        except Transient as exc:
            self._count(attempts)
            return self._retry_later(claimed, attempts, exc.reason, self.clock.now(), mailing)
        except SendError as exc:  # pragma: no cover - every SendError is one of the above
            return self._retry_later(claimed, attempts, exc.reason, self.clock.now(), mailing)
        self.breaker.success()
        self._count(attempts, sent=True)
        return Outcome(claimed.id, MessageStatus.sent, attempts, sent_at=self.clock.now())

    def _message_log(self, claimed: Claimed):
        """A logger bound to the message's ids; built only when a line is written."""
        return _LazyLog(self.log, claimed)

    def _may_try(self) -> bool:
        """May a request start now (token not refused, breaker closed or probing, running)?"""
        if self._stop.is_set() or self._token_blocked():
            return False
        return self.breaker.allow()

    def _token_blocked(self) -> bool:
        return time.monotonic() < self._auth_blocked_until

    def _count(self, attempts, *, sent: bool = False, failed: bool = False) -> None:
        self.counters.requests += len(attempts)
        for attempt in attempts:
            if attempt.error and not sent and not failed:
                self.breaker.failure()
        if sent:
            self.counters.sent += 1
        if failed:
            self.counters.failed += 1

    def _token_refused(self) -> None:
        if self._token_blocked():
            return  # said already
        self._auth_blocked_until = time.monotonic() + AUTH_PROBE_INTERVAL
        self.log.error(
            "the sending API refused our token (401): check NOTIFY_SENDER_TOKEN. Sending "
            "stopped, messages stay pending; trying again in {s:.0f}s",
            s=AUTH_PROBE_INTERVAL,
        )

    def _release(self, claimed: Claimed, at: datetime, attempts=None, error=None) -> Outcome:
        self.counters.released += 1
        return Outcome(
            claimed.id, MessageStatus.pending, attempts or [], next_attempt_at=at, last_error=error
        )

    def _retry_later(
        self,
        claimed: Claimed,
        attempts,
        reason: str,
        now: datetime,
        mailing: MailingSnapshot | None = None,
    ) -> Outcome:
        total = claimed.attempts + len(attempts)
        if total >= self.settings.max_attempts:
            self.counters.failed += 1
            return Outcome(
                claimed.id,
                MessageStatus.failed,
                attempts,
                last_error=f"{reason} (gave up after {total} attempts)",
            )
        pause = backoff(total, maximum=self.settings.retry_backoff_max) * self.wait_scale
        next_at = now + timedelta(seconds=pause * self.clock.speed)
        if mailing is not None and next_at >= mailing.end_at - END_MARGIN:
            self.counters.expired += 1
            return Outcome(claimed.id, MessageStatus.expired, attempts, last_error=reason)
        self.counters.retried += 1
        return Outcome(
            claimed.id, MessageStatus.pending, attempts, next_attempt_at=next_at, last_error=reason
        )

    # --- recording -------------------------------------------------------------------

    async def _record_loop(self) -> None:
        while True:
            await asyncio.sleep(RECORD_INTERVAL)
            if self._outcomes:
                await asyncio.to_thread(self._flush)

    def _flush(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return
        try:
            with session_scope(self.engine) as session:
                delivery.record(session=session, owner=self.owner, outcomes=outcomes)
        except Exception:
            # Keep them for the next flush: losing an outcome would resend the message.
            self.log.exception("could not record {n} outcomes; will retry", n=len(outcomes))
            self._outcomes[:0] = outcomes

    def _release_everything(self) -> None:
        with session_scope(self.engine) as session:
            released = delivery.release_all(session=session, owner=self.owner)
        if released:
            self.log.info("gave back {n} claimed messages", n=released)

    # --- housekeeping ----------------------------------------------------------------

    async def _housekeeping_loop(self) -> None:
        scheduler = schedule.Scheduler()
        scheduler.every(ACTIVATE_INTERVAL).seconds.do(self._spawn, "activate", self._job_activate)
        scheduler.every(SNAPSHOT_INTERVAL).seconds.do(self._spawn, "snapshots", self._job_snapshots)
        scheduler.every(EXPIRE_INTERVAL).seconds.do(self._spawn, "expire", self._job_expire)
        scheduler.every(REAP_INTERVAL).seconds.do(self._spawn, "reap", self._job_reap)
        scheduler.every(BACKLOG_INTERVAL).seconds.do(self._spawn, "backlog", self._job_backlog)
        if self.settings.smtp_host and self.settings.report_to:
            scheduler.every(REPORT_INTERVAL).seconds.do(self._spawn, "report", self.job_report)
        while True:
            scheduler.run_pending()
            await asyncio.sleep(0.05)

    def _spawn(self, name: str, job: Callable[[], None]) -> None:
        """Run a job in a thread unless its previous run is still going."""
        if name in self._jobs_running:
            return
        self._jobs_running.add(name)

        async def run() -> None:
            try:
                await asyncio.to_thread(job)
            except Exception:
                self.log.exception("housekeeping job {name} failed; it runs again soon", name=name)
            finally:
                self._jobs_running.discard(name)

        asyncio.get_running_loop().create_task(run())

    def _job_activate(self) -> None:
        now = self.clock.now()
        activated = False
        with session_scope(self.engine) as session:
            for mailing in delivery.due_for_activation(session=session, now=now):
                if mailing.end_at <= now:
                    continue  # the expiry job materialises and expires it
                created = delivery.activate(session=session, mailing=mailing, now=now)
                deferred = 0
                if mailing.window_start and mailing.window_end:
                    deferred = self._defer_to_windows(session, mailing, now)
                self.counters.activated.append(mailing.id)
                activated = True
                self.log.bind(mailing_id=mailing.id).info(
                    "mailing activated: {n} messages, {d} waiting for their window",
                    n=created,
                    d=deferred,
                )
        if activated:  # let the claimer see it now rather than at the next refresh
            self._job_snapshots()

    def _defer_to_windows(self, session, mailing, now: datetime) -> int:
        """Set each timezone's messages to its next window opening (or expire them)."""
        deferred = 0
        start_from = max(now, mailing.start_at)
        for tz in delivery.audience_timezones(session=session, mailing_id=mailing.id):
            opening = windows.next_opening(
                start_from, tz=tz, start=mailing.window_start, end=mailing.window_end
            )
            if opening >= mailing.end_at - END_MARGIN:
                deferred += delivery.defer_timezone(
                    session=session, mailing_id=mailing.id, timezone=tz, until=None
                )
            elif opening > start_from:
                deferred += delivery.defer_timezone(
                    session=session, mailing_id=mailing.id, timezone=tz, until=opening
                )
        return deferred

    def _job_snapshots(self) -> None:
        with session_scope(self.engine) as session:
            self._mailings = delivery.live_mailings(session=session, now=self.clock.now())
        self.metrics.active.set(len(self._sendable(self.clock.now())))
        self.metrics.breaker.state(self.breaker.state.value)

    def _job_backlog(self) -> None:
        with session_scope(self.engine) as session:
            backlog = delivery.unsent_count(session=session, mailing_ids=list(self._mailings))
        self.metrics.pending.set(backlog)

    def _job_expire(self) -> None:
        now = self.clock.now()
        with session_scope(self.engine) as session:
            expired = delivery.expire_ended(session=session, now=now)
            completed = delivery.complete_done(session=session, now=now)
        for mailing_id, count in expired.items():
            self.metrics.messages.labels(MessageStatus.expired.value).inc(count)
            self.log.bind(mailing_id=mailing_id).info(
                "mailing ended: {n} unsent messages expired", n=count
            )
        for mailing_id in completed:
            self.log.bind(mailing_id=mailing_id).info("mailing complete: every message is final")

    def job_report(self) -> bool:
        """Send the day's statistics email once its local time has come; True if sent here.

        Every daemon runs this; the day's row in ``report_run`` lets exactly one send it.
        A failed sending gives the day back, so a later run (here or elsewhere) tries again.
        """
        zone = ZoneInfo(self.settings.report_zone)
        now = self.clock.now()
        local = now.astimezone(zone)
        if local.strftime("%H:%M") < self.settings.report_time:
            return False
        day = local.date()
        with session_scope(self.engine) as session:
            if not report.claim_day(session=session, day=day, owner=self.owner, now=now):
                return False
            content = report.build_report(session=session, now=now)
        try:
            send_report(self.settings, content, wait_scale=self.wait_scale)
        except MailError as exc:
            self.log.error("the daily report for {day} was not sent: {e}", day=day, e=exc)
            with session_scope(self.engine) as session:
                report.release_day(session=session, day=day, owner=self.owner)
            return False
        with session_scope(self.engine) as session:
            report.mark_sent(session=session, day=day, owner=self.owner, now=self.clock.now())
        return True

    def _take_over_orphans(self) -> None:
        taken = take_over_orphans(self.engine)
        self.counters.leases_taken_over += taken
        self.metrics.takeovers.inc(taken)

    def _job_reap(self) -> None:
        with session_scope(self.engine) as session:
            taken = delivery.reap_leases(session=session, now=self.clock.now())
        if taken:
            self.counters.leases_taken_over += taken
            self.metrics.takeovers.inc(taken)
            self.log.warning("took over {n} messages whose daemon stopped answering", n=taken)
