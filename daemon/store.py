"""The daemon's database work behind one interface: sessions and threads live here.

Every method is a coroutine that runs its transaction in a worker thread
(``asyncio.to_thread``), so requests keep flowing while rows are written; the worker and
the housekeeping jobs never open a session themselves. The statements are the service
functions of ``notifyctl.services.delivery`` and ``report``. Model: procrastinate's
``manager.py``.
"""

import asyncio
import collections
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from loguru import logger
from sqlalchemy.engine import Engine

from daemon.rules import Decision, Fate
from notifyctl.caps import FrequencyCap
from notifyctl.db import session_scope
from notifyctl.errors import StorageError
from notifyctl.models import Mailing, PruneRun
from notifyctl.services import audit, delivery, frequency, optout, report, retention
from notifyctl.services.delivery import Claimed, MailingSnapshot, Outcome


@dataclass(frozen=True, slots=True)
class Activated:
    mailing_id: int
    created: int
    deferred: int


FAILURES_KEPT = 4096  # failure times remembered for the lease cutoff


class ActivationError(Exception):
    """Some mailings could not be activated; ``done`` were (and are committed)."""

    def __init__(self, done: list[Activated], failed: list[str]) -> None:
        super().__init__("; ".join(failed))
        self.done = done


def _integrity_error(exc: BaseException) -> bool:
    return isinstance(exc.__cause__, sa.exc.IntegrityError)


def _connection_trouble(exc: BaseException) -> bool:
    """The database is away or restarting (as opposed to refusing what was sent)."""
    return isinstance(exc.__cause__, sa.exc.OperationalError | sa.exc.InterfaceError) or (
        isinstance(exc.__cause__, sa.exc.DBAPIError) and exc.__cause__.connection_invalidated
    )


