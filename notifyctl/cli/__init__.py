"""The ``notifyctl`` command line: a thin adapter over the service functions.

Every sub-app lives in its own module and imports the heavy parts (SQLModel, services)
inside its commands, so that ``notifyctl --help`` starts fast.
"""

import typer

from notifyctl import __version__
from notifyctl.cli import (
    audit,
    clients,
    database,
    logs,
    mailings,
    report,
    servers,
    stats,
    test_sends,
    tokens,
)
from notifyctl.cli.command import NotifyTyper
from notifyctl.cli.context import state

app = NotifyTyper(
    name="notifyctl",
    help="Manage clients and mailings, and deliver every message inside its time frame.",
    epilog="Settings come from NOTIFY_* environment variables or a .env file; see the README.",
    no_args_is_help=True,
    # Errors are one line (NotifyGroup.main): never Typer's rich traceback.
    pretty_exceptions_enable=False,
    # --install-completion / --show-completion: bash, zsh, fish, PowerShell.
    add_completion=True,
)
app.add_typer(clients.app, name="client")
app.add_typer(mailings.app, name="mailing")
# (in a module of their own: mailings.py is long enough)
mailings.app.command("test")(test_sends.send_test_text)
mailings.app.command("tests")(test_sends.list_test_sends)
app.command("stats")(stats.stats)
app.add_typer(database.app, name="db")
app.command("mock")(servers.mock)
app.command("daemon")(servers.daemon)
app.command("up")(servers.up)
app.command("api")(servers.api)
app.add_typer(tokens.app, name="token")
app.command("logs")(logs.logs)
app.add_typer(report.app, name="report")
app.command("audit")(audit.audit)


def _version(value: bool) -> None:
    if value:
        print(f"notifyctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: str | None = typer.Option(
        None,
        "--db",
        metavar="URL",
        envvar="NOTIFY_DATABASE_URL",
        help="Database URL: sqlite:///path.db or postgresql://user@host/db "
        "(default: a SQLite file in your user data directory).",
        show_envvar=True,
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show tracebacks of unexpected errors."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Manage clients and mailings, and deliver every message inside its time frame.

    Example: notifyctl client create --phone "+7 916 123-45-67" --tag vip
    """
    cli_state = state(ctx)
    cli_state.db_url = db
    cli_state.verbose = verbose


def main() -> None:
    """Console-script entry point (errors and a closed stdout: see NotifyGroup.main)."""
    app(prog_name="notifyctl")
