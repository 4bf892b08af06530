"""Shared fixtures: a clean environment, and a fresh database on SQLite and PostgreSQL.

PostgreSQL is not optional: the tests that use it fail (they are never skipped) when the
server at NOTIFY_TEST_POSTGRES_URL (default: the local one) cannot be reached.
"""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from typer.testing import CliRunner

from notifyctl.config import get_settings
from notifyctl.db import make_engine, upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "NOTIFY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TABLES = (
    "attempt",
    "message",
    "mailing",
    "client",
    "throttle",
    "api_token",
    "report_run",
    "admin_session",
    "test_send",
    "audit",
    "mailing_summary",
    "prune_run",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No NOTIFY_* variable of the developer's shell, no .env of the checkout, fresh settings."""
    for name in list(os.environ):
        if name.startswith("NOTIFY_") and name != "NOTIFY_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    # Daemons started by tests serve no metrics unless a test asks: no fight over the metrics port.
    monkeypatch.setenv("NOTIFY_METRICS_PORT", "0")
    # Each test's daemons write their heartbeat in the test's folder, not the shared /tmp.
    monkeypatch.setenv("NOTIFY_HEARTBEAT_FILE", str(tmp_path / "daemon.heartbeat"))
    # The default database lives in the user data directory: point it at the test's folder.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, migrated once, dropped at the end."""
    admin = make_engine(POSTGRES_ADMIN_URL)
    name = f"notifyctl_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_ADMIN_URL} is needed by the tests, and unreachable: {exc}",
            pytrace=False,
        )
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "notifyctl.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    with engine.begin() as connection:
        forget_partitions(connection)
        connection.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    engine.dispose()
    return url


def forget_partitions(connection) -> None:
    """Drop the partitions earlier tests made beyond the first two ranges (ids restart at
    1): TRUNCATE's cost grows with them (0.08 s with 4, 0.6 s with 40)."""
    extra = connection.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'message'::regclass AND c.relname NOT IN ('message_p0', 'message_p1')"
    ).scalars()
    for name in list(extra):
        index = name.removeprefix("message_")
        for table in ("attempt", "message"):  # (attempt's refer to message's)
            connection.exec_driver_sql(f"ALTER TABLE {table} DETACH PARTITION {table}_{index}")
            connection.exec_driver_sql(f"DROP TABLE {table}_{index}")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine):
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False) as session:
        yield session
        session.rollback()


class Cli:
    """Runs ``notifyctl --db URL …`` in-process and returns the result."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None):
        from notifyctl.cli import app

        return self.runner.invoke(app, ["--db", self.db_url, *args], input=input)


@pytest.fixture
def cli(db_url: str) -> Cli:
    return Cli(db_url)


@pytest.fixture
def mock_api():
    """The mock sending API, served by uvicorn in a thread, with repeatable fault dice."""
    from mock import server
    from tests.daemon_helpers import MockApi
    from tests.servers import running

    with running(server.config(seed=7)) as url:
        yield MockApi(url)


@pytest.fixture(autouse=True)
def no_daemon_outlives_its_test():
    """A failed assertion must not leave a daemon sending to whatever takes its port next."""
    from tests.daemon_helpers import kill_started_daemons

    yield
    kill_started_daemons()
