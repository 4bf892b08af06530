"""Statistics: one mailing in detail, its messages and their attempts, its timeline.

Every mailing's counts are in ``services.counts`` (read without the ORM), re-exported here.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from notifyctl.errors import NotFound
from notifyctl.models import Attempt, MailingSummary, Message, MessageStatus, Page
from notifyctl.services import validation
from notifyctl.services.counts import MailingStats as MailingStats
from notifyctl.services.counts import counts_by_status, zero_counts
from notifyctl.services.counts import overall_stats as overall_stats
from notifyctl.services.mailings import get_mailing, mailing_state


def mailing_stats(*, session: Session, mailing_id: int) -> MailingStats:
    """One mailing's message counts by status (its summary's once it is pruned)."""
    mailing = get_mailing(session=session, mailing_id=mailing_id)
    counts, pruned = counts_by_status(session=session, mailing_ids=[mailing_id])
    by_status = counts.get(mailing_id, zero_counts())
    state, total = mailing_state(mailing), sum(by_status.values())
    return MailingStats(
        mailing.id, state, total, by_status, name=mailing.name, pruned_at=pruned.get(mailing_id)
    )


def list_messages(
    *,
    session: Session,
    mailing_id: int,
    status: MessageStatus | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[Message]:
    """One page of a mailing's messages in id order, optionally of one status; none at
    all once the mailing is pruned (even while its rows are still being deleted)."""
    get_mailing(session=session, mailing_id=mailing_id)
    limit, offset = validation.page_bounds(limit, offset)
    if session.get(MailingSummary, mailing_id) is not None:
        return Page(total=0, limit=limit, offset=offset, items=[])
    conditions = [Message.mailing_id == mailing_id]
    if status is not None:
        conditions.append(Message.status == status)
    total = session.execute(
        sa.select(sa.func.count()).select_from(Message).where(*conditions)
    ).scalar_one()
    rows = session.execute(
        sa.select(Message).where(*conditions).order_by(Message.id).limit(limit).offset(offset)
    ).scalars()
    return Page(total=total, limit=limit, offset=offset, items=list(rows))


def get_message(*, session: Session, message_id: int) -> tuple[Message, list[Attempt]]:
    """A message with every attempt made for it, oldest first."""
    message = session.get(Message, message_id) if validation.storable_id(message_id) else None
    if message is None:
        raise NotFound(f"no message with id {message_id}", field="id")
    attempts = session.execute(
        sa.select(Attempt).where(Attempt.message_id == message_id).order_by(Attempt.id)
    ).scalars()
    return message, list(attempts)


@dataclass(frozen=True, slots=True)
class Timeline:
    """Messages sent per time step, from ``start`` on (for the chart of a mailing)."""

    start: datetime
    step: timedelta
    counts: list[int]


def _epoch_seconds(session: Session, column: sa.ColumnElement) -> sa.ColumnElement:
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.extract("epoch", column), sa.BigInteger)
    return sa.cast(sa.func.strftime("%s", column), sa.Integer)


def delivery_timeline(*, session: Session, mailing_id: int, buckets: int = 60) -> Timeline | None:
    """A mailing's sent messages counted in at most ``buckets`` equal steps; None if none sent.

    Grouped in the database, so a million messages cost one scan and no Python loop. A
    pruned mailing's is the one its summary kept (counted with the default ``buckets``).
    """
    get_mailing(session=session, mailing_id=mailing_id)
    summary = session.get(MailingSummary, mailing_id)
    if summary is not None:
        return timeline_from_json(summary.timeline)
    second = _epoch_seconds(session, Message.sent_at)
    sent = [Message.mailing_id == mailing_id, Message.status == MessageStatus.sent]
    first, last = session.execute(
        sa.select(sa.func.min(second), sa.func.max(second)).where(*sent)
    ).one()
    if first is None:
        return None
    step = max(1, -(-(last - first + 1) // buckets))  # whole seconds, rounded up
    bucket = (second - first) // step
    counts = [0] * (((last - first) // step) + 1)
    for index, n in session.execute(
        sa.select(bucket, sa.func.count()).where(*sent).group_by(bucket)
    ):
        counts[int(index)] = n
    return Timeline(datetime.fromtimestamp(first, UTC), timedelta(seconds=step), counts)


def timeline_json(timeline: Timeline | None) -> dict | None:
    """A timeline as a summary stores it (``models.MailingSummary.timeline``)."""
    if timeline is None:
        return None
    return {
        "start": int(timeline.start.timestamp()),
        "step": int(timeline.step.total_seconds()),
        "counts": timeline.counts,
    }


def timeline_from_json(stored: dict | None) -> Timeline | None:
    if stored is None:
        return None
    start = datetime.fromtimestamp(stored["start"], UTC)
    return Timeline(start, timedelta(seconds=stored["step"]), list(stored["counts"]))
