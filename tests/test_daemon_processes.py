"""Daemons as real processes: kill -9 and restart, several on PostgreSQL, one on SQLite."""

import time
from collections import Counter

from tests.daemon_helpers import fresh_postgres_mailing, start_daemon, statuses, stop, wait_for
from tests.factories import add_clients, add_mailing


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
    daemon = start_daemon(db_url, mock_api, "--burst", NOTIFY_LOG_LEVEL="INFO")
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "sent 25" in err
    assert "daemon started on uvloop:" in err  # uvloop is installed: the daemon runs on it
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
