"""The daemon under the faults real deployments hit: each test is one scenario that used
to break it (a database gone during an API outage, a mailing deleted mid-send, a long
Retry-After, huge error bodies, cron-style burst runs, crashing loops, a stalled daemon)."""

import asyncio
import contextlib
import json
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from daemon import worker as worker_module
from daemon.clock import SystemClock
from notifyctl.db import make_engine
from notifyctl.models import Mailing, Message, MessageStatus
from notifyctl.services import delivery, mailings
from notifyctl.timeutil import utcnow
from tests.conftest import POSTGRES_ADMIN_URL
from tests.daemon_helpers import (
    MockApi,
    change,
    fresh_postgres_mailing,
    run_worker,
    settings_for,
    start_daemon,
    statuses,
    stop,
    wait_for,
)
from tests.factories import add_clients, add_mailing


@contextlib.contextmanager
def database_refused(url: str):
    """PostgreSQL refuses the database: every session is cut, no new one is let in."""
    name = make_url(url).database
    admin = make_engine(POSTGRES_ADMIN_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
    try:
        yield
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()


def by_text(received: list[dict], text: str) -> list[dict]:
    return [item for item in received if item["text"] == text]


@pytest.mark.slow
def test_the_database_down_during_an_api_outage_stalls_no_daemon(postgres_url, mock_api):
    clients = 3000
    mailing = fresh_postgres_mailing(postgres_url, clients=clients)
    mock_api.faults(latency_ms=5)
    daemons = [
        start_daemon(postgres_url, mock_api, NOTIFY_BREAKER_THRESHOLD="10") for _ in range(2)
    ]
    wait_for(lambda: len(mock_api.received()) >= 300)
    mock_api.faults(outage_seconds=8)
    time.sleep(1.5)  # the breaker opens and probes
    with database_refused(postgres_url):
        time.sleep(6)
    back = time.monotonic()

    wait_for(lambda: statuses(postgres_url, mailing.id) == {"sent": clients}, timeout=60)

    assert time.monotonic() - back < 60
    assert all(daemon.poll() is None for daemon in daemons)  # alive, and working
    assert [stop(daemon) for daemon in daemons] == [0, 0]
    received = mock_api.received()
    assert len({item["phone"] for item in received}) == clients
    assert len(received) == clients  # no client under two ids


def test_deleting_a_mailing_mid_send_leaves_recording_working(db_url, session, mock_api):
    add_clients(session, 200)
    mock_api.faults(latency_ms=30)
    doomed = add_mailing(session, text="doomed")
    other = add_mailing(session, text="other")
    deleted = []

    def delete_while_sending(_worker) -> None:
        if not deleted and len(mock_api.received()) >= 40:
            change(db_url, mailings.delete_mailing, mailing_id=doomed.id)
            deleted.append(True)

    run_worker(
        settings_for(db_url, mock_api, concurrency=20),
        burst=False,
        until=lambda: statuses(db_url, other.id) == {"sent": 200},
        during=delete_while_sending,
        timeout=60,
    )

    assert deleted
    assert statuses(db_url, other.id) == {"sent": 200}
    sent = by_text(mock_api.received(), "other")
    assert len(sent) == 200
    assert {(item["count"], item["accepted"]) for item in sent} == {(1, 1)}  # each id once


def test_a_retry_after_longer_than_the_lease_sends_each_message_once(db_url, session, mock_api):
    add_clients(session, 20)
    mock_api.faults(rate_limit=0.001, retry_after=8)  # every request: 429, Retry-After: 8
    mailing = add_mailing(session)
    started = time.time()
    opened = []

    def open_the_api_after_a_second(_worker) -> None:
        if not opened and time.time() - started > 1:
            mock_api.faults(rate_limit=None)
            opened.append(True)

    counters = run_worker(
        # A 6 s lease: sleeping through Retry-After: 8 while holding it would let the
        # reaper hand the message out again.
        settings_for(db_url, mock_api, concurrency=5, lease_seconds=6, request_timeout=1),
        burst=False,
        until=lambda: statuses(db_url, mailing.id) == {"sent": 20},
        during=open_the_api_after_a_second,
        timeout=40,
    )

    received = mock_api.received()
    assert len(received) == 20
    assert {(item["count"], item["accepted"]) for item in received} == {(1, 1)}
    first = min(item["first_at"] for item in received)
    assert datetime.fromisoformat(first).timestamp() - started >= 7.5  # Retry-After honoured
    assert counters.leases_taken_over == 0


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_ten_megabyte_error_bodies_leave_the_daemon_small(db_url, session, mock_api):
    add_clients(session, 300)
    mock_api.faults(error_rate=1.0, error_body_bytes=10_000_000, latency_ms=20)
    add_mailing(session)
    daemon = start_daemon(
        db_url,
        mock_api,
        NOTIFY_CONCURRENCY="50",
        NOTIFY_BREAKER_THRESHOLD="100000",
        NOTIFY_MAX_ATTEMPTS="1000",
    )
    wait_for(lambda: attempts_count(db_url) >= 300, timeout=60)

    peak = peak_rss_mb(daemon.pid)
    assert stop(daemon) == 0
    # 50 requests in flight, each answered with 10 MB: unbounded reads took 900 MB.
    assert peak < 200, f"daemon peak RSS {peak:.0f} MB"
    assert scalar(db_url, "SELECT max(length(response_excerpt)) FROM attempt") <= 200


def scalar(db_url: str, sql: str):
    """The one value ``sql`` selects, read over a connection of its own."""
    engine = make_engine(db_url)
    with engine.connect() as connection:
        value = connection.execute(sa.text(sql)).scalar_one()
    engine.dispose()
    return value


def attempts_count(db_url: str) -> int:
    return scalar(db_url, "SELECT count(*) FROM attempt")


def test_a_burst_run_ends_by_itself_while_the_api_is_down(db_url, session, mock_api):
    add_clients(session, 100)
    mock_api.faults(outage_seconds=600)
    mailing = add_mailing(session)
    began = time.monotonic()

    run_worker(settings_for(db_url, mock_api, breaker_threshold=5), burst=True, timeout=30)

    assert time.monotonic() - began < 20
    assert statuses(db_url, mailing.id) == {"pending": 100}  # kept for the next run


def test_a_burst_run_leaves_no_ended_mailing_with_unsent_messages(db_url, session, mock_api):
    add_clients(session, 4)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    # Waiting for a retry an hour away; then the mailing's end passes.
    session.execute(
        sa.update(Message).values(next_attempt_at=utcnow() + timedelta(hours=1), attempts=1)
    )
    session.execute(
        sa.update(Mailing)
        .where(Mailing.id == mailing.id)
        .values(end_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()

    run_worker(settings_for(db_url, mock_api), burst=True, timeout=30)

    assert statuses(db_url, mailing.id) == {"expired": 4}
    session.expire_all()
    assert session.get(Mailing, mailing.id).completed_at is not None


def test_a_crashing_loop_is_restarted_and_nothing_is_lost(db_url, session, mock_api, monkeypatch):
    add_clients(session, 50)
    mailing = add_mailing(session)
    monkeypatch.setattr(worker_module, "RESTART_PAUSE", 0.01)
    real = worker_module.Worker._record_loop
    crashes = iter([True, True])

    async def crashing_record_loop(self):
        if next(crashes, False):
            raise RuntimeError("a bug in the recorder")
        await real(self)

    monkeypatch.setattr(worker_module.Worker, "_record_loop", crashing_record_loop)

    counters = run_worker(settings_for(db_url, mock_api), timeout=30)

    assert counters.restarts == 2
    assert statuses(db_url, mailing.id) == {"sent": 50}


def test_a_loop_that_keeps_crashing_stops_the_daemon_as_failed(
    db_url, session, mock_api, monkeypatch
):
    add_clients(session, 5)
    add_mailing(session)
    monkeypatch.setattr(worker_module, "RESTART_PAUSE", 0.01)

    async def broken(self):
        raise RuntimeError("always")

    monkeypatch.setattr(worker_module.Worker, "_claim_loop", broken)
    engine = make_engine(db_url)
    worker = worker_module.Worker(
        engine=engine, settings=settings_for(db_url, mock_api), clock=SystemClock(wait_scale=0)
    )
    asyncio.run(asyncio.wait_for(worker.run(), 20))
    engine.dispose()
    assert worker.failed
    assert worker.counters.restarts == worker_module.RESTART_LIMIT + 1


# --- the liveness probe ------------------------------------------------------------------


def write_beat(path: Path, *, age: float) -> None:
    stamp = time.time() - age
    path.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "written_at": stamp,
                "progress_at": stamp,
                "slowest_loop": "claimer",
            }
        )
    )


