"""Retention pruning (``notifyctl db prune``): its rate, the database's size before and
after, and what it costs a mailing sending at the same time."""

import json
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench import data
from bench.common import POSTGRES, SIZES, Row, env_for
from bench.runner import mock_process, notifyctl
from notifyctl.db import make_engine

#: finished messages (each with one attempt) loaded as history, by size
HISTORY = {"full": 1_000_000, "small": 100_000}
HISTORY_MAILINGS = 10
ENDED = datetime.now(UTC) - timedelta(days=730)  # past the default 365 days


def load_history(url: str, messages: int) -> None:
    """``messages`` sent messages of finished mailings that ended two years ago, and an
    attempt each: COPY on PostgreSQL, executemany on SQLite (not sent: loaded)."""
    engine = make_engine(url)
    per = messages // HISTORY_MAILINGS
    with engine.begin() as connection:
        for m in range(1, HISTORY_MAILINGS + 1):
            connection.execute(
                sa.text(
                    "INSERT INTO mailing (id, text, start_at, end_at, operator_codes, tags, "
                    "created_at, updated_at, activated_at, completed_at, transactional) "
                    "VALUES (:id, 'old', :at, :at, '[]', '[]', :at, :at, :at, :at, false)"
                ),
                {"id": m, "at": ENDED if engine.dialect.name != "sqlite" else _naive(ENDED)},
            )
    rows = (
        (1 + i // per, i % per, ENDED + timedelta(seconds=i % 3600))
        for i in range(per * HISTORY_MAILINGS)
    )
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                with cursor.copy(
                    "COPY message (mailing_id, client_id, created_at, status, sent_at, attempts) "
                    "FROM STDIN"
                ) as copy:
                    for mailing_id, client_id, at in rows:
                        copy.write_row((mailing_id, client_id, at, "sent", at, 1))
                with cursor.copy(
                    "COPY attempt (message_id, mailing_id, started_at, duration_ms, "
                    "http_status) FROM STDIN"
                ) as copy:
                    for n in range(1, per * HISTORY_MAILINGS + 1):
                        copy.write_row((n, 1 + (n - 1) // per, ENDED, 20.0, 200))
                cursor.execute("SELECT setval('mailing_id_seq', (SELECT max(id) FROM mailing))")
                cursor.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
    else:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO message (id, mailing_id, client_id, created_at, status, sent_at, "
                "attempts) VALUES (?, ?, ?, ?, 'sent', ?, 1)",
                [(n, m, c, _naive(at), _naive(at)) for n, (m, c, at) in enumerate(rows, start=1)],
            )
            connection.exec_driver_sql(
                "INSERT INTO attempt (message_id, mailing_id, started_at, duration_ms, "
                "http_status) VALUES (?, ?, ?, 20.0, 200)",
                [
                    (n, 1 + (n - 1) // per, _naive(ENDED))
                    for n in range(1, per * HISTORY_MAILINGS + 1)
                ],
            )
    engine.dispose()


def _naive(at: datetime) -> str:
    return at.replace(tzinfo=None).isoformat(sep=" ")


def send_rate(
    url: str, mock, clients: int, *, prune: bool, own_range: bool = False
) -> tuple[float, dict | None, float]:
    """A fresh database with history and a ``clients`` mailing sent by one daemon, with
    ``db prune`` running meanwhile or not: (msg/s, prune's JSON, prune's seconds).

    ``own_range`` (PostgreSQL): the sending mailing in the next range of mailing ids, so
    that the history's partition goes whole; else it shares the history's range, whose
    rows then go in batches."""
    data.fresh_database(url)
    load_history(url, HISTORY[size_of(clients)])
    if own_range:
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql("SELECT setval(pg_get_serial_sequence('mailing', 'id'), 99)")
        engine.dispose()
    data.add_clients(url, clients)
    mock.forget()
    env = env_for(url, NOTIFY_SENDER_URL=mock.send_url)
    subprocess.run(
        notifyctl("mailing", "create", "--text", "bench", "--start", "now", "--end", "now+2h"),
        env=env,
        check=True,
        capture_output=True,
    )
    finished: list = []
    pruner = None
    if prune:
        # (timed in a thread of its own: it may end before or after the daemon)
        def run_pruner() -> None:
            started = time.perf_counter()
            done = subprocess.run(
                notifyctl("db", "prune", "--json"), env=env, capture_output=True, text=True
            )
            finished.append((done, time.perf_counter() - started))

        pruner = threading.Thread(target=run_pruner)
        pruner.start()
    # (the daemon's own daily pruning would take part of the history: only db prune's counts)
    quiet = env | {"NOTIFY_RETENTION_MESSAGES": "0", "NOTIFY_RETENTION_ATTEMPTS": "0"}
    daemon = subprocess.run(notifyctl("daemon", "--burst"), env=quiet, capture_output=True)
    assert daemon.returncode == 0, daemon.stderr
    pruned, seconds = None, float("nan")
    if pruner is not None:
        pruner.join()
        ((done, seconds),) = finished
        assert done.returncode == 0, done.stderr
        pruned = json.loads(done.stdout)
    engine = make_engine(url)
    with engine.connect() as connection:
        first, last, sent = connection.execute(
            sa.text(
                "SELECT min(sent_at), max(sent_at), count(*) FROM message "
                "WHERE mailing_id = (SELECT max(id) FROM mailing) AND status = 'sent'"
            )
        ).one()
    engine.dispose()
    assert sent == clients, sent
    first, last = (
        v if isinstance(v, datetime) else datetime.fromisoformat(v) for v in (first, last)
    )
    return clients / max((last - first).total_seconds(), 1e-3), pruned, seconds


def size_of(clients: int) -> str:
    return next(name for name, sizes in SIZES.items() if sizes["throughput"] == clients)


def bench_prune(size, work: Path) -> list[Row]:
    clients, history = SIZES[size]["throughput"], HISTORY[size]
    command = f"python -m bench --only prune --size {size}"
    rows: list[Row] = []
    with mock_process() as mock:
        for backend, url, own_range in (
            ("SQLite", f"sqlite:///{work / 'prune.db'}", False),
            ("PostgreSQL, in batches (a range shared with the mailing)", POSTGRES, False),
            ("PostgreSQL, the history's partition dropped whole", POSTGRES, True),
        ):
            alone, _, _ = send_rate(url, mock, clients, prune=False, own_range=own_range)
            rate, pruned, seconds = send_rate(url, mock, clients, prune=True, own_range=own_range)
            removed = pruned["rows"]["attempt"] + pruned["rows"]["message"]
            before, after = pruned["size_before"], pruned["size_after"]
            free = (
                f", {after['free_bytes'] / 1e6:,.0f} MB of it free until VACUUM"
                if after["free_bytes"] is not None
                else " (space reused after autovacuum; VACUUM FULL shrinks the files)"
            )
            rows += [
                (
                    f"`db prune`, {history:,} historical messages + {history:,} attempts, "
                    f"{backend}, while a mailing sends",
                    "(measured)",
                    f"{removed:,} rows in {seconds:,.1f} s = {removed / seconds:,.0f} rows/s",
                    command,
                ),
                (
                    f"{clients:,}-message mailing, {backend}, 1 daemon, with `db prune` running",
                    "(measured: `db prune` pauses after each batch as long as it took, "
                    "as the daemon's daily pruning does)",
                    f"{rate:,.0f} msg/s against {alone:,.0f} msg/s without = {rate / alone:.2f} x",
                    command,
                ),
                (
                    f"database size, {backend}, before and after pruning {history:,} messages",
                    "(measured)",
                    f"{before['bytes'] / 1e6:,.0f} MB before, {after['bytes'] / 1e6:,.0f} MB "
                    f"after{free}",
                    command,
                ),
            ]
    return rows
