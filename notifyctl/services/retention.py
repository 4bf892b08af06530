"""Retention: what NOTIFY_RETENTION_ATTEMPTS and NOTIFY_RETENTION_MESSAGES remove, and
removing it (``notifyctl db prune``, and the daemon once a day).

- **attempts**: an attempt row that started longer ago than the attempt retention goes.
  The message keeps its ``attempts`` count; only each request's answer is forgotten.
- **mailings**: a mailing that ended longer ago than the message retention, and can send
  nothing more (completed or cancelled, no message pending or in flight), keeps only its
  counts. A summary row (``mailing_summary``) is written and committed first: from then
  on every count of the mailing is read from it (``services.counts``). Then its message
  rows, and their attempts, go: on PostgreSQL a partition (a range of mailing ids) whose
  mailings are all pruned is dropped whole; what is left goes in batches
  (``prune_mailing``).

Every batch is its own short transaction of at most ``BATCH`` rows, found through an
index or the primary key, so that no lock is held long and sending goes on meanwhile;
``steps`` yields between batches so that a caller may pause, report or stop.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from notifyctl.db import session_scope
from notifyctl.models import Attempt, Mailing, MailingSummary, Message, MessageStatus
from notifyctl.services import audit, partitions
from notifyctl.services.counts import zero_counts
from notifyctl.services.stats import delivery_timeline, timeline_json
from notifyctl.states import UNSENT_STATUSES

BATCH = 5_000  # rows deleted per transaction (attempts; messages with their attempts)
#: after each batch a pause as long as the batch took, times PACE (at least MIN_PAUSE):
#: pruning then takes at most half of the database's time, and sending keeps the rest
PACE = 1.0
MIN_PAUSE = 0.05  # seconds


def pause_after(seconds: float) -> float:
    """How long to pause after a batch that took ``seconds``."""
    return max(MIN_PAUSE, seconds * PACE)


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """What is old enough to go: attempts started, mailings ended, before these (None:
    kept forever)."""

    attempts: datetime | None
    messages: datetime | None


def cutoffs(*, now: datetime, attempts: timedelta | None, messages: timedelta | None) -> Cutoffs:
    """The cutoffs of the two retentions at ``now`` (a falsy retention keeps forever)."""

    def before(period: timedelta | None) -> datetime | None:
        if not period:
            return None
        try:
            return now - period
        except OverflowError:  # longer than the calendar goes back: nothing is that old
            return None

    return Cutoffs(attempts=before(attempts), messages=before(messages))


@dataclass(slots=True)
class Removed:
    """Rows per table removed (or that would be), and the mailings summarised."""

    attempt: int = 0
    message: int = 0
    mailings: list[int] = field(default_factory=list)

    @property
    def rows(self) -> dict[str, int]:
        """Per table: rows deleted from ``attempt`` and ``message``, rows written to
        ``mailing_summary``."""
        return {
            "attempt": self.attempt,
            "message": self.message,
            "mailing_summary": len(self.mailings),
        }


def _due(before: datetime) -> list[sa.ColumnElement[bool]]:
    """The conditions on ``Mailing`` of one to prune: ended before ``before``, done with
    (completed or cancelled), with no message that may still be sent and some left."""
    unsent = sa.exists().where(
        Message.mailing_id == Mailing.id, Message.status.in_([s.value for s in UNSENT_STATUSES])
    )
    return [
        Mailing.activated_at.is_not(None),
        Mailing.end_at < before,
        sa.or_(Mailing.completed_at.is_not(None), Mailing.cancelled_at.is_not(None)),
        ~unsent,
        sa.exists().where(Message.mailing_id == Mailing.id),
    ]


def due_mailings(*, session: Session, before: datetime) -> list[int]:
    """The mailings whose message rows are to go now, oldest first (including one whose
    pruning began and was interrupted: it has rows left)."""
    query = sa.select(Mailing.id).where(*_due(before)).order_by(Mailing.id)
    return list(session.execute(query).scalars())


def plan(*, session: Session, cutoffs: Cutoffs) -> Removed:
    """What ``prune`` would remove now, counted (nothing changes)."""
    due = due_mailings(session=session, before=cutoffs.messages) if cutoffs.messages else []
    of_due = Message.mailing_id.in_(due)
    messages = session.execute(sa.select(sa.func.count()).where(of_due)).scalar_one()
    gone = sa.select(Message.id).where(of_due)
    old = Attempt.started_at < cutoffs.attempts if cutoffs.attempts else sa.false()
    attempts = session.execute(
        sa.select(sa.func.count()).where(sa.or_(old, Attempt.message_id.in_(gone)))
    ).scalar_one()
    summarised = set(
        session.execute(
            sa.select(MailingSummary.mailing_id).where(MailingSummary.mailing_id.in_(due))
        ).scalars()
    )
    return Removed(attempts, messages, [m for m in due if m not in summarised])


def summarise(*, session: Session, mailing_id: int, before: datetime) -> bool:
    """Write the mailing's summary, if it is (still, under its row's lock) due and has
    none; True if written. The audit log says ``pruned``, with the counts kept."""
    session.execute(sa.select(Mailing.id).where(Mailing.id == mailing_id).with_for_update())
    if session.get(MailingSummary, mailing_id) is not None:
        return False
    due = sa.select(Mailing.id).where(Mailing.id == mailing_id, *_due(before))
    if session.execute(due).first() is None:
        return False
    by_status = zero_counts()
    for status, n in session.execute(
        sa.select(Message.status, sa.func.count())
        .where(Message.mailing_id == mailing_id)
        .group_by(Message.status)
    ):
        by_status[status] = n
    first, last = session.execute(
        sa.select(sa.func.min(Message.sent_at), sa.func.max(Message.sent_at)).where(
            Message.mailing_id == mailing_id, Message.status == MessageStatus.sent
        )
    ).one()
    # (every message's requests count, sent or not)
    attempts = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(Message.attempts), 0)).where(
            Message.mailing_id == mailing_id
        )
    ).scalar_one()
    timeline = timeline_json(delivery_timeline(session=session, mailing_id=mailing_id))
    total = sum(by_status.values())
    session.add(
        MailingSummary(
            mailing_id=mailing_id,
            **by_status,
            total=total,
            first_sent_at=first,
            last_sent_at=last,
            attempts=int(attempts),
            timeline=timeline,
        )
    )
    audit.record(
        session=session,
        action="pruned",
        object_type="mailing",
        object_id=mailing_id,
        changes={"messages": [None, total], "attempts": [None, int(attempts)]},
    )
    return True


def delete_messages(*, session: Session, mailing_id: int, limit: int = BATCH) -> tuple[int, int]:
    """Delete up to ``limit`` of a summarised mailing's messages and their attempts;
    returns (attempts, messages) deleted. Without a summary nothing is deleted."""
    batch = (
        sa.select(Message.id)
        .where(
            Message.mailing_id == mailing_id,
            sa.exists().where(MailingSummary.mailing_id == mailing_id),
        )
        .order_by(Message.id)
        .limit(limit)
    )
    # (with the mailing named, PostgreSQL looks in its partition only)
    attempts = session.execute(
        sa.delete(Attempt).where(Attempt.mailing_id == mailing_id, Attempt.message_id.in_(batch))
    ).rowcount
    messages = session.execute(
        sa.delete(Message).where(Message.mailing_id == mailing_id, Message.id.in_(batch))
    ).rowcount
    return attempts, messages


def delete_attempts(
    *, session: Session, before: datetime, after_id: int, limit: int = BATCH
) -> tuple[int, int | None]:
    """Delete the attempts started before ``before`` among the ``limit`` next ones in id
    order after ``after_id``; returns how many and the last id looked at, or None when
    the walk is over: nothing left, or a whole window of attempts started since.

    Walked in id order (no index on the start time to keep up at every send). Ids grow
    with time, so once a whole window is newer than ``before``, so is everything after
    it, and the walk stops there rather than reading every attempt kept (an attempt
    recorded late behind that window goes at the next day's run).
    """
    window = (
        sa.select(Attempt.id, Attempt.started_at)
        .where(Attempt.id > after_id)
        .order_by(Attempt.id)
        .limit(limit)
        .subquery()
    )
    last, oldest = session.execute(
        sa.select(sa.func.max(window.c.id), sa.func.min(window.c.started_at))
    ).one()
    if last is None or oldest >= before:
        return 0, None
    deleted = session.execute(
        sa.delete(Attempt).where(
            Attempt.id > after_id, Attempt.id <= last, Attempt.started_at < before
        )
    ).rowcount
    return deleted, last


@dataclass(frozen=True, slots=True)
class Batch:
    """One transaction of ``prune_mailing``: the summary written, or rows deleted."""

    summarised: bool = False
    attempts: int = 0
    messages: int = 0


def prune_mailing(
    *, engine: Engine, mailing_id: int, before: datetime, actor: str, limit: int = BATCH
) -> Iterator[Batch]:
    """Prune one mailing: its summary committed first, then its rows batch by batch,
    each its own transaction (yielded after each). A mailing no longer due, and not
    summarised before, keeps its rows."""
    with session_scope(engine, actor=actor) as session:
        summarised = summarise(session=session, mailing_id=mailing_id, before=before)
    yield Batch(summarised=summarised)
    while True:
        with session_scope(engine, actor=actor) as session:
            attempts, messages = delete_messages(
                session=session, mailing_id=mailing_id, limit=limit
            )
        if not messages:
            return
        yield Batch(attempts=attempts, messages=messages)


def steps(*, engine: Engine, cutoffs: Cutoffs, actor: str, limit: int = BATCH) -> Iterator[Removed]:
    """Prune everything due, a transaction per batch; yields the running totals after
    each batch (the last yielded is the whole).

    Mailings first: each one's summary is committed, then on PostgreSQL every partition
    whose mailings are all pruned is dropped whole (``partitions.drop_whole_ranges``), then what is
    left of them goes in batches. Old attempts last: those of dropped partitions are gone.
    """
    removed = Removed()
    if cutoffs.messages is not None:
        with session_scope(engine, actor=actor) as session:
            due = due_mailings(session=session, before=cutoffs.messages)
        for mailing_id in due:
            with session_scope(engine, actor=actor) as session:
                if summarise(session=session, mailing_id=mailing_id, before=cutoffs.messages):
                    removed.mailings.append(mailing_id)
            yield removed
        for attempts, messages in partitions.drop_whole_ranges(engine=engine, mailing_ids=due):
            removed.attempt += attempts
            removed.message += messages
            yield removed
        for mailing_id in due:
            for batch in prune_mailing(
                engine=engine,
                mailing_id=mailing_id,
                before=cutoffs.messages,
                actor=actor,
                limit=limit,
            ):
                removed.attempt += batch.attempts
                removed.message += batch.messages
                if batch.summarised:
                    removed.mailings.append(mailing_id)
                yield removed
    if cutoffs.attempts is not None:
        after: int | None = 0
        while after is not None:
            with session_scope(engine, actor=actor) as session:
                deleted, after = delete_attempts(
                    session=session, before=cutoffs.attempts, after_id=after, limit=limit
                )
            removed.attempt += deleted
            yield removed
    yield removed


def prune(*, engine: Engine, cutoffs: Cutoffs, actor: str, limit: int = BATCH) -> Removed:
    """Prune everything due (``steps`` run to the end); returns what was removed."""
    *_, removed = steps(engine=engine, cutoffs=cutoffs, actor=actor, limit=limit)
    return removed


@dataclass(frozen=True, slots=True)
class Size:
    """What the database says of its size: bytes in all, and (SQLite) bytes free inside
    the file, which only ``VACUUM`` gives back."""

    bytes: int
    free_bytes: int | None = None


def database_size(*, session: Session) -> Size | None:
    """The database's size where the database tells (PostgreSQL, SQLite); else None."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return Size(
            session.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
        )
    if dialect == "sqlite":
        pragma = lambda name: session.execute(sa.text(f"PRAGMA {name}")).scalar_one()  # noqa: E731
        page = pragma("page_size")
        return Size(pragma("page_count") * page, pragma("freelist_count") * page)
    return None