def test_check_fails_only_when_a_daemon_is_stalled_while_work_is_due(cli, session, monkeypatch):
    heartbeat = Path(os.environ["NOTIFY_HEARTBEAT_FILE"])  # the test's own (conftest)
    monkeypatch.setenv("NOTIFY_STALL_SECONDS", "60")
    add_clients(session, 3)
    mailing = add_mailing(session)

    write_beat(heartbeat, age=5)
    assert cli("daemon", "--check").exit_code == 0  # fresh

    write_beat(heartbeat, age=120)
    assert cli("daemon", "--check").exit_code == 0  # stale, but nothing is due yet

    delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.commit()
    answer = cli("daemon", "--check")
    assert answer.exit_code == 1
    assert "no progress for 120s" in answer.output
    assert "3 messages are due or in flight" in answer.output
    assert len(answer.output.strip().splitlines()) == 1

    heartbeat.with_name(f"{heartbeat.name}.1").write_text("{not json")
    write_beat(heartbeat, age=1)
    assert cli("daemon", "--check").exit_code == 1  # a sender process's file is broken


def test_a_running_daemon_keeps_its_heartbeat_fresh_and_removes_it_when_stopped(
    db_url, session, mock_api, tmp_path
):

    heartbeat = tmp_path / "daemon.heartbeat"
    add_clients(session, 10)
    add_mailing(session)
    daemon = start_daemon(db_url, mock_api, NOTIFY_HEARTBEAT_FILE=str(heartbeat))
    wait_for(heartbeat.exists, timeout=30)
    time.sleep(2.5)
    beat = json.loads(heartbeat.read_text())
    assert time.time() - beat["written_at"] < 2
    assert time.time() - beat["progress_at"] < 2
    assert stop(daemon) == 0
    assert not heartbeat.exists()


