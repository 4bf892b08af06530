"""Retention: what NOTIFY_RETENTION_ATTEMPTS / NOTIFY_RETENTION_MESSAGES remove, the summary
a pruned mailing keeps, and its counts read from it from the moment it exists."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from notifyctl.config import Settings
from notifyctl.db import connection_scope
from notifyctl.models import Attempt, Audit, MailingSummary, Message
from notifyctl.services import audience, cost, counts, report, retention, stats
from tests.factories import add_clients, add_history, add_mailing

NOW = datetime.now(UTC).replace(microsecond=0)
YEAR = timedelta(days=365)


def keep(attempts=timedelta(days=30), messages=YEAR) -> retention.Cutoffs:
    return retention.cutoffs(now=NOW, attempts=attempts, messages=messages)


def counted(session, table) -> int:
    return session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def everything_shown(session, mailing_id: int) -> tuple:
    """What every reader of a mailing's counts says of it."""
    session.expire_all()
    one = stats.mailing_stats(session=session, mailing_id=mailing_id)
    (row,) = stats.overall_stats(session=session, mailing_ids=[mailing_id])
    spent = cost.mailing_cost(session=session, stats=one, price=Decimal("0.05"))
    timeline = stats.delivery_timeline(session=session, mailing_id=mailing_id)
    daily = report.build_report(session=session, now=NOW, hours=24 * 800)
    (line,) = [r for r in daily.rows if r.mailing_id == mailing_id]
    return (
        (one.state, one.total, one.by_status),
        (row.state, row.total, row.by_status),
        spent,
        timeline,
        (line.total, line.by_status),
    )


def test_a_mailing_past_its_retention_keeps_every_count_and_loses_its_rows(engine, session):
    old = add_history(session, ended=NOW - YEAR - timedelta(days=1), clients=13)
    before = everything_shown(session, old.id)

    planned = retention.plan(session=session, cutoffs=keep())
    removed = retention.prune(engine=engine, cutoffs=keep(), actor="cli:ops")

    assert planned.rows == removed.rows == {"attempt": 13, "message": 13, "mailing_summary": 1}
    assert everything_shown(session, old.id) == before
    assert counted(session, Message) == counted(session, Attempt) == 0
    summary = session.get(MailingSummary, old.id)
    assert (summary.sent, summary.failed, summary.total, summary.attempts) == (7, 2, 13, 13)
    assert summary.first_sent_at == old.start_at
    assert summary.last_sent_at == old.start_at + timedelta(minutes=7 * 12)
    one = stats.mailing_stats(session=session, mailing_id=old.id)
    assert one.pruned_at == summary.pruned_at is not None
    page = stats.list_messages(session=session, mailing_id=old.id)
    assert (page.items, page.total) == ([], 0)
    entry = session.execute(sa.select(Audit).where(Audit.action == "pruned")).scalars().one()
    assert (entry.actor, entry.object_id, entry.changes) == (
        "cli:ops",
        old.id,
        {"messages": [None, 13], "attempts": [None, 13]},
    )


def test_half_pruned_mailing_still_shows_its_full_counts(engine, session):
    old = add_history(session, ended=NOW - 2 * YEAR, clients=6)
    before = everything_shown(session, old.id)
    batches = retention.prune_mailing(
        engine=engine, mailing_id=old.id, before=NOW - YEAR, actor="daemon", limit=2
    )
    assert next(batches).summarised
    assert next(batches).messages == 2  # stopped here: 4 of the 6 rows are left
    assert counted(session, Message) == 4
    assert everything_shown(session, old.id) == before
    assert [b.messages for b in batches] == [2, 2]
    assert everything_shown(session, old.id) == before


def test_only_finished_mailings_past_the_retention_are_pruned(engine, session):
    add_clients(session, 3)
    young = add_history(session, ended=NOW - YEAR + timedelta(days=1), clients=3)
    stuck = add_history(session, ended=NOW - 2 * YEAR, clients=3)
    session.execute(
        sa.update(Message).where(Message.mailing_id == stuck.id).values(status="sending")
    )
    never_finished = add_mailing(session, now=NOW - 2 * YEAR, lasts=timedelta(hours=1))
    audience.materialise(session=session, mailing=never_finished, now=NOW - 2 * YEAR)
    session.commit()
    rows = counted(session, Message)

    removed = retention.prune(engine=engine, cutoffs=keep(attempts=None), actor="daemon")

    assert removed.rows == {"attempt": 0, "message": 0, "mailing_summary": 0}
    assert counted(session, Message) == rows
    assert young.id
    assert counted(session, MailingSummary) == 0


