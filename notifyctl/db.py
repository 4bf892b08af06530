"""Engines, sessions and the schema version for SQLite and PostgreSQL.

Nothing is built at import time: callers make the engine from a URL and pass sessions
down to the service functions.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DataError, DBAPIError, OperationalError

from notifyctl.errors import DataRefused, StorageError

if TYPE_CHECKING:  # (imported where a session is made: `stats` runs without the ORM)
    from sqlmodel import Session

#: The newest migration; ``tests/test_migrations.py`` checks it against the scripts.
HEAD_REVISION = "0012"
MIGRATION_LOCK = 7_245_310_911  # pg_advisory lock key held while migrating

SQLITE_BUSY_TIMEOUT_MS = 10_000  # milliseconds a writer waits for the lock
#: Key of ``Session.info`` naming who acts in the session ("cli:ana", "token:deploy",
#: "daemon"): front ends set it when they open the session, the audit log reads it.
ACTOR = "actor"


def normalise_url(url: str) -> str:
    """Select psycopg 3 for plain ``postgresql://`` URLs (and the older ``postgres://``)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


#: Query parameters of a database URL that hold secrets (libpq's password, sslpassword…).
SECRET_QUERY = re.compile(r"(?i)pass|secret|token|key")


def redact(url: str) -> str:
    """Return ``url`` with its password hidden, for messages and logs: the user-info's,
    and any query parameter that carries one (``?password=``, ``?sslpassword=``)."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return "<unparsable database URL>"
    if parsed.host and "@" in parsed.host:  # an unescaped @ in the password: its tail is here
        return "<database URL with an unescaped '@' in its password>"
    hidden = {
        name: ("***" if SECRET_QUERY.search(name) else value)
        for name, value in parsed.query.items()
    }
    return parsed.set(query=hidden).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API, stats) run while the daemon writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for ``url`` with the settings each backend needs."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # (ValueError: a port that is no number)
        # The URL is not quoted back: it may hold a password.
        raise StorageError(
            "the database URL is not one: use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB",
            field="database_url",
        ) from None
    if parsed.host and "@" in parsed.host:
        raise StorageError(
            "the database URL has an '@' in its password: write it as %40",
            field="database_url",
        )
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise StorageError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://",
            field="database_url",
        )
    return sa.create_engine(parsed, echo=echo, pool_pre_ping=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def locked(query, session: "Session", *, skip_locked: bool = True):
    """``query`` locking its rows for this transaction, skipping rows others hold.

    PostgreSQL: ``FOR UPDATE [SKIP LOCKED]``. SQLite has one writer at a time and no row
    locks: the query as it is.
    """
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=skip_locked)
    return query


def upsert_insert(session: "Session", table):
    """``INSERT`` of the session's dialect, the one that offers ``on_conflict_do_nothing``."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    return dialect.insert(table)


def current_revision(engine: Engine) -> str | None:
    """Return the schema revision stored in the database, or None for an empty one."""
    try:
        with engine.connect() as connection:
            try:
                # The common case in one cheap query; reflection only when it fails.
                with (
                    connection.begin_nested() if engine.dialect.name == "postgresql" else _nothing()
                ):
                    return connection.execute(
                        sa.text("SELECT version_num FROM alembic_version")
                    ).scalar()
            except (sa.exc.ProgrammingError, sa.exc.OperationalError) as exc:
                if not _missing_table(exc):
                    raise
            if sa.inspect(connection).get_table_names():
                raise StorageError(
                    f"{redact(str(engine.url))} holds tables but no notifyctl schema version"
                )
            return None
    except (OperationalError, DBAPIError) as exc:
        raise StorageError(_describe(engine, exc)) from exc


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _missing_table(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "no such table" in text or "does not exist" in text


def upgrade(engine: Engine) -> None:
    """Apply every migration not yet applied (alembic, imported here: it is slow to load)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "notifyctl:migrations")
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                _foreign_keys(connection, on=False)
            try:
                with connection.begin():
                    if sqlite:
                        # pysqlite opens transactions only before DML, which would leave a
                        # table half rebuilt if a migration fails; an explicit one
                        # makes the whole upgrade one all-or-nothing write.
                        connection.exec_driver_sql("BEGIN IMMEDIATE")
                    else:
                        # Several processes may start on one empty database at once (a
                        # migration Job beside API pods): one migrates, the others wait
                        # here and find it done.
                        connection.exec_driver_sql(
                            f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"
                        )
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                    if sqlite:
                        _check_foreign_keys(connection)
            finally:
                if sqlite:
                    _foreign_keys(connection, on=True)
    except (OperationalError, DBAPIError) as exc:
        raise StorageError(_describe(engine, exc)) from exc


def _foreign_keys(connection: sa.Connection, *, on: bool) -> None:
    """Switch SQLite's foreign keys, outside any transaction (inside one it is a no-op).

    Migrations rebuild tables by copying them (SQLite cannot alter much in place), and
    dropping an old parent table with foreign keys on would cascade to its children.
    The pooled connection gets them back on before anyone else uses it.
    """
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    connection.commit()


def _check_foreign_keys(connection: sa.Connection) -> None:
    """Refuse to commit migrations while a row points at nothing (they ran unchecked)."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        table, rowid, parent, _ = broken[0]
        raise StorageError(
            f"{len(broken)} rows refer to rows that do not exist (e.g. {table} rowid "
            f"{rowid} -> {parent}); the upgrade was undone, nothing changed"
        )


def ensure_schema(engine: Engine) -> None:
    """Create the schema in an empty database; refuse a database that needs upgrading."""
    revision = current_revision(engine)
    if revision is None:
        upgrade(engine)
    elif revision != HEAD_REVISION:
        raise StorageError(
            f"the database schema is at revision {revision}, this notifyctl needs "
            f"{HEAD_REVISION}: run `notifyctl db upgrade`"
        )


@contextmanager
def session_scope(engine: Engine, *, actor: str | None = None) -> Iterator["Session"]:
    """A session that commits on success and rolls back on any error.

    ``actor`` is who the changes made in it are recorded for (``services.audit``).
    """
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False, info={ACTOR: actor}) as session:
        try:
            yield session
            session.commit()
        except DataError as exc:
            session.rollback()
            raise DataRefused(_describe(engine, exc)) from exc
        except (OperationalError, DBAPIError) as exc:
            session.rollback()
            raise StorageError(_describe(engine, exc)) from exc
        except BaseException:
            session.rollback()
            raise


@contextmanager
def connection_scope(engine: Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction, for reads through SQLAlchemy Core (no ORM loaded):
    commits on success, rolls back on any error, which it reports as ``session_scope`` does."""
    try:
        with engine.begin() as connection:
            yield connection
    except DataError as exc:
        raise DataRefused(_describe(engine, exc)) from exc
    except (OperationalError, DBAPIError) as exc:
        raise StorageError(_describe(engine, exc)) from exc


def _describe(engine: Engine, exc: Exception) -> str:
    cause = (
        str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
    )
    return f"database {redact(str(engine.url))}: {cause}"