# --- what the hostile review found ---------------------------------------------------------


def claim_all(session, mailing, *, owner="me", lease=timedelta(seconds=30)):
    now = utcnow()
    return delivery.claim(
        session=session,
        owner=owner,
        mailing_ids=[mailing.id],
        now=now,
        lease_until=now + lease,
        limit=1000,
    )


def test_a_message_in_flight_when_its_mailing_is_cancelled_ends_cancelled(db_url, session):
    add_clients(session, 3)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    claimed = claim_all(session, mailing)
    mailings.cancel_mailing(session=session, mailing_id=mailing.id)
    # The requests in flight failed: their messages come back pending.
    retry = [
        delivery.Outcome(
            c.id, MessageStatus.pending, next_attempt_at=utcnow(), mailing_id=c.mailing_id
        )
        for c in claimed
    ]
    delivery.record(session=session, owner="me", outcomes=retry)
    session.commit()

    delivery.cancel_leftovers(session=session)
    completed = delivery.complete_done(session=session, now=utcnow())
    session.commit()

    assert statuses(db_url, mailing.id) == {"cancelled": 3}
    assert completed == [mailing.id]


def test_an_accepted_message_the_expiry_pass_got_to_first_ends_sent(db_url, session):
    add_clients(session, 1)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    [claimed] = claim_all(session, mailing, lease=timedelta(seconds=-1))  # a lapsed lease
    session.execute(sa.update(Mailing).where(Mailing.id == mailing.id).values(end_at=utcnow()))
    session.commit()
    delivery.expire_ended(session=session, now=utcnow() + timedelta(seconds=1))
    session.commit()
    assert statuses(db_url, mailing.id) == {"expired": 1}

    sent = delivery.Outcome(
        claimed.id, MessageStatus.sent, sent_at=utcnow(), mailing_id=claimed.mailing_id
    )
    delivery.record(session=session, owner="me", outcomes=[sent])
    session.commit()

    assert statuses(db_url, mailing.id) == {"sent": 1}


