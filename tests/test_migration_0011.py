"""Migration 0011 (partial claim indexes; attempt.mailing_id; message and attempt
partitioned on PostgreSQL) on a database made before it, on SQLite and PostgreSQL.

Each test starts from a revision-0009 database with rows (``fill_at_0003``: 2 mailings,
6 messages, 6 attempts; then 0009).
"""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from notifyctl.db import HEAD_REVISION, current_revision, is_sqlite, make_engine, upgrade
from notifyctl.services import audience, mailings, partitions
from notifyctl.services.partitions import PARTITION_MAILINGS
from tests.factories import add_clients, add_mailing
from tests.test_migration_0004 import _new_postgres_database, alembic, as_before, fill_at_0003, rows


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_at_0010(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    url, drop = (
        (f"sqlite:///{tmp_path / 'old.db'}", None)
        if request.param == "sqlite"
        else _new_postgres_database()
    )
    engine = make_engine(url)
    fill_at_0003(engine)
    alembic(engine, "upgrade", "0010")
    yield engine
    engine.dispose()
    if drop:
        drop()


def scalar(engine: Engine, sql: str):
    with engine.connect() as connection:
        return connection.exec_driver_sql(sql).scalar()


def test_upgrade_keeps_every_row_and_id_and_gives_attempts_their_mailing(engine_at_0010):
    before = rows(engine_at_0010)
    upgrade(engine_at_0010)
    assert current_revision(engine_at_0010) == HEAD_REVISION
    after = rows(engine_at_0010)
    assert as_before(after, before) == before
    mailing_of = {m["id"]: m["mailing_id"] for m in after["message"]}
    assert [a["mailing_id"] for a in after["attempt"]] == [
        mailing_of[a["message_id"]] for a in after["attempt"]
    ]


def test_after_upgrade_ids_go_on_and_constraints_keep_their_meaning(engine_at_0010):
    upgrade(engine_at_0010)
    with Session(engine_at_0010, expire_on_commit=False) as session:
        add_clients(session, 1)
        mailing = add_mailing(session)
        assert audience.materialise(session=session, mailing=mailing) == 3  # clients 1, 2, 4
        session.commit()
    assert (
        scalar(engine_at_0010, f"SELECT min(id) FROM message WHERE mailing_id = {mailing.id}") > 6
    )

    refused = [
        # one message per (mailing, client)
        "INSERT INTO message (mailing_id, client_id, created_at, status, attempts) "
        "VALUES (1, 1, '2026-01-01 00:00:00+00', 'sent', 1)",
        # an attempt of no message (as the recorder's, after its mailing was deleted)
        "INSERT INTO attempt (message_id, mailing_id, started_at, duration_ms) "
        "VALUES (99, 1, '2026-01-01 00:00:00+00', 0)",
        # an attempt naming another mailing than its message's
        "INSERT INTO attempt (message_id, mailing_id, started_at, duration_ms) "
        "VALUES (1, 2, '2026-01-01 00:00:00+00', 0)",
    ]
    for statement in refused:
        with pytest.raises(sa.exc.IntegrityError), engine_at_0010.begin() as connection:
            connection.exec_driver_sql(statement)

    with Session(engine_at_0010) as session:  # deleting a mailing still takes its rows
        mailings.delete_mailing(session=session, mailing_id=1)
        session.commit()
    assert scalar(engine_at_0010, "SELECT count(*) FROM message WHERE mailing_id = 1") == 0
    assert scalar(engine_at_0010, "SELECT count(*) FROM attempt") == 3


def test_on_postgres_both_tables_are_partitioned_with_room_for_the_next_mailings(engine_at_0010):
    if is_sqlite(engine_at_0010):
        upgrade(engine_at_0010)
        with Session(engine_at_0010) as session:
            assert partitions.list_partitions(session=session) == []
        return
    upgrade(engine_at_0010)
    partitioned = scalar(
        engine_at_0010,
        "SELECT string_agg(t, ',' ORDER BY t) "
        "FROM (SELECT partrelid::regclass::text AS t FROM pg_partitioned_table) AS p",
    )
    assert partitioned == "attempt,message"
    with Session(engine_at_0010) as session:
        ranges = [(p.first, p.end) for p in partitions.list_partitions(session=session)]
    # mailings 1 and 2, and the next id (3): one range; and the one after it
    assert ranges == [(0, PARTITION_MAILINGS), (PARTITION_MAILINGS, 2 * PARTITION_MAILINGS)]


def test_the_migration_and_the_service_agree_on_the_partition_size():
    from importlib import import_module

    migration = import_module("notifyctl.migrations.versions.0011_partitions_partial_indexes")
    assert migration.PARTITION_MAILINGS == PARTITION_MAILINGS


def test_downgrade_gives_back_the_0009_rows_and_ids_still_go_on(engine_at_0010):
    before = rows(engine_at_0010)
    upgrade(engine_at_0010)
    alembic(engine_at_0010, "downgrade", "0010")
    assert current_revision(engine_at_0010) == "0010"
    assert rows(engine_at_0010) == before
    with engine_at_0010.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO message (mailing_id, client_id, created_at, status, attempts) "
            "VALUES (1, 7, '2026-01-01 00:00:00+00', 'sent', 1)"
        )
    assert scalar(engine_at_0010, "SELECT max(id) FROM message") == 7
    upgrade(engine_at_0010)  # and up again
    assert current_revision(engine_at_0010) == HEAD_REVISION
