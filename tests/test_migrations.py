"""The schema: migrations match the models, empty databases are set up on first use."""

import re

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import notifyctl.models  # noqa: F401
from notifyctl.db import HEAD_REVISION, current_revision, ensure_schema, make_engine
from notifyctl.errors import StorageError


def test_head_revision_constant_matches_the_scripts():
    config = Config()
    config.set_main_option("script_location", "notifyctl:migrations")
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


PARTITION = re.compile(r"(message|attempt)_p\d+")


def _of_the_models(dialect: str):
    """What the models describe on ``dialect``: not PostgreSQL's partitions (nor the
    copies of the attempts' foreign key it keeps for each message partition), not an
    index made for another dialect only (``ddl_if``)."""

    def include(obj, name, type_, reflected, compare_to) -> bool:
        if type_ == "table" and reflected and PARTITION.fullmatch(name or ""):
            return False
        if type_ == "foreign_key_constraint" and reflected:
            return not PARTITION.fullmatch(obj.referred_table.name)
        condition = getattr(obj, "_ddl_if", None)
        return condition is None or condition.dialect in (None, dialect)

    return include


def test_migrations_produce_exactly_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": False, "include_object": _of_the_models(engine.dialect.name)},
        )
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_first_use_of_an_empty_database_creates_the_schema(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert current_revision(engine) is None
    ensure_schema(engine)
    assert current_revision(engine) == HEAD_REVISION


def test_an_older_schema_is_refused_with_the_command_to_run(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    ensure_schema(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(StorageError, match="notifyctl db upgrade"):
        ensure_schema(engine)


def test_a_foreign_database_is_refused(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE accounts (id INTEGER)"))
    with pytest.raises(StorageError, match="no notifyctl schema"):
        ensure_schema(engine)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_processes_starting_together_on_an_empty_postgres_migrate_it_once(postgres_url):
    """A migration Job and API pods on a new database: none fails, the schema is whole."""
    import threading
    import uuid

    from sqlalchemy.engine import make_url

    from notifyctl.db import upgrade
    from tests.conftest import POSTGRES_ADMIN_URL

    admin = make_engine(POSTGRES_ADMIN_URL)
    name = f"notifyctl_race_{uuid.uuid4().hex[:8]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    errors: list[Exception] = []

    def start() -> None:
        engine = make_engine(url)
        try:
            upgrade(engine)
        except Exception as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    try:
        threads = [threading.Thread(target=start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        engine = make_engine(url)
        assert current_revision(engine) == HEAD_REVISION
        engine.dispose()
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