def housekeeping_for(db_url: str, store):
    """The periodic jobs of a daemon, on their own (no loops, no API)."""
    from loguru import logger

    from daemon.housekeeping import Housekeeping
    from daemon.metrics import DaemonMetrics
    from daemon.worker import Counters

    return Housekeeping(
        store=store,
        settings=settings_for(db_url, MockApi("http://127.0.0.1:1")),
        clock=SystemClock(),
        metrics=DaemonMetrics(),
        counters=Counters(),
        log=logger,
        breaker_state=lambda: "closed",
    )


def test_leases_are_not_taken_back_right_after_a_database_failure(db_url, session):

    from daemon.housekeeping import REAP_QUIET
    from daemon.store import Store

    add_clients(session, 2)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    claim_all(session, mailing, owner="other", lease=timedelta(seconds=-1))
    session.commit()
    engine = make_engine(db_url)
    store = Store(engine, owner="me")
    housekeeping = housekeeping_for(db_url, store)
    store.note_failure()  # the database just failed us

    asyncio.run(housekeeping.reap())
    assert statuses(db_url, mailing.id) == {"sending": 2}  # the other daemon may yet record

    store = Store(engine, owner="me")  # ... long ago: it has worked since
    store.note_failure(time.monotonic() - REAP_QUIET - 1)
    housekeeping = housekeeping_for(db_url, store)
    asyncio.run(housekeeping.reap())
    engine.dispose()
    assert statuses(db_url, mailing.id) == {"pending": 2}


def test_a_client_zone_unknown_here_fails_its_messages_and_holds_up_nothing(
    db_url, session, mock_api
):
    add_clients(session, 3, tag="ok")
    add_clients(session, 1, tag="odd", operator="917")
    session.execute(
        sa.text("UPDATE client SET timezone = 'America/Nowhere_Newer' WHERE tag = 'odd'")
    )
    session.commit()
    windowed = add_mailing(session, text="windowed", window=("00:00", "23:59"))
    plain = add_mailing(session, text="plain")

    run_worker(settings_for(db_url, mock_api), burst=True, timeout=30)

    assert statuses(db_url, plain.id) == {"sent": 4}
    assert statuses(db_url, windowed.id) == {"sent": 3, "failed": 1}
    error = scalar(db_url, "SELECT last_error FROM message WHERE status = 'failed'")
    assert "unknown timezone 'America/Nowhere_Newer'" in error


def test_a_burst_run_gives_up_on_a_database_that_keeps_failing(
    db_url, session, mock_api, monkeypatch
):
    from sqlalchemy.exc import OperationalError

    from daemon import store

    add_clients(session, 3)
    add_mailing(session)

    def broken(**_kwargs):
        raise OperationalError("SELECT", {}, Exception("database is gone"))

    monkeypatch.setattr(store.delivery, "claim", broken)
    monkeypatch.setattr(worker_module, "BURST_PATIENCE", 1.0)
    engine = make_engine(db_url)
    worker = worker_module.Worker(
        engine=engine,
        settings=settings_for(db_url, mock_api),
        burst=True,
        clock=SystemClock(wait_scale=0),
    )
    asyncio.run(asyncio.wait_for(worker.run(), 30))
    engine.dispose()
    assert worker.failed  # the CLI exits 1


