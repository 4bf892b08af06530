"""The daemon's periodic jobs, on a ``schedule`` scheduler: activation, mailing snapshots,
expiry and completion, lease reaping, the backlog metric, the daily report and the daily
retention pruning.

Each job runs as its own task (never two runs of one job at once); one that fails is
logged (once per interval while it keeps failing) and runs again at its next turn.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import schedule

from daemon import rules
from daemon.breaker import BreakerState
from daemon.mailer import MailError, send_report
from daemon.metrics import DaemonMetrics
from daemon.quiet import QuietErrors
from daemon.store import ActivationError, Store
from notifyctl.config import Settings
from notifyctl.models import Mailing, MessageStatus
from notifyctl.services import retention
from notifyctl.services.delivery import MailingSnapshot

ACTIVATE_INTERVAL = 0.25  # seconds between looks for mailings whose start has come
SNAPSHOT_INTERVAL = 0.5  # seconds between refreshes of the mailings' state
EXPIRE_INTERVAL = 0.5  # seconds between expiry/completion passes
REAP_INTERVAL = 5.0  # seconds between takeovers of dead daemons' leases
#: seconds of a working database after which every daemon has written what it held
#: through an outage: its recorder retries at most RECORD_BACKOFF_MAX (5 s) apart
REAP_QUIET = 7.0
REPORT_INTERVAL = 30.0  # seconds between looks at whether the daily report is due
BACKLOG_INTERVAL = 5.0  # seconds between counts of the backlog (a metric)
AUDIT_INTERVAL = 60.0  # seconds between looks at whether the audit log's pruning is due
AUDIT_PRUNE_EVERY = timedelta(days=1)  # how often NOTIFY_AUDIT_RETENTION is applied
PRUNE_INTERVAL = 60.0  # seconds between looks at whether the day's retention pruning is due
PRUNE_RENEW = timedelta(minutes=1)  # how often a long pruning renews its day's claim
TICK = 0.05  # seconds between looks at the schedule


class Housekeeping:
    """The periodic jobs of one worker; ``mailings`` is the snapshot its claims go by."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        clock,
        metrics: DaemonMetrics,
        counters,
        log,
        breaker_state: Callable[[], BreakerState],
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.counters = counters
        self.log = log
        self._breaker_state = breaker_state
        self.mailings: dict[int, MailingSnapshot] = {}
        self._running: set[str] = set()
        self._errors = QuietErrors(log)
        self._audit_pruned_at: datetime | None = None  #: by this daemon's clock

    # --- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        scheduler = schedule.Scheduler()
        jobs: list[tuple[float, str, Callable[[], Awaitable[object]]]] = [
            (ACTIVATE_INTERVAL, "activate", self.activate),
            (SNAPSHOT_INTERVAL, "snapshots", self.refresh),
            (EXPIRE_INTERVAL, "expire", self.expire),
            (REAP_INTERVAL, "reap", self.reap),
            (BACKLOG_INTERVAL, "backlog", self.backlog),
        ]
        if self.settings.smtp_host and self.settings.report_to:
            jobs.append((REPORT_INTERVAL, "report", self._report_async))
        if self.settings.audit_retention:
            jobs.append((AUDIT_INTERVAL, "audit", self.prune_audit))
        if self.settings.retention_attempts or self.settings.retention_messages:
            jobs.append((PRUNE_INTERVAL, "retention", self.prune))
        for interval, name, job in jobs:
            scheduler.every(interval).seconds.do(self._spawn, name, job)
        while True:
            scheduler.run_pending()
            await asyncio.sleep(TICK)

    def _spawn(self, name: str, job: Callable[[], Awaitable[object]]) -> None:
        """Start a job as a task unless its previous run is still going."""
        if name in self._running:
            return
        self._running.add(name)

        async def run() -> None:
            try:
                await job()
                self._errors.recovered(name, f"housekeeping job {name} works again")
            except Exception as exc:
                self._errors.error(name, f"housekeeping job {name} failed; it runs again soon", exc)
            finally:
                self._running.discard(name)

        asyncio.get_running_loop().create_task(run())

    # --- the jobs ---------------------------------------------------------------------

    def sendable(self, now: datetime) -> list[int]:
        """Mailings whose messages may be claimed now."""
        limit = now + rules.END_MARGIN
        return [
            m.id
            for m in self.mailings.values()
            if not m.paused and not m.cancelled and m.start_at <= now and limit < m.end_at
        ]

    async def activate(self) -> None:
        now = self.clock.now()
        try:
            activated = await self.store.activate_due(now, window=self._window_for(now))
        except ActivationError as exc:
            activated = exc.done
            self._errors.error("activation", "could not activate some mailings", exc)
        for item in activated:
            self.counters.activated += 1
            self.log.bind(mailing_id=item.mailing_id).info(
                "mailing activated: {messages} messages, {waiting} waiting for their window",
                messages=item.created,
                waiting=item.deferred,
            )
        if activated:  # let the claimer see it now rather than at the next refresh
            await self.refresh()

    @staticmethod
    def _window_for(now: datetime) -> Callable[[Mailing, str], rules.Decision]:
        def decide(mailing: Mailing, timezone: str) -> rules.Decision:
            return rules.window_decision(
                start=mailing.window_start,
                end=mailing.window_end,
                timezone=timezone,
                now=max(now, mailing.start_at),
                end_at=mailing.end_at,
            )

        return decide

    async def refresh(self) -> None:
        """Read the live mailings' state (pause, cancel, text, window) again."""
        self.mailings = await self.store.live_mailings(self.clock.now())
        self.metrics.active.set(len(self.sendable(self.clock.now())))
        self.metrics.breaker_state(self._breaker_state())

    async def expire(self) -> None:
        expired, completed = await self.store.expire_and_complete(self.clock.now())
        for mailing_id, count in expired.items():
            self.metrics.messages.labels(MessageStatus.expired.value).inc(count)
            self.log.bind(mailing_id=mailing_id).info(
                "mailing ended: {expired} unsent messages expired", expired=count
            )
        for mailing_id in completed:
            self.log.bind(mailing_id=mailing_id).info("mailing complete: every message is final")

    async def reap(self) -> None:
        """Take back the leases of daemons that died.

        Only leases that ran out before the database's last REAP_QUIET seconds of work
        (``Store.lease_cutoff``): one that ran out during an outage belongs to a daemon
        that may have sent the message and not yet said so; taking it back then would
        send the message twice.
        """
        cutoff = self.store.lease_cutoff(quiet=REAP_QUIET)
        if cutoff is None:
            return
        behind = (time.monotonic() - cutoff) * self.clock.speed
        taken = await self.store.reap(self.clock.now() - timedelta(seconds=behind))
        if taken:
            self.counters.leases_taken_over += taken
            self.metrics.takeovers.inc(taken)
            self.log.warning(
                "took over {taken} messages whose daemon stopped answering", taken=taken
            )

    async def backlog(self) -> None:
        self.metrics.pending.set(await self.store.backlog(list(self.mailings)))

    async def prune_audit(self) -> int:
        """Delete audit entries older than NOTIFY_AUDIT_RETENTION, once a day (counted
        from this daemon's start: a daemon restarted daily still prunes); returns how many.

        Every daemon does it: deleting what another deleted already costs one query.
        """
        retention, now = self.settings.audit_retention, self.clock.now()
        if not retention or (
            self._audit_pruned_at is not None and now - self._audit_pruned_at < AUDIT_PRUNE_EVERY
        ):
            return 0
        try:
            before = now - retention
        except OverflowError:  # longer than the calendar goes back: nothing is that old
            before = None
        deleted = await self.store.prune_audit(before) if before is not None else 0
        self._audit_pruned_at = now
        if deleted:
            self.log.info(
                "audit log: {deleted} entries older than {retention} deleted",
                deleted=deleted,
                retention=retention,
            )
        return deleted

    async def prune(self) -> retention.Removed | None:
        """Apply NOTIFY_RETENTION_* once a day, after the report's time of day: the daemon
        that claims the day (``prune_run``) prunes, in batches, pausing between them; the
        totals when this daemon pruned, else None. A failure gives the day back."""
        now = self.clock.now()
        local = now.astimezone(ZoneInfo(self.settings.report_zone))
        if local.strftime("%H:%M") < self.settings.report_time:
            return None
        day = local.date()
        if not await asyncio.to_thread(self.store.claim_prune_day, day=day, now=now):
            return None
        cutoffs = retention.cutoffs(
            now=now,
            attempts=self.settings.retention_attempts,
            messages=self.settings.retention_messages,
        )
        removed, renewed = retention.Removed(), now
        try:
            steps = self.store.prune_steps(cutoffs)
            while True:
                started = time.monotonic()
                if (batch := await self.store.next_batch(steps)) is None:
                    break
                removed = batch
                if self.clock.now() - renewed > PRUNE_RENEW:
                    renewed = self.clock.now()
                    await asyncio.to_thread(self.store.renew_prune_day, day=day, now=renewed)
                await asyncio.sleep(retention.pause_after(time.monotonic() - started))
        except BaseException:
            with contextlib.suppress(Exception):  # (unreleased, the claim goes stale instead)
                await asyncio.to_thread(
                    self.store.finish_prune_day, day=day, now=self.clock.now(), done=False
                )
            raise
        await asyncio.to_thread(
            self.store.finish_prune_day, day=day, now=self.clock.now(), done=True
        )
        self.log.info(
            "retention: {attempt} attempts and {message} messages deleted, "
            "{summarised} mailings summarised",
            attempt=removed.attempt,
            message=removed.message,
            summarised=len(removed.mailings),
        )
        return removed

    async def _report_async(self) -> None:
        await asyncio.to_thread(self.report)

    def report(self) -> bool:
        """Send the day's statistics email once its local time has come; True if sent here.

        Every daemon runs this; the day's row in ``report_run`` lets exactly one send it.
        A failed sending gives the day back, so a later run (here or elsewhere) tries again.
        """
        now = self.clock.now()
        local = now.astimezone(ZoneInfo(self.settings.report_zone))
        if local.strftime("%H:%M") < self.settings.report_time:
            return False
        day = local.date()
        content = self.store.claim_report_day(day=day, now=now)
        if content is None:
            return False
        try:
            send_report(self.settings, content, wait_scale=self.clock.wait_scale)
        except MailError as exc:
            self.log.error(
                "the daily report for {day} was not sent: {error}", day=day, error=str(exc)
            )
            self.store.release_report_day(day=day)
            return False
        self.store.mark_report_sent(day=day, now=self.clock.now())
        return True