def test_attempts_older_than_their_retention_go_and_the_messages_keep_their_count(engine, session):
    mailing = add_history(session, ended=NOW - timedelta(days=20), clients=6, lasts=YEAR)
    recent = Attempt.id % 2 == 0  # old and recent ones interleaved in id order
    session.execute(sa.update(Attempt).where(recent).values(started_at=NOW - timedelta(days=29)))
    session.commit()
    cut = NOW - timedelta(days=30)
    old = session.execute(sa.select(sa.func.count()).where(Attempt.started_at < cut)).scalar_one()
    kept = counted(session, Attempt) - old
    assert old
    assert kept
    sums = stats.mailing_stats(session=session, mailing_id=mailing.id)

    assert retention.plan(session=session, cutoffs=keep()).attempt == old
    # (windows of 2: each holds an old attempt, so the walk goes to the end)
    removed = retention.prune(engine=engine, cutoffs=keep(), actor="daemon", limit=2)

    assert removed.rows == {"attempt": old, "message": 0, "mailing_summary": 0}
    assert counted(session, Attempt) == kept
    session.expire_all()
    assert stats.mailing_stats(session=session, mailing_id=mailing.id) == sums
    total_tries = session.execute(sa.select(sa.func.sum(Message.attempts))).scalar_one()
    assert total_tries == 1 + 2 + 1 + 0 + 0 + 2


def test_the_walk_over_attempts_stops_at_a_whole_window_of_recent_ones(engine, session):
    """Ids grow with time: past a window of attempts all younger than the retention, the
    walk reads no further (it would read every attempt kept, every day). An old attempt
    recorded late behind that window goes at a later run."""
    add_history(session, ended=NOW - timedelta(days=20), clients=12, lasts=YEAR)
    ids = session.execute(sa.select(Attempt.id).order_by(Attempt.id)).scalars().all()
    assert len(ids) >= 12
    young = ids[4:10]  # old ones, then six young ones, then old ones recorded late
    session.execute(sa.update(Attempt).values(started_at=NOW - timedelta(days=40)))
    session.execute(
        sa.update(Attempt).where(Attempt.id.in_(young)).values(started_at=NOW - timedelta(days=1))
    )
    session.commit()
    late = len(ids) - 10

    removed = retention.prune(engine=engine, cutoffs=keep(messages=None), actor="daemon", limit=3)

    assert removed.attempt == 4
    assert counted(session, Attempt) == len(young) + late
    session.execute(
        sa.update(Attempt).where(Attempt.id.in_(young)).values(started_at=NOW - timedelta(days=40))
    )
    session.commit()
    assert (
        retention.prune(engine=engine, cutoffs=keep(messages=None), actor="daemon", limit=3).attempt
        == len(young) + late
    )


@pytest.mark.parametrize("setting", ["0", "0d"])
def test_a_retention_of_zero_keeps_everything(engine, session, setting):
    add_history(session, ended=NOW - 30 * YEAR, clients=4)
    settings = Settings(retention_attempts=setting, retention_messages=setting)
    cutoffs = retention.cutoffs(
        now=NOW, attempts=settings.retention_attempts, messages=settings.retention_messages
    )
    assert cutoffs == retention.Cutoffs(None, None)
    assert retention.prune(engine=engine, cutoffs=cutoffs, actor="daemon").rows == {
        "attempt": 0,
        "message": 0,
        "mailing_summary": 0,
    }
    assert counted(session, Message) == 4


def test_a_retention_longer_than_the_calendar_removes_nothing():
    assert retention.cutoffs(now=NOW, attempts=timedelta(days=3_000_000), messages=None) == (
        retention.Cutoffs(None, None)
    )


def test_the_settings_default_to_30_and_365_days_and_refuse_anything_else():
    settings = Settings()
    assert (settings.retention_attempts, settings.retention_messages) == (
        timedelta(days=30),
        YEAR,
    )
    assert Settings(retention_messages="12h").retention_messages == timedelta(hours=12)
    for field in ("retention_attempts", "retention_messages"):
        with pytest.raises(ValueError, match=f"{field}(.|\n)*not a duration"):
            Settings(**{field: "1 year"})


def test_the_database_tells_its_size(session):
    size = retention.database_size(session=session)
    assert size is not None
    assert size.bytes > 0
    if session.get_bind().dialect.name == "sqlite":
        assert size.free_bytes is not None
        assert 0 <= size.free_bytes <= size.bytes


def test_counts_read_while_a_mailing_is_pruned_stay_whole(engine, session):
    """``counts_by_status`` reads the rows and the summaries in two statements: a mailing
    pruned between them (summary committed, rows deleted) still counts whole."""
    now = datetime.now(UTC)
    old = add_history(session, ended=now - timedelta(days=10), clients=9)
    cut = retention.cutoffs(now=now, attempts=None, messages=timedelta(days=1))
    fired = []

    def prune_meanwhile(conn, cursor, statement, parameters, context, executemany):
        # (right after the first of its two reads, whichever comes first)
        if not fired and ("mailing_summary" in statement or "GROUP BY" in statement):
            fired.append(True)
            retention.prune(engine=engine, cutoffs=cut, actor="t")

    sa.event.listen(engine, "after_cursor_execute", prune_meanwhile)
    try:
        with connection_scope(engine) as connection:
            by_mailing, _ = counts.counts_by_status(session=connection)
    finally:
        sa.event.remove(engine, "after_cursor_execute", prune_meanwhile)
    assert fired
    assert sum(by_mailing[old.id].values()) == 9, by_mailing