def test_a_heartbeat_left_by_a_killed_daemon_is_no_alarm(cli, session, monkeypatch):
    import subprocess

    heartbeat = Path(os.environ["NOTIFY_HEARTBEAT_FILE"])
    add_clients(session, 2)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.commit()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = {"pid": dead.pid, "written_at": 0.0, "progress_at": 0.0, "slowest_loop": "claimer"}
    heartbeat.with_name(f"{heartbeat.name}.0").write_text(json.dumps(stale))

    assert cli("daemon", "--check").exit_code == 0
    assert not heartbeat.with_name(f"{heartbeat.name}.0").exists()


def test_a_mailing_that_cannot_be_activated_holds_up_neither_others_nor_takeovers(
    db_url, session, monkeypatch
):

    from daemon import store as store_module

    add_clients(session, 2)
    broken = add_mailing(session, text="broken")
    fine = add_mailing(session, text="fine")
    real_activate = store_module.delivery.activate

    def activate(*, session, mailing, now):
        if mailing.id == broken.id:
            raise ValueError("a bug in one mailing's audience")
        return real_activate(session=session, mailing=mailing, now=now)

    monkeypatch.setattr(store_module.delivery, "activate", activate)
    engine = make_engine(db_url)
    store = store_module.Store(engine, owner="me")
    housekeeping = housekeeping_for(db_url, store)

    asyncio.run(housekeeping.activate())
    engine.dispose()

    assert statuses(db_url, fine.id) == {"pending": 2}
    assert statuses(db_url, broken.id) == {}
    now = time.monotonic()
    assert store.lease_cutoff(quiet=7, now=now) == now  # not a database outage: takeovers go on


@pytest.mark.parametrize(
    ("case", "failures", "expected"),
    [
        ("no failure: every lapsed lease", [], 100.0),
        ("last failure long ago: every lapsed lease", [50.0, 80.0], 100.0),
        ("failing now, never a quiet stretch since start: none", [99.0], None),
        # Down 1 s in every 10: each 9 s stretch lets every recorder write.
        ("flapping: lapsed before the last quiet stretch", [71.0, 81.0, 91.0, 99.5], 92.5),
        # A 38 s outage (calls failing every half second) over 2 s ago: only leases that
        # lapsed before it began, less the quiet time.
        ("a long outage just over", [60.0 + n / 2 for n in range(77)], 53.0),
    ],
)
def test_the_lease_cutoff_waits_for_every_recorder_to_catch_up(case, failures, expected):
    from daemon.housekeeping import REAP_QUIET
    from daemon.store import Store
    from daemon.worker import RECORD_BACKOFF_MAX

    assert REAP_QUIET >= RECORD_BACKOFF_MAX + 1  # a recorder's longest wait, and a margin
    store = Store(None, owner="me")
    store._started = 0.0 if failures[:1] != [99.0] else 95.0
    for at in failures:
        store.note_failure(at)
    assert store.lease_cutoff(quiet=7.0, now=100.0) == expected, case


def test_an_answer_with_nul_bytes_or_broken_unicode_is_stored(db_url, session):
    add_clients(session, 1)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    [claimed] = claim_all(session, mailing)
    hostile = '{"message":"bad\x00byte \ud800"}'
    attempt = delivery.AttemptRecord(
        started_at=utcnow(),
        duration_ms=1.0,
        http_status=503,
        response_excerpt=hostile,
        error="HTTP 503 \x00",
    )
    outcome = delivery.Outcome(
        claimed.id,
        MessageStatus.pending,
        [attempt],
        next_attempt_at=utcnow(),
        last_error=hostile,
        mailing_id=claimed.mailing_id,
    )
    delivery.record(session=session, owner="me", outcomes=[outcome])
    session.commit()

    excerpt = scalar(db_url, "SELECT response_excerpt FROM attempt")
    assert "\x00" not in excerpt
    assert excerpt.startswith('{"message":"bad')
    assert statuses(db_url, mailing.id) == {"pending": 1}


