"""Migration 0005 on a database made before it: the sessions table comes, nothing else moves.

Each test starts from a revision-0004 database with rows (``fill_at_0003``, then 0004),
on SQLite and PostgreSQL.
"""

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from notifyctl.db import current_revision, make_engine, upgrade
from notifyctl.services import sessions
from tests.test_migration_0004 import _new_postgres_database, alembic, fill_at_0003, rows


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_at_0004(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    url, drop = (
        (f"sqlite:///{tmp_path / 'old.db'}", None)
        if request.param == "sqlite"
        else _new_postgres_database()
    )
    engine = make_engine(url)
    fill_at_0003(engine)
    alembic(engine, "upgrade", "0004")
    yield engine
    engine.dispose()
    if drop:
        drop()


def tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(sa.inspect(connection).get_table_names())


def test_upgrade_to_0005_adds_the_sessions_table_and_keeps_every_row(engine_at_0004):
    before, names = rows(engine_at_0004), tables(engine_at_0004)
    alembic(engine_at_0004, "upgrade", "0005")  # (later migrations add tables of their own)
    assert current_revision(engine_at_0004) == "0005"
    assert tables(engine_at_0004) == names | {"admin_session"}
    assert rows(engine_at_0004) == before


def test_sessions_work_after_the_upgrade(engine_at_0004):
    upgrade(engine_at_0004)
    with Session(engine_at_0004) as session:
        sid = sessions.start_session(session=session, user="ops", lifetime=timedelta(hours=1))
        session.commit()
        assert sessions.session_user(session=session, session_id=sid) == "ops"


def test_downgrade_from_0005_drops_only_the_sessions_table(engine_at_0004):
    before, names = rows(engine_at_0004), tables(engine_at_0004)
    upgrade(engine_at_0004)
    alembic(engine_at_0004, "downgrade", "0004")
    assert current_revision(engine_at_0004) == "0004"
    assert (tables(engine_at_0004), rows(engine_at_0004)) == (names, before)
