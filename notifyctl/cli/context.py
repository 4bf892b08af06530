"""What every command shares: settings (with ``--db``), the engine, messages, confirmation."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlmodel import Session

    from notifyctl.config import Settings


@dataclass
class CliState:
    """Per-invocation state, built lazily so that ``--help`` stays fast."""

    db_url: str | None = None
    verbose: bool = False
    _settings: "Settings | None" = field(default=None, repr=False)
    _engine: "Engine | None" = field(default=None, repr=False)

    @property
    def settings(self) -> "Settings":
        if self._settings is None:
            from notifyctl.config import get_settings

            settings = get_settings()
            if self.db_url:  # validated again: production refuses a weak --db password too
                settings = type(settings)(**(settings.model_dump() | {"database_url": self.db_url}))
            self._settings = settings
            from notifyctl.logs import configure_logging

            # Servers configure again with the console at NOTIFY_LOG_LEVEL.
            configure_logging(settings, console_level=None if self.verbose else "WARNING")
        return self._settings

    @property
    def engine(self) -> "Engine":
        """The engine, with the schema created on first use of an empty database."""
        if self._engine is None:
            from notifyctl.db import ensure_schema, make_engine

            engine = make_engine(self.settings.database_url)
            ensure_schema(engine)
            self._engine = engine
        return self._engine

    @contextmanager
    def session(self) -> Iterator["Session"]:
        """A session whose changes the audit log records as made by ``actor()``."""
        from notifyctl.db import session_scope

        with session_scope(self.engine, actor=actor()) as session:
            yield session

    @contextmanager
    def connection(self) -> Iterator["Connection"]:
        """A connection for service functions that read through SQLAlchemy Core (they
        start faster: no ORM to load)."""
        from notifyctl.db import connection_scope

        with connection_scope(self.engine) as connection:
            yield connection


def actor() -> str:
    """Who runs this command, for the audit log: ``cli:`` and the operating system's user
    name (as the environment gives it, like ``whoami``: the CLI holds the database URL
    and could write anything; this says who, it does not prove it)."""
    import getpass

    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no LOGNAME/USER and no passwd entry (a bare container)
        name = f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"cli:{name}"


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def error(message: str) -> None:
    """Print one line on stderr."""
    print(f"error: {message}", file=sys.stderr)


def confirm(question: str, *, yes: bool) -> None:
    """Go on when ``--yes`` was given; else ask on a terminal, and refuse anywhere else.

    A script (stdin not a terminal) must say ``--yes``: it cannot answer a prompt, and
    an irreversible command must not act on a guess. A "no" raises typer.Abort.
    """
    from notifyctl.errors import InvalidInput

    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInput(
            "this cannot be undone; pass --yes to confirm (stdin is no terminal to ask on)",
            field="--yes",
        )
    if not typer.confirm(question, default=False, err=True):
        raise typer.Abort()
