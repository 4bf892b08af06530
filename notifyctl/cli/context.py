"""What every command shares: settings (with ``--db``), the engine, one error path."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
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
        from notifyctl.db import session_scope

        with session_scope(self.engine) as session:
            yield session


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def error(message: str) -> None:
    """Print one line on stderr."""
    print(f"error: {message}", file=sys.stderr)


class NotifyGroup(TyperGroup):
    """The root command group: turns every error a user can cause into one line and an exit code.

    Domain errors map to the codes in ``notifyctl.errors``; settings that fail validation
    exit 2; anything unexpected is reported in one line (exit 1), with the traceback
    only under ``-v``.
    """

    def invoke(self, ctx: Any) -> Any:
        from notifyctl.errors import NotifyError

        try:
            return super().invoke(ctx)
        except NotifyError as exc:
            error(str(exc))
            raise typer.Exit(exc.exit_code) from exc
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise  # usage errors and exits: typer prints and exits as usual
        except Exception as exc:
            if _is_validation_error(exc):
                error(f"invalid setting: {_first_validation_problem(exc)}")
                raise typer.Exit(2) from exc
            if isinstance(ctx.obj, CliState) and ctx.obj.verbose:
                raise
            error(f"unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)")
            raise typer.Exit(1) from exc


def _is_validation_error(exc: Exception) -> bool:
    return type(exc).__name__ == "ValidationError" and hasattr(exc, "errors")


def _first_validation_problem(exc: Any) -> str:
    problem = exc.errors()[0]
    message = str(problem.get("msg")).removeprefix("Value error, ")
    where = ".".join(str(part) for part in problem.get("loc", ()))
    # A rule across several settings has no one place; its message names the variables.
    return f"NOTIFY_{where.upper()}: {message}" if where else message
