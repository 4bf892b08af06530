"""Fast bulk data for benchmarks: clients and messages made by SQL, not row by row."""

import csv
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from notifyctl.db import make_engine, upgrade

STATUSES = ("sent", "sent", "sent", "failed", "expired", "pending", "cancelled")


def fresh_database(url: str) -> str:
    """An empty, migrated database at ``url`` (PostgreSQL: dropped and created anew)."""
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        name = engine.url.database
        admin = make_engine(engine.url.set(database="postgres").render_as_string(False))
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
    else:
        path = Path(engine.url.database)
        for suffix in ("", "-wal", "-shm", ".daemon.lock"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    engine.dispose()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def _now_literal(engine) -> str:
    now = datetime.now(UTC)
    if engine.dialect.name == "sqlite":
        return f"'{now.replace(tzinfo=None).isoformat(sep=' ')}'"
    return f"'{now.isoformat()}'::timestamptz"


def _series(engine, count: int) -> str:
    """A FROM clause yielding ``i`` from 0 to count-1."""
    if engine.dialect.name == "sqlite":
        return (
            "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s "
            f"WHERE i < {count - 1}) SELECT i FROM s) AS series"
        )
    return f"generate_series(0, {count - 1}) AS series(i)"


def add_clients(url: str, count: int) -> None:
    """``count`` clients with phones 79000000000 + i, spread over three timezones."""
    engine = make_engine(url)
    now = _now_literal(engine)
    zone = (
        "CASE i % 3 WHEN 0 THEN 'Europe/Moscow' WHEN 1 THEN 'Asia/Vladivostok' "
        "ELSE 'America/New_York' END"
    )
    phone = (
        "CAST(79000000000 + i AS TEXT)"
        if engine.dialect.name == "sqlite"
        else ("(79000000000 + i)::text")
    )
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO client (phone, operator_code, tag, timezone, created_at, updated_at) "
                f"SELECT {phone}, '900', 'bench', {zone}, {now}, {now} "
                f"FROM {_series(engine, count)}"
            )
        )
    engine.dispose()


def add_stats_data(url: str, *, mailings: int, messages: int) -> None:
    """``mailings`` finished mailings sharing ``messages`` messages in mixed statuses."""
    engine = make_engine(url)
    now = _now_literal(engine)
    per_mailing = messages // mailings
    status = (
        "CASE i % 7 " + " ".join(f"WHEN {n} THEN '{s}'" for n, s in enumerate(STATUSES)) + " END"
    )
    with engine.begin() as connection:
        for m in range(1, mailings + 1):
            connection.execute(
                sa.text(
                    "INSERT INTO mailing (id, text, start_at, end_at, operator_codes, tags, "
                    "created_at, updated_at, activated_at) VALUES (:id, 'bench', "
                    f"{now}, {now}, '[]', '[]', {now}, {now}, {now})"
                ),
                {"id": m},
            )
        connection.execute(
            sa.text(
                "INSERT INTO message (mailing_id, client_id, created_at, status, attempts) "
                f"SELECT 1 + i / {per_mailing}, i % {per_mailing}, {now}, {status}, 1 "
                f"FROM {_series(engine, per_mailing * mailings)}"
            )
        )
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "SELECT setval('mailing_id_seq', (SELECT max(id) FROM mailing))"
            )
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def write_csv(path: Path, count: int) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "operator_code", "tag", "timezone"])
        zones = ("Europe/Moscow", "Asia/Vladivostok", "America/New_York")
        for i in range(count):
            writer.writerow([f"+7 9{i:09d}", "", "bench", zones[i % 3]])
    return path
