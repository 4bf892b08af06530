"""Migration 0004 on a database made before it: rows, schema and cascades stay, ids go up.

0004 rebuilds SQLite tables with ``AUTOINCREMENT`` (a no-op on PostgreSQL); each test
starts from a revision-0003 database filled through that revision's own tables.
"""

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel

from notifyctl.db import (
    HEAD_REVISION,
    current_revision,
    ensure_schema,
    is_sqlite,
    make_engine,
    upgrade,
)
from notifyctl.errors import StorageError
from notifyctl.models import ApiToken, Attempt
from notifyctl.services import mailings, tokens
from notifyctl.timeutil import utcnow
from tests.conftest import POSTGRES_ADMIN_URL
from tests.test_ids import mailing_with_messages, new_client

TABLES = ("client", "mailing", "message", "attempt", "api_token", "throttle", "report_run")


def alembic(engine, action: str, revision: str) -> None:
    """Run ``alembic upgrade|downgrade`` as ``notifyctl.db.upgrade`` does, foreign keys off."""
    config = Config()
    config.set_main_option("script_location", "notifyctl:migrations")
    sqlite = is_sqlite(engine)
    with engine.connect() as connection:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        with connection.begin():
            config.attributes["connection"] = connection
            getattr(command, action)(config, revision)
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


@pytest.fixture(params=["sqlite", "postgresql"])
def old_engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    """A database at revision 0003 with rows (see ``fill_at_0003``), on each backend."""
    url, drop = (
        (f"sqlite:///{tmp_path / 'old.db'}", None)
        if request.param == "sqlite"
        else _new_postgres_database()
    )
    engine = make_engine(url)
    fill_at_0003(engine)
    yield engine
    engine.dispose()
    if drop:
        drop()


