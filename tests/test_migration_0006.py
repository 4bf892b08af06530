"""Migration 0006 on a database made before it: three columns come, with the values that
mean "as before"; SQLite tables keep ``AUTOINCREMENT`` both ways.

Each test starts from a revision-0005 database with rows (``fill_at_0003``, then 0005),
on SQLite and PostgreSQL.
"""

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from notifyctl.db import HEAD_REVISION, current_revision, is_sqlite, make_engine, upgrade
from notifyctl.services import mailings
from tests.factories import add_mailing
from tests.test_ids import new_client
from tests.test_migration_0004 import (
    TABLES,
    _new_postgres_database,
    alembic,
    autoincrement_tables,
    fill_at_0003,
    rows,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_at_0005(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    url, drop = (
        (f"sqlite:///{tmp_path / 'old.db'}", None)
        if request.param == "sqlite"
        else _new_postgres_database()
    )
    engine = make_engine(url)
    fill_at_0003(engine)
    alembic(engine, "upgrade", "0005")
    yield engine
    engine.dispose()
    if drop:
        drop()


def new_columns(engine: Engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        return {
            "mailing": connection.exec_driver_sql(
                "SELECT name, transactional FROM mailing ORDER BY id"
            ).all(),
            "client": connection.exec_driver_sql(
                "SELECT opted_out_at FROM client ORDER BY id"
            ).all(),
        }


def test_upgrade_adds_the_columns_with_what_was_true_before(engine_at_0005):
    before = rows(engine_at_0005)
    upgrade(engine_at_0005)
    assert current_revision(engine_at_0005) == HEAD_REVISION
    assert new_columns(engine_at_0005) == {
        "mailing": [(None, False)] * len(before["mailing"]),
        "client": [(None,)] * len(before["client"]),
    }
    # Every other value stays: the old columns come first, in their order.
    after = rows(engine_at_0005)
    widths = {table: len(before[table][0]) for table in TABLES if before[table]}
    assert {t: [row[: widths[t]] for row in after[t]] for t in widths} == {
        t: before[t] for t in widths
    }


def test_sqlite_keeps_autoincrement_and_deleted_ids_stay_unused(engine_at_0005):
    autoincremented = autoincrement_tables(engine_at_0005) if is_sqlite(engine_at_0005) else None
    upgrade(engine_at_0005)
    if autoincremented is not None:
        assert autoincrement_tables(engine_at_0005) == autoincremented
    with Session(engine_at_0005, expire_on_commit=False) as session:
        mailings.delete_mailing(session=session, mailing_id=2)  # the newest
        session.commit()
        assert add_mailing(session).id == 3  # not 2 again
        assert new_client(session, "79161112233").id == 4  # (client 3 was deleted at 0003)


def test_downgrade_gives_back_the_0005_tables_with_their_rows(engine_at_0005):
    before = rows(engine_at_0005)
    autoincremented = autoincrement_tables(engine_at_0005) if is_sqlite(engine_at_0005) else None
    upgrade(engine_at_0005)
    alembic(engine_at_0005, "downgrade", "0005")
    assert current_revision(engine_at_0005) == "0005"
    assert rows(engine_at_0005) == before
    if autoincremented is not None:
        assert autoincrement_tables(engine_at_0005) == autoincremented
