"""NOTIFY_AUDIT_RETENTION: how it is read, and the daemon applying it once a day, in small
batches."""

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
from notifyctl.models import Audit
from notifyctl.services import audit
from notifyctl.timeutil import parse_duration
from tests.factories import add_clients, add_mailing

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


def housekeeping(db_url, engine, clock, **settings) -> Housekeeping:
    return Housekeeping(
        store=Store(engine, owner="me"),
        settings=Settings(database_url=db_url, **settings),
        clock=clock,
        metrics=DaemonMetrics(),
        counters=Counters(),
        log=logger,
        breaker_state=lambda: "closed",
    )


def add_entries(engine, *ages: timedelta) -> None:
    with session_scope(engine) as session:
        for age in ages:
            audit.record(
                session=session,
                action="updated",
                object_type="client",
                object_id=int(age.days),
                changes={},
                at=NOW - age,
            )


def ages_left(engine) -> list[int]:
    with session_scope(engine) as session:
        return sorted(session.execute(sa.select(Audit.object_id)).scalars())


def test_entries_older_than_the_retention_are_deleted_once_a_day_in_batches(
    db_url, engine, monkeypatch
):
    monkeypatch.setattr(audit, "PRUNE_BATCH", 1)  # a transaction per entry: the loop is seen
    add_entries(engine, timedelta(days=40), timedelta(days=31), timedelta(days=29), timedelta(0))
    clock = Clock(NOW)
    jobs = housekeeping(db_url, engine, clock, audit_retention="30d")

    assert asyncio.run(jobs.prune_audit()) == 2
    assert ages_left(engine) == [0, 29]

    add_entries(engine, timedelta(days=50))
    clock.current = NOW + timedelta(hours=23)  # not a day since: nothing is done
    assert asyncio.run(jobs.prune_audit()) == 0
    assert ages_left(engine) == [0, 29, 50]

    clock.current = NOW + timedelta(days=1, hours=12)  # the next day: 29 days is 30.5 now
    assert asyncio.run(jobs.prune_audit()) == 2
    assert ages_left(engine) == [0]


@pytest.mark.parametrize("retention", [None, "0", "0d"])
def test_no_retention_keeps_everything(db_url, engine, retention):
    add_entries(engine, timedelta(days=4000))
    jobs = housekeeping(db_url, engine, Clock(NOW), audit_retention=retention)
    assert asyncio.run(jobs.prune_audit()) == 0
    assert ages_left(engine) == [4000]


def test_a_retention_longer_than_the_calendar_deletes_nothing(db_url, engine):
    add_entries(engine, timedelta(days=4000))
    jobs = housekeeping(db_url, engine, Clock(NOW), audit_retention="3000000d")
    assert asyncio.run(jobs.prune_audit()) == 0
    assert ages_left(engine) == [4000]


def test_the_daemons_jobs_record_activation_and_expiry_as_daemon(db_url, engine, session):
    add_clients(session, 2)
    start = datetime.now(UTC)
    mailing = add_mailing(session, now=start, lasts=timedelta(minutes=5))
    clock = Clock(start)
    jobs = housekeeping(db_url, engine, clock)
    asyncio.run(jobs.activate())
    clock.current = start + timedelta(minutes=6)
    asyncio.run(jobs.expire())
    with session_scope(engine) as s:
        recorded = s.execute(
            sa.select(Audit.actor, Audit.action, Audit.object_id, Audit.at)
            .where(Audit.actor == "daemon")
            .order_by(Audit.id)
        ).all()
    assert recorded == [
        ("daemon", "activated", mailing.id, start),
        ("daemon", "expired", mailing.id, start + timedelta(minutes=6)),
    ]


def test_the_retention_setting_takes_durations_and_refuses_anything_else():
    assert Settings(audit_retention="365d").audit_retention == timedelta(days=365)
    assert Settings(audit_retention="12h").audit_retention == timedelta(hours=12)
    assert Settings(audit_retention="0").audit_retention is None
    assert Settings(audit_retention="").audit_retention is None
    with pytest.raises(ValueError, match="not a duration"):
        Settings(audit_retention="1 year")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("365d", timedelta(days=365)),
        (" 12H ", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("0", timedelta(0)),
        ("0d", timedelta(0)),
    ],
)
def test_durations_are_read_with_their_unit(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "d", "365", "1y", "-1d", "1.5d", "1d2h", "9" * 30 + "d"])
def test_anything_else_is_not_a_duration(text):
    with pytest.raises(ValueError, match=r"duration|longer"):
        parse_duration(text)
