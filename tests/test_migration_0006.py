"""Migrations 0006 (mailing name and transactional, client opted_out_at) and 0007 (the
dashboard's index of sent messages) on a database made before them, on SQLite and
PostgreSQL: every row stays, with no name, not transactional, not opted out.

Each test starts from a revision-0005 database with rows (``fill_at_0003``, then 0005).
"""

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from notifyctl.db import HEAD_REVISION, current_revision, is_sqlite, make_engine, upgrade
from notifyctl.models import Client, Mailing, MailingCreate
from notifyctl.services import mailings
from notifyctl.timeutil import utcnow
from tests.test_migration_0004 import (
    _new_postgres_database,
    alembic,
    as_before,
    autoincrement_tables,
    fill_at_0003,
    rows,
    sqlite_schema,
)


def _at_0005(url: str) -> Engine:
    engine = make_engine(url)
    fill_at_0003(engine)  # 2 clients (a third deleted), 2 mailings, 6 messages
    alembic(engine, "upgrade", "0005")
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_at_0005(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    url, drop = (
        (f"sqlite:///{tmp_path / 'old.db'}", None)
        if request.param == "sqlite"
        else _new_postgres_database()
    )
    engine = _at_0005(url)
    yield engine
    engine.dispose()
    if drop:
        drop()


@pytest.fixture
def sqlite_at_0005(tmp_path) -> Iterator[Engine]:
    engine = _at_0005(f"sqlite:///{tmp_path / 'old.db'}")
    yield engine
    engine.dispose()


def columns(engine: Engine, table: str) -> set[str]:
    with engine.connect() as connection:
        return {column["name"] for column in sa.inspect(connection).get_columns(table)}


def indexes(engine: Engine, table: str) -> set[str]:
    with engine.connect() as connection:
        return {index["name"] for index in sa.inspect(connection).get_indexes(table)}


def test_upgrade_keeps_every_row_with_no_name_not_transactional_not_opted_out(engine_at_0005):
    before = rows(engine_at_0005)
    upgrade(engine_at_0005)
    assert current_revision(engine_at_0005) == HEAD_REVISION
    after = rows(engine_at_0005)
    assert as_before(after, before) == before
    assert [(m["name"], bool(m["transactional"])) for m in after["mailing"]] == [
        (None, False),
        (None, False),
    ]
    assert [c["opted_out_at"] for c in after["client"]] == [None, None]
    assert "ix_message_sent_at" in indexes(engine_at_0005, "message")


def test_after_the_upgrade_mailings_take_a_name_and_the_flag(engine_at_0005):
    upgrade(engine_at_0005)
    now = utcnow()
    with Session(engine_at_0005, expire_on_commit=False) as session:
        created = mailings.create_mailing(
            session=session,
            mailing_in=MailingCreate(
                name="Codes",
                transactional=True,
                text="Your code: 1234",
                start_at=now,
                end_at=now + timedelta(hours=1),
            ),
        )
        session.commit()
        client = session.get(Client, 1)
        client.opted_out_at = now
        session.commit()
    with Session(engine_at_0005) as session:
        stored = session.get(Mailing, created.id)
        assert (stored.name, stored.transactional) == ("Codes", True)
        assert stored.id == 3
        assert session.get(Client, 1).opted_out_at == now
        assert session.get(Client, 2).opted_out_at is None


def test_the_upgrade_rebuilds_no_table_so_sqlite_still_never_reuses_ids(sqlite_at_0005):
    """(A batch rebuild would lose AUTOINCREMENT and the sequence: PostgreSQL's sequences
    never go back, whatever a migration does.)"""
    with sqlite_at_0005.begin() as connection:
        connection.exec_driver_sql("DELETE FROM mailing WHERE id = 2")
    upgrade(sqlite_at_0005)
    assert {"client", "mailing"} <= autoincrement_tables(sqlite_at_0005)
    with sqlite_at_0005.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO mailing (text, start_at, end_at, operator_codes, tags, created_at, "
            "updated_at) VALUES ('x', '2026-01-01', '2026-01-02', '[]', '[]', '2026-01-01', "
            "'2026-01-01')"
        )
        assert connection.exec_driver_sql("SELECT max(id) FROM mailing").scalar() == 3


def test_downgrade_to_0005_gives_back_its_schema_and_rows(engine_at_0005):
    before = rows(engine_at_0005)
    schema = sqlite_schema(engine_at_0005) if is_sqlite(engine_at_0005) else None
    upgrade(engine_at_0005)
    alembic(engine_at_0005, "downgrade", "0005")
    assert current_revision(engine_at_0005) == "0005"
    assert rows(engine_at_0005) == before
    assert "name" not in columns(engine_at_0005, "mailing")
    assert "opted_out_at" not in columns(engine_at_0005, "client")
    assert "ix_message_sent_at" not in indexes(engine_at_0005, "message")
    if schema is not None:
        assert sqlite_schema(engine_at_0005) == schema
        assert {"client", "mailing"} <= autoincrement_tables(engine_at_0005)