@pytest.fixture
def old_sqlite(tmp_path) -> Iterator[Engine]:
    """A SQLite file at revision 0003 with rows: what 0004 rebuilds."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    fill_at_0003(engine)
    yield engine
    engine.dispose()


def fill_at_0003(engine) -> None:
    """Migrate to 0003 and store 3 clients, 2 mailings, 6 messages, 6 attempts and 2 API
    tokens, through that revision's tables; then delete client 3 (its messages stay)."""
    alembic(engine, "upgrade", "0003")
    now = utcnow()
    with engine.begin() as connection:
        tables = sa.MetaData()
        tables.reflect(connection)
        client, mailing, message, attempt, api_token = (tables.tables[name] for name in TABLES[:5])
        for n in (1, 2, 3):
            connection.execute(
                client.insert().values(
                    phone=f"7916000000{n}", operator_code="916", tag="", timezone="UTC",
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
        for _ in (1, 2):
            connection.execute(
                mailing.insert().values(
                    text="Hello", start_at=now, end_at=now + timedelta(hours=1),
                    operator_codes=[], tags=[], created_at=now, updated_at=now,
                )
            )  # fmt: skip
        for mailing_id in (1, 2):
            for client_id in (1, 2, 3):
                connection.execute(
                    message.insert().values(
                        mailing_id=mailing_id, client_id=client_id, created_at=now,
                        status="sent", attempts=1,
                    )
                )  # fmt: skip
        for message_id in range(1, 7):
            connection.execute(
                attempt.insert().values(message_id=message_id, started_at=now, duration_ms=1.0)
            )
        for name in ("first", "second"):
            connection.execute(
                api_token.insert().values(name=name, token_hash=name * 8, created_at=now)
            )
        connection.execute(client.delete().where(client.c.id == 3))


def _new_postgres_database():
    admin = make_engine(POSTGRES_ADMIN_URL)
    name = f"notifyctl_ids_{uuid.uuid4().hex[:8]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False), drop


def autoincrement_tables(engine) -> set[str]:
    with engine.connect() as connection:
        tables = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
        )
        return {name for name, sql in tables if "AUTOINCREMENT" in sql}


def test_migrated_sqlite_autoincrements_exactly_the_tables_the_models_say(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    ensure_schema(engine)
    modelled = {
        table.name
        for table in SQLModel.metadata.tables.values()
        if table.dialect_options["sqlite"]["autoincrement"]
    }
    assert autoincrement_tables(engine) == modelled
    assert set(TABLES[:5]) <= modelled  # (0004's tables, and any later one the models say)
    engine.dispose()


def rows(engine) -> dict[str, list[dict]]:
    with engine.connect() as connection:
        select = connection.exec_driver_sql
        return {
            table: [dict(row) for row in select(f"SELECT * FROM {table} ORDER BY 1").mappings()]
            for table in TABLES
        }


def as_before(after: dict[str, list[dict]], before: dict[str, list[dict]]) -> dict:
    """``after``'s rows with only the columns ``before``'s rows have: what a later
    migration added (a column with its default) is not a change of the rows kept."""
    return {
        table: [
            {column: row[column] for column in (before[table][0] if before[table] else row)}
            for row in after[table]
        ]
        for table in after
    }


def sqlite_schema(engine) -> dict[str, list]:
    """Columns, keys, foreign keys and indexes of every table, as SQLite reports them.

    Indexes SQLite makes for UNIQUE constraints are named by their place in the table's
    SQL (``sqlite_autoindex_api_token_1``), which a rebuild may shuffle: they count by
    what they cover.
    """
    schema = {}
    with engine.connect() as connection:
        pragma = connection.exec_driver_sql
        for table in TABLES:
            indexes = sorted(
                (
                    "auto" if name.startswith("sqlite_autoindex_") else name,
                    unique,
                    origin,
                    partial,
                    tuple(row[2] for row in pragma(f"PRAGMA index_info({name})")),
                )
                for _, name, unique, origin, partial in pragma(f"PRAGMA index_list({table})")
            )
            schema[table] = [
                pragma(f"PRAGMA table_xinfo({table})").all(),
                pragma(f"PRAGMA foreign_key_list({table})").all(),
                indexes,
            ]
        # Only these tables': later migrations add tables (and indexes) of their own.
        schema["index sql"] = pragma(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' "
            f"AND tbl_name IN {TABLES} ORDER BY name"
        ).all()
    return schema


def test_upgrade_to_0004_keeps_every_row(old_engine):
    before = rows(old_engine)
    upgrade(old_engine)
    assert current_revision(old_engine) == HEAD_REVISION
    assert as_before(rows(old_engine), before) == before


def test_upgrade_to_0004_keeps_columns_keys_and_indexes(old_sqlite):
    before = sqlite_schema(old_sqlite)
    alembic(old_sqlite, "upgrade", "0004")  # (later revisions add columns and indexes)
    assert sqlite_schema(old_sqlite) == before


def test_upgrade_to_0004_keeps_foreign_keys_enforced_and_cascading(old_engine):
    upgrade(old_engine)
    with old_engine.begin() as connection:
        if is_sqlite(old_engine):
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        connection.exec_driver_sql("DELETE FROM mailing WHERE id = 1")
        assert connection.exec_driver_sql("SELECT count(*) FROM message").scalar() == 3
        assert connection.exec_driver_sql("SELECT count(*) FROM attempt").scalar() == 3
    with pytest.raises(sa.exc.IntegrityError), old_engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO message (mailing_id, client_id, created_at, status, attempts) "
            "VALUES (99, 1, '2026-01-01 00:00:00', 'pending', 0)"
        )


def test_after_upgrade_to_0004_deleted_ids_are_never_given_again(old_engine):
    upgrade(old_engine)
    with Session(old_engine, expire_on_commit=False) as session:
        mailings.delete_mailing(session=session, mailing_id=2)  # messages 4-6, attempts 4-6
        session.execute(sa.delete(ApiToken).where(ApiToken.id == 2))
        session.commit()

        assert new_client(session, "79160000009").id > 3  # 3 is deleted, named by messages
        again, message_ids = mailing_with_messages(session)
        assert again.id > 2
        assert min(message_ids) > 6
        assert tokens.create_token(session=session, name="third")[0].id > 2
        session.add(attempt := Attempt(message_id=min(message_ids), mailing_id=again.id))
        session.commit()
        assert attempt.id > 6


def test_a_failed_upgrade_changes_nothing(old_sqlite):
    # A row that points at nothing (written with foreign keys off) stops the upgrade at
    # its last check, after every table was rebuilt: all of that must be undone.
    with old_sqlite.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.exec_driver_sql(
            "INSERT INTO attempt (message_id, started_at, duration_ms) "
            "VALUES (99, '2026-01-01 00:00:00', 0)"
        )
        connection.commit()
    with old_sqlite.connect() as connection:
        master = connection.exec_driver_sql("SELECT * FROM sqlite_master ORDER BY name").all()
    before = rows(old_sqlite)

    with pytest.raises(StorageError, match="undone"):
        upgrade(old_sqlite)
    assert current_revision(old_sqlite) == "0003"
    with old_sqlite.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("SELECT * FROM sqlite_master ORDER BY name").all() == (
            master
        )
    assert rows(old_sqlite) == before


def test_downgrade_from_0004_gives_back_the_0003_schema_and_rows(old_sqlite):
    schema, before = sqlite_schema(old_sqlite), rows(old_sqlite)
    upgrade(old_sqlite)
    alembic(old_sqlite, "downgrade", "0003")
    assert (sqlite_schema(old_sqlite), rows(old_sqlite)) == (schema, before)
    assert autoincrement_tables(old_sqlite) == set()
