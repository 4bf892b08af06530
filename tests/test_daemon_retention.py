"""The daemon's daily retention pruning: one daemon a day prunes, in batches, and logs it."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from loguru import logger

from daemon.housekeeping import Housekeeping
from daemon.metrics import DaemonMetrics
from daemon.store import Store
from daemon.worker import Counters
from notifyctl.config import Settings
from notifyctl.db import session_scope
from notifyctl.models import Attempt, Audit, MailingSummary, Message, PruneRun
from notifyctl.services import retention
from tests.factories import add_history

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # after the report's 08:00 (UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


def daemon_jobs(db_url, engine, clock, owner: str, lines: list[str]) -> Housekeeping:
    return Housekeeping(
        store=Store(engine, owner=owner),
        settings=Settings(database_url=db_url, report_timezone="UTC"),
        clock=clock,
        metrics=DaemonMetrics(),
        counters=Counters(),
        log=logger.bind(owner=owner),
        breaker_state=lambda: "closed",
    )


@pytest.fixture
def lines():
    """The messages the daemons of a test log (a sink of its own: another test's CLI may
    have configured loguru to show warnings only)."""
    caught: list[str] = []
    sink = logger.add(
        lambda message: caught.append(message.record["message"]),
        level="INFO",
        filter=lambda record: "owner" in record["extra"],
    )
    yield caught
    logger.remove(sink)


def rows(engine, table) -> int:
    with session_scope(engine) as session:
        return session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_one_daemon_a_day_prunes_in_batches_and_logs_what_it_removed(
    db_url, engine, session, monkeypatch, lines
):
    monkeypatch.setattr(retention, "BATCH", 2)
    monkeypatch.setattr(retention, "MIN_PAUSE", 0)
    old = add_history(session, ended=NOW - timedelta(days=400), clients=5)
    clock = Clock(NOW)
    first = daemon_jobs(db_url, engine, clock, "a", lines)
    second = daemon_jobs(db_url, engine, clock, "b", lines)
    batches = []
    next_batch = first.store.next_batch

    async def counted_batch(steps):
        totals = await next_batch(steps)
        batches.append(totals and (totals.attempt, totals.message))
        return totals

    monkeypatch.setattr(first.store, "next_batch", counted_batch)

    removed = asyncio.run(first.prune())

    assert removed.rows == {"attempt": 4, "message": 5, "mailing_summary": 1}
    assert asyncio.run(second.prune()) is None  # the day is taken
    assert rows(engine, Message) == rows(engine, Attempt) == 0
    assert rows(engine, MailingSummary) == 1
    # A transaction per step: the summary (committed first, and looked at again), then
    # 2, 2 and 1 messages with their attempts, then the walk over attempts past 30 days
    # (none left: they went with their messages), then the end.
    assert batches == [(0, 0), (0, 0), (3, 2), (4, 4), (4, 5), (4, 5), (4, 5), None]
    assert "retention: 4 attempts and 5 messages deleted, 1 mailings summarised" in lines
    with session_scope(engine) as s:
        run = s.get(PruneRun, "2026-06-01")
        entry = s.execute(sa.select(Audit).where(Audit.action == "pruned")).scalars().one()
    assert (run.owner, run.sent_at is not None) == ("a", True)
    assert (entry.actor, entry.object_id) == ("daemon", old.id)

    add_history(session, ended=NOW - timedelta(days=400), clients=5)
    clock.current = NOW + timedelta(days=1)  # the next day: the other daemon may take it
    assert asyncio.run(second.prune()).rows["message"] == 5


def test_nothing_is_pruned_before_the_time_of_day(db_url, engine, session):
    add_history(session, ended=NOW - timedelta(days=400), clients=2)
    jobs = daemon_jobs(db_url, engine, Clock(NOW.replace(hour=7)), "a", [])
    assert asyncio.run(jobs.prune()) is None
    assert rows(engine, Message) == 2
    assert rows(engine, PruneRun) == 0