class Store:
    """One daemon's access to the database."""

    def __init__(
        self,
        engine: Engine,
        *,
        owner: str,
        rate_limit: float | None = None,
        frequency_cap: FrequencyCap | None = None,
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.rate_limit = rate_limit
        self.frequency_cap = frequency_cap
        self._started = time.monotonic()
        #: when database calls failed (monotonic seconds; one entry per half second at most)
        self._failures: collections.deque[float] = collections.deque(maxlen=FAILURES_KEPT)

    async def _run(self, function, *args, **kwargs):
        """``function`` in a worker thread; a database failure is remembered
        (``lease_cutoff``), a refusal of one mailing's activation is not."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except StorageError:
            self.note_failure()
            raise

    def note_failure(self, at: float | None = None) -> None:
        at = time.monotonic() if at is None else at
        if not self._failures or at - self._failures[-1] > 0.5:
            self._failures.append(at)

    def lease_cutoff(self, *, quiet: float, now: float | None = None) -> float | None:
        """The monotonic instant before which a lapsed lease may be taken back, or None.

        A lease that ran out while the database failed belongs to a daemon that may have
        sent the message and not yet been able to say so. Once the database has then
        worked for ``quiet`` seconds without a failure (longer than any recorder waits
        between tries), every daemon has written what it held. So the cutoff is the
        start of the last such stretch less ``quiet``; now, when no failure is recent.
        """
        now = time.monotonic() if now is None else now
        failures = list(self._failures)
        if not failures or now - failures[-1] >= quiet:
            return now
        for earlier, later in zip(reversed(failures[:-1]), reversed(failures[1:]), strict=True):
            if later - earlier >= quiet:
                return later - quiet
        if failures[0] - self._started >= quiet:
            return failures[0] - quiet
        return None

    # --- claims and outcomes ----------------------------------------------------------

    async def claim(
        self,
        *,
        want: int,
        mailing_ids: list[int],
        now: datetime,
        lease_until: datetime,
        seen_at: float = 0.0,
    ) -> list[Claimed]:
        """Lease up to ``want`` due messages (fewer under the global rate limit), each
        stamped ``seen_at`` (``daemon.optouts``)."""
        return await self._run(self._claim, want, mailing_ids, now, lease_until, seen_at)

    def _claim(self, want, mailing_ids, now, lease_until, seen_at) -> list[Claimed]:
        with session_scope(self.engine) as session:
            if self.rate_limit:
                want = delivery.take_permits(
                    session=session, want=want, rate=self.rate_limit, now=now
                )
            claimed = delivery.claim(
                session=session,
                owner=self.owner,
                mailing_ids=mailing_ids,
                now=now,
                lease_until=lease_until,
                limit=want,
                seen_at=seen_at,
                cap=self.frequency_cap,
            )
            if self.rate_limit:
                delivery.return_permits(
                    session=session, unused=want - len(claimed), rate=self.rate_limit
                )
            return claimed

    async def release_held(self, now: datetime) -> int:
        """Messages held back under a cap other than ours: due now, to be decided again."""
        return await self._run(
            self._in_session, frequency.release_held, cap=self.frequency_cap, now=now
        )

    async def opted_out_among(self, client_ids: list[int]) -> set[int]:
        """Which of these clients have opted out."""
        return await self._run(self._in_session, optout.opted_out_among, client_ids=client_ids)

    async def record(self, outcomes: list[Outcome]) -> list[int]:
        """Store outcomes; returns the ids dropped because their message was deleted.

        Raises StorageError when the batch could not be stored for another reason.
        """
        return await self._run(self._record, outcomes)

    def _record(self, outcomes: list[Outcome]) -> list[int]:
        try:
            with session_scope(self.engine) as session:
                delivery.record(session=session, owner=self.owner, outcomes=outcomes)
            return []
        except StorageError as exc:
            if _connection_trouble(exc):
                raise  # the database is away: keep them all for the next try
            if _integrity_error(exc):
                return self._record_alive(outcomes)
            return self._record_apart(outcomes, exc)
        except Exception as exc:  # refused before the database saw it (encoding, a bug)
            return self._record_apart(outcomes, exc)

    def _record_alive(self, outcomes: list[Outcome]) -> list[int]:
        """A message of the batch is gone (its mailing or client was deleted meanwhile):
        record the others. Should one vanish between the two statements, the next call
        drops it too."""
        with session_scope(self.engine) as session:
            alive = delivery.existing_messages(
                session=session, ids=[o.message_id for o in outcomes]
            )
            kept = [o for o in outcomes if o.message_id in alive]
            delivery.record(session=session, owner=self.owner, outcomes=kept)
        return [o.message_id for o in outcomes if o.message_id not in alive]

    def _record_apart(self, outcomes: list[Outcome], error: Exception) -> list[int]:
        """A batch refused for its data: halves, down to the one bad outcome, which is
        stored without its attempts' details (or dropped); one bad row holds up no other."""
        if len(outcomes) > 1:
            middle = len(outcomes) // 2
            return self._record(outcomes[:middle]) + self._record(outcomes[middle:])
        [bad] = outcomes
        logger.error(
            "the outcome of message {message_id} was refused ({error}); storing it without details",
            message_id=bad.message_id,
            error=str(error),
        )
        bare = Outcome(
            bad.message_id,
            bad.status,
            sent_at=bad.sent_at,
            next_attempt_at=bad.next_attempt_at,
            last_error="(the API's answer could not be stored)",
            mailing_id=bad.mailing_id,
        )
        try:
            with session_scope(self.engine) as session:
                delivery.record(session=session, owner=self.owner, outcomes=[bare])
        except StorageError as exc:
            if _connection_trouble(exc):
                raise
            logger.error(
                "the outcome of message {message_id} is dropped: {error}",
                message_id=bad.message_id,
                error=str(exc),
            )
            return [bad.message_id]
        return []

    async def release_all(self) -> int:
        """Give back every message this daemon holds."""
        return await self._run(self._in_session, delivery.release_all, owner=self.owner)

    async def reap(self, now: datetime | None) -> int:
        """Take back leases that ran out (``None``: every lease, for a daemon alone)."""
        return await self._run(self._in_session, delivery.reap_leases, now=now)

    # --- mailings ---------------------------------------------------------------------

    async def live_mailings(self, now: datetime) -> dict[int, MailingSnapshot]:
        return await self._run(self._in_session, delivery.live_mailings, now=now)

    async def activate_due(
        self, now: datetime, *, window: Callable[[Mailing, str], Decision]
    ) -> list[Activated]:
        """Materialise the audience of every mailing whose start has come.

        ``window(mailing, timezone)`` decides a windowed mailing's messages of one
        timezone: send (due now), wait (due at the opening) or expire.
        """
        return await self._run(self._activate_due, now, window)

    def _activate_due(self, now, window) -> list[Activated]:
        # One transaction per mailing: one that cannot be activated holds up no other.
        with session_scope(self.engine) as session:
            due = [m.id for m in delivery.due_for_activation(session=session, now=now)]
        done, failed = [], []
        for mailing_id in due:
            try:
                with session_scope(self.engine) as session:
                    activated = self._activate_one(session, mailing_id, now, window)
            except Exception as exc:
                failed.append(f"mailing {mailing_id}: {exc}")
                continue
            if activated is not None:
                done.append(activated)
        if failed:
            raise ActivationError(done, failed)
        return done

    @staticmethod
    def _activate_one(session, mailing_id: int, now, window) -> Activated | None:
        found = delivery.due_for_activation(session=session, now=now, mailing_id=mailing_id)
        if not found or found[0].end_at <= now:
            return None  # another daemon did it, or the expiry pass will
        mailing = found[0]
        created = delivery.activate(session=session, mailing=mailing, now=now)
        deferred = 0
        if mailing.window_start and mailing.window_end:
            for tz in delivery.audience_timezones(session=session, mailing_id=mailing.id):
                decision = window(mailing, tz)
                # (a failing zone stays due: the sender fails each message of it)
                if decision.fate in (Fate.wait, Fate.expire):
                    deferred += delivery.defer_timezone(
                        session=session,
                        mailing_id=mailing.id,
                        timezone=tz,
                        until=decision.at if decision.fate is Fate.wait else None,
                    )
        return Activated(mailing.id, created, deferred)

    async def expire_and_complete(self, now: datetime) -> tuple[dict[int, int], list[int]]:
        """Expire the unsent messages of ended mailings, cancel those of cancelled ones;
        complete mailings whose messages are all final."""
        return await self._run(self._expire_and_complete, now)

    def _expire_and_complete(self, now) -> tuple[dict[int, int], list[int]]:
        with session_scope(self.engine) as session:
            expired = delivery.expire_ended(session=session, now=now)
            delivery.cancel_leftovers(session=session)
            completed = delivery.complete_done(session=session, now=now)
        return expired, completed

    async def backlog(self, mailing_ids: list[int]) -> int:
        return await self._run(self._in_session, delivery.unsent_count, mailing_ids=mailing_ids)

    async def any_due(self, mailing_ids: list[int], now: datetime) -> bool:
        return await self._run(self._in_session, delivery.any_due, mailing_ids=mailing_ids, now=now)

    async def prune_audit(self, before: datetime) -> int:
        """Delete the audit entries made before ``before``, a small batch per transaction
        (no long lock on the table); returns how many."""
        deleted = 0
        while True:
            batch = await self._run(
                self._in_session, audit.prune, before=before, limit=audit.PRUNE_BATCH
            )
            deleted += batch
            if batch < audit.PRUNE_BATCH:
                return deleted

    # --- the daily report -------------------------------------------------------------

    def claim_report_day(self, *, day: date, now: datetime) -> report.Report | None:
        """Take the day's report for this daemon; its content, or None if taken."""
        with session_scope(self.engine) as session:
            if not report.claim_day(session=session, day=day, owner=self.owner, now=now):
                return None
            return report.build_report(session=session, now=now)

    def release_report_day(self, *, day: date) -> None:
        with session_scope(self.engine) as session:
            report.release_day(session=session, day=day, owner=self.owner)

    def mark_report_sent(self, *, day: date, now: datetime) -> None:
        with session_scope(self.engine) as session:
            report.mark_sent(session=session, day=day, owner=self.owner, now=now)

    # --- the daily pruning (services.retention) ---------------------------------------

    def claim_prune_day(self, *, day: date, now: datetime) -> bool:
        with session_scope(self.engine) as session:
            return report.claim_day(
                session=session, day=day, owner=self.owner, now=now, table=PruneRun
            )

    def renew_prune_day(self, *, day: date, now: datetime) -> None:
        with session_scope(self.engine) as session:
            report.renew_day(session=session, day=day, owner=self.owner, now=now)

    def finish_prune_day(self, *, day: date, now: datetime, done: bool) -> None:
        """Mark the day pruned, or (``done`` False: it failed) give it back."""
        with session_scope(self.engine) as session:
            if done:
                report.mark_sent(
                    session=session, day=day, owner=self.owner, now=now, table=PruneRun
                )
            else:
                report.release_day(session=session, day=day, owner=self.owner, table=PruneRun)

    def prune_steps(self, cutoffs: retention.Cutoffs) -> Iterator[retention.Removed]:
        """The pruning, a batch per ``next_batch`` (each its own transaction)."""
        return retention.steps(
            engine=self.engine, cutoffs=cutoffs, actor=audit.DAEMON, limit=retention.BATCH
        )

    async def next_batch(self, steps: Iterator[retention.Removed]) -> retention.Removed | None:
        """Run the next batch of ``steps`` in a worker thread: the totals, or None at the end."""
        return await self._run(next, steps, None)

    # ---------------------------------------------------------------------------------

    def _in_session(self, function, **kwargs):
        with session_scope(self.engine) as session:
            return function(session=session, **kwargs)


def take_over_orphans(engine: Engine) -> int:
    """Give back every claim: only for a daemon that knows it is alone (SQLite's lock)."""
    with session_scope(engine) as session:
        taken = delivery.reap_leases(session=session, now=None)
    if taken:
        logger.warning("took over {taken} messages claimed by a daemon that died", taken=taken)
    return taken