def test_one_outcome_the_database_refuses_holds_up_no_other(db_url, session, monkeypatch):
    from sqlalchemy.exc import DataError

    from daemon import store as store_module
    from notifyctl.errors import StorageError

    add_clients(session, 8)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    claimed = claim_all(session, mailing)
    session.commit()
    bad_id = claimed[3].id
    real_record = store_module.delivery.record

    def record(*, session, owner, outcomes):
        if any(o.message_id == bad_id and o.attempts for o in outcomes):
            refusal = DataError("INSERT", {}, Exception("text fields cannot contain NUL"))
            raise StorageError("database: refused") from refusal
        return real_record(session=session, owner=owner, outcomes=outcomes)

    monkeypatch.setattr(store_module.delivery, "record", record)
    attempt = delivery.AttemptRecord(started_at=utcnow(), duration_ms=1.0, http_status=200)
    outcomes = [
        delivery.Outcome(
            c.id, MessageStatus.sent, [attempt], sent_at=utcnow(), mailing_id=c.mailing_id
        )
        for c in claimed
    ]
    engine = make_engine(db_url)
    dropped = asyncio.run(store_module.Store(engine, owner="me").record(outcomes))
    engine.dispose()

    assert dropped == []
    assert statuses(db_url, mailing.id) == {"sent": 8}  # the bad one too, without details
    assert scalar(db_url, "SELECT count(*) FROM attempt") == 7


def test_recorded_times_are_stored_as_sqlalchemy_stores_them(db_url, session):
    """record() sends times to the driver itself: on SQLite they must be SQLAlchemy's
    text ('… 12:00:00.000000'), not the sqlite3 adapter's ('… 12:00:00' on a whole
    second), or text comparisons against bound times go wrong on the very second."""
    add_clients(session, 3)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    first, second, third = claim_all(session, mailing)
    whole = utcnow().replace(microsecond=0)
    attempt = delivery.AttemptRecord(started_at=whole, duration_ms=1.0, http_status=200)
    delivery.record(
        session=session,
        owner="me",
        outcomes=[
            delivery.Outcome(
                first.id,
                MessageStatus.sent,
                attempts=[attempt],
                sent_at=whole,
                mailing_id=first.mailing_id,
            ),
            delivery.Outcome(
                second.id,
                MessageStatus.pending,
                next_attempt_at=whole,
                mailing_id=second.mailing_id,
            ),
        ],
    )
    # The same values through SQLAlchemy's own statement, as before the change.
    session.execute(
        sa.update(Message)
        .where(Message.id == third.id)
        .values(sent_at=whole, next_attempt_at=whole)
    )
    session.commit()

    def raw(sql: str):
        with make_engine(db_url).connect() as connection:
            return connection.exec_driver_sql(sql).all()

    [(orm_sent, orm_next)] = raw(
        f"SELECT sent_at, next_attempt_at FROM message WHERE id = {third.id}"
    )
    assert raw(f"SELECT sent_at FROM message WHERE id = {first.id}") == [(orm_sent,)]
    assert raw(f"SELECT next_attempt_at FROM message WHERE id = {second.id}") == [(orm_next,)]
    assert raw(f"SELECT started_at FROM attempt WHERE message_id = {first.id}") == [(orm_sent,)]
    found = session.scalars(
        sa.select(Message.id).where(Message.sent_at >= whole, Message.id == first.id)
    ).all()
    assert found == [first.id]
