"""Daemons as real processes: kill -9 and restart, several on PostgreSQL, one on SQLite."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from mock import server
from tests.daemon_helpers import MockApi, statuses
from tests.factories import add_clients, add_mailing
from tests.servers import running


@pytest.fixture
def mock_api():
    with running(server.config(seed=3)) as url:
        yield MockApi(url)


_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_daemon_outlives_its_test():
    """A failed assertion must not leave a daemon sending to whatever takes its port next."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


def start_daemon(db_url: str, mock: MockApi, *extra: str, **env: str) -> subprocess.Popen:
    environment = (
        dict(os.environ)
        | {
            "NOTIFY_SENDER_URL": mock.send_url,
            "NOTIFY_CONCURRENCY": "40",
            "NOTIFY_REQUEST_TIMEOUT": "2",
            "NOTIFY_LEASE_SECONDS": "7",
            "NOTIFY_LOG_LEVEL": "WARNING",
        }
        | env
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "notifyctl", "--db", db_url, "daemon", *extra],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _started.append(process)
    return process


def sending_ids(db_url: str) -> set[int]:
    import sqlalchemy as sa

    from notifyctl.db import make_engine

    engine = make_engine(db_url)
    with engine.connect() as connection:
        ids = set(
            connection.execute(sa.text("SELECT id FROM message WHERE status = 'sending'")).scalars()
        )
    engine.dispose()
    return ids


def fresh_postgres_mailing(postgres_url: str, *, clients: int):
    """Empty the run's PostgreSQL database, add clients and a due mailing to all of them."""
    from sqlmodel import Session

    from notifyctl.db import make_engine
    from tests.conftest import TABLES

    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    with Session(engine, expire_on_commit=False) as session:
        add_clients(session, clients)
        mailing = add_mailing(session)
    engine.dispose()
    return mailing


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(30)


def test_kill_9_loses_nothing_and_duplicates_only_what_was_in_flight(db_url, session, mock_api):
    add_clients(session, 1500)
    mock_api.faults(latency_ms=20, jitter_ms=20)
    mailing = add_mailing(session)

    first = start_daemon(db_url, mock_api)
    wait_for(lambda: len(mock_api.received()) >= 300)
    first.kill()
    first.wait()
    held_by_the_dead = sending_ids(db_url)
    second = start_daemon(db_url, mock_api)
    wait_for(lambda: statuses(db_url, mailing.id).get("sent") == 1500)
    assert stop(second) == 0

    received = mock_api.received()
    assert len(received) == 1500
    repeats = {item["msg_id"] for item in received if item["count"] > 1}
    # Only messages claimed and not yet recorded at the kill (in flight, or answered but
    # not written) may go out again, and only once more.
    assert repeats <= held_by_the_dead
    assert max(item["count"] for item in received) <= 2
    assert len({item["phone"] for item in received}) == 1500


def test_sigterm_drains_and_exits_zero(db_url, session, mock_api):
    add_clients(session, 400)
    mock_api.faults(latency_ms=50)
    mailing = add_mailing(session)
    daemon = start_daemon(db_url, mock_api)
    wait_for(lambda: len(mock_api.received()) >= 50)

    assert stop(daemon) == 0

    counts = statuses(db_url, mailing.id)
    assert "sending" not in counts
    assert counts["sent"] == len(mock_api.received())


def test_a_second_daemon_on_sqlite_refuses_to_start(tmp_path, mock_api):
    db_url = f"sqlite:///{tmp_path / 'one.db'}"
    first = start_daemon(db_url, mock_api)
    time.sleep(1.5)
    second = start_daemon(db_url, mock_api)
    _, err = second.communicate(timeout=30)
    assert second.returncode == 4
    assert "another daemon" in err
    assert err.strip().count("\n") == 0
    assert stop(first) == 0


def test_three_daemons_on_postgresql_never_send_one_message_twice(postgres_url, mock_api):
    mailing = fresh_postgres_mailing(postgres_url, clients=3000)
    mock_api.faults(latency_ms=5, jitter_ms=10)

    daemons = [start_daemon(postgres_url, mock_api, NOTIFY_CONCURRENCY="20") for _ in range(3)]
    wait_for(lambda: statuses(postgres_url, mailing.id).get("sent") == 3000)
    assert [stop(d) for d in daemons] == [0, 0, 0]

    counts = Counter(item["count"] for item in mock_api.received())
    assert counts == {1: 3000}


def test_burst_sends_what_is_due_and_exits(db_url, session, mock_api):
    add_clients(session, 25)
    mailing = add_mailing(session)
    daemon = start_daemon(db_url, mock_api, "--burst")
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "sent 25" in err
    assert statuses(db_url, mailing.id) == {"sent": 25}


def test_check_reports_a_usable_database(db_url, mock_api):
    daemon = start_daemon(db_url, mock_api, "--check")
    out, _ = daemon.communicate(timeout=30)
    assert (daemon.returncode, out.strip()) == (0, "ok")
    broken = start_daemon("postgresql://nobody@127.0.0.1:1/none", mock_api, "--check")
    broken.communicate(timeout=30)
    assert broken.returncode == 5


def test_the_rate_limit_holds_for_two_daemons_together(postgres_url, mock_api):
    from datetime import datetime, timedelta

    mailing = fresh_postgres_mailing(postgres_url, clients=150)

    daemons = [start_daemon(postgres_url, mock_api, NOTIFY_RATE_LIMIT="50") for _ in range(2)]
    wait_for(lambda: statuses(postgres_url, mailing.id).get("sent") == 150)
    assert [stop(d) for d in daemons] == [0, 0]

    times = sorted(datetime.fromisoformat(item["first_at"]) for item in mock_api.received())
    assert times[-1] - times[0] >= timedelta(seconds=2.5)  # 150 at 50/s: about 3 s
    for i, t in enumerate(times):
        in_one_second = [u for u in times[i:] if u < t + timedelta(seconds=1)]
        assert len(in_one_second) <= 50 + 10 + 1  # the rate, its 0.2 s burst, rounding


def test_two_sender_processes_share_the_work_without_a_duplicate(db_url, session, mock_api):
    add_clients(session, 600)
    mock_api.faults(latency_ms=5)
    mailing = add_mailing(session)

    daemon = start_daemon(db_url, mock_api, "--workers", "2", "--burst")
    _, err = daemon.communicate(timeout=120)

    assert daemon.returncode == 0, err
    assert err.count("sent ") == 2  # each process reports its share
    assert statuses(db_url, mailing.id) == {"sent": 600}
    assert Counter(item["count"] for item in mock_api.received()) == {1: 600}


def test_sigterm_to_a_multi_process_daemon_drains_every_process(db_url, session, mock_api):
    add_clients(session, 400)
    mock_api.faults(latency_ms=50)
    mailing = add_mailing(session)
    daemon = start_daemon(db_url, mock_api, "--workers", "2")
    wait_for(lambda: len(mock_api.received()) >= 50)

    assert stop(daemon) == 0

    counts = statuses(db_url, mailing.id)
    assert "sending" not in counts
    assert counts["sent"] == len(mock_api.received())
