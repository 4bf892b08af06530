"""The totals the admin UI's dashboard opens with: clients, the last day's messages, mailings
running now.

One query per figure, none of them reading every message, so that the dashboard stays
fast on a million messages (``tests/test_services_dashboard.py`` checks the plans):

- clients and opted-out clients: one pass over ``client`` (two counts);
- messages sent per hour: the partial index ``ix_message_sent_at`` (``sent_at`` of sent
  messages, migration 0007), read from ``since`` on;
- messages failed per hour: a failed message has no time of its own; it failed at its last
  attempt. The failed messages come from ``ix_message_failed`` (partial) and each one's last
  attempt from ``ix_attempt_message_id``: the cost grows with the failed messages stored,
  not with the sent ones;
- mailings running now: ``mailing`` (a small table).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from notifyctl.models import Attempt, Client, Mailing, MessageStatus, UTCDateTime
from notifyctl.timeutil import utcnow

PERIOD = timedelta(hours=24)  # what "the last day" covers
STEP = timedelta(hours=1)  # one bar of the chart


@dataclass(frozen=True, slots=True)
class DashboardTotals:
    """The dashboard's figures at ``until``; ``sent`` and ``failed`` per ``step`` from ``since``."""

    clients: int
    opted_out: int
    running: int
    since: datetime
    until: datetime
    step: timedelta
    sent: list[int]
    failed: list[int]

    @property
    def sent_total(self) -> int:
        return sum(self.sent)

    @property
    def failed_total(self) -> int:
        return sum(self.failed)

    @property
    def peak(self) -> int:
        """The highest bar (sent and failed of one step together), at least 1."""
        return max([1, *(s + f for s, f in zip(self.sent, self.failed, strict=True))])


def dashboard_totals(*, session: Session, now: datetime | None = None) -> DashboardTotals:
    """The figures of the last ``PERIOD`` up to ``now`` (the current time unless given)."""
    until = now or utcnow()
    # From a whole second: rows' times are compared in whole seconds below.
    since = until.replace(microsecond=0) - PERIOD
    clients, opted_out = session.execute(
        sa.select(sa.func.count(), sa.func.count(Client.opted_out_at))
    ).one()
    return DashboardTotals(
        clients=clients,
        opted_out=opted_out,
        running=running_now(session=session, now=until),
        since=since,
        until=until,
        step=STEP,
        sent=_sent_per_step(session, since),
        failed=_failed_per_step(session, since),
    )


def running_now(*, session: Session, now: datetime) -> int:
    """How many mailings are in the state ``running`` at ``now`` (``services.state``)."""
    return session.execute(
        sa.select(sa.func.count())
        .select_from(Mailing)
        .where(
            Mailing.start_at <= now,
            Mailing.end_at > now,
            Mailing.paused_at.is_(None),
            Mailing.cancelled_at.is_(None),
            Mailing.completed_at.is_(None),
        )
    ).scalar_one()


def _sent_per_step(session: Session, since: datetime) -> list[int]:
    # The status as a literal, not a parameter: only then may the planners (SQLite's, and
    # PostgreSQL's generic plans) use the partial index, whose condition it is. SQLite,
    # with no statistics, would rather take the equality on ``ix_message_mailing_status``
    # and visit every message ever sent: it is told which index to use, in the FROM
    # clause (SQLAlchemy renders no table hint for SQLite), so the columns are named
    # without their table.
    sent_at, status = sa.column("sent_at", UTCDateTime()), sa.column("status", sa.String)
    source = _messages(session, "ix_message_sent_at")
    bucket = _bucket(session, sent_at, since)
    query = (
        sa.select(bucket, sa.func.count())
        .select_from(source)
        .where(status == sa.literal_column(f"'{MessageStatus.sent.value}'"), sent_at >= since)
        .group_by(bucket)
    )
    return _per_step(session.execute(query))


def _messages(session: Session, index: str):
    """``message`` as a FROM clause; on SQLite told to read ``index`` (see above)."""
    if session.get_bind().dialect.name == "sqlite":
        return sa.table(sa.sql.quoted_name(f"message INDEXED BY {index}", quote=False))
    return sa.table("message")


def _failed_per_step(session: Session, since: datetime) -> list[int]:
    # (the message's columns by name: its FROM is ``_messages``, as for the sent ones)
    message_id, status = sa.literal_column("message.id"), sa.literal_column("message.status")
    last_attempt = (
        sa.select(sa.func.max(Attempt.started_at))
        .where(Attempt.message_id == message_id)
        .scalar_subquery()
    )
    # Materialised: merged into the query around it, the subquery would be run twice per
    # failed message, for the filter and again for the grouping (PostgreSQL's plan).
    failed = (
        sa.select(last_attempt.label("at"))
        .select_from(_messages(session, "ix_message_failed"))
        .where(status == sa.literal_column(f"'{MessageStatus.failed.value}'"))
        .cte("failed")
        .prefix_with("MATERIALIZED")
    )
    bucket = _bucket(session, failed.c.at, since)
    query = sa.select(bucket, sa.func.count()).where(failed.c.at >= since).group_by(bucket)
    return _per_step(session.execute(query))


def _bucket(session: Session, at: sa.ColumnElement, since: datetime) -> sa.ColumnElement:
    """Which ``STEP`` from ``since`` the time ``at`` falls in (0, 1, …)."""
    step = int(STEP.total_seconds())
    return (_whole_seconds(session, at) - int(since.timestamp())) // step


def _per_step(grouped) -> list[int]:
    """(bucket, count) rows as a list of counts, one per ``STEP`` of ``PERIOD``."""
    steps = int(PERIOD / STEP)
    counts = [0] * steps
    for index, n in grouped:
        # (a time a moment past ``until``, or ahead of a daemon's clock, joins the last bar)
        counts[min(max(int(index), 0), steps - 1)] += n
    return counts


def _whole_seconds(session: Session, column: sa.ColumnElement) -> sa.ColumnElement:
    """Seconds since 1970 of a stored time, rounded down (PostgreSQL's cast would round)."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.func.floor(sa.extract("epoch", column)), sa.BigInteger)
    return sa.cast(sa.func.strftime("%s", column), sa.Integer)
