"""Output of the CLI: rows as a rich table on stdout, or the REST API's JSON with ``--json``."""

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from rich.console import Console


#: Column order of message statuses in every statistics table.
STATUS_ORDER = ("sent", "pending", "sending", "failed", "expired", "cancelled")


def _console_class() -> type["Console"]:
    from rich.console import Console

    class PipeAwareConsole(Console):
        """A console that lets a closed pipe reach the CLI's one handler of it (exit 141,
        quietly) instead of exiting 1 on its own, as rich's does."""

        def on_broken_pipe(self) -> None:
            raise BrokenPipeError("stdout closed")

    return PipeAwareConsole


@cache
def _stdout() -> "Console":
    # rich loads on first use: `--json` output never pays for it.
    console = _console_class()
    # Piped output is not cut to 80 columns: tables take the width their content needs.
    return console() if sys.stdout.isatty() else console(width=10_000)


@cache
def stderr_console() -> "Console":
    return _console_class()(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    """Print ``data`` (already JSON-shaped) as one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def when(value: datetime | None, tz: str) -> str:
    """A datetime in the display timezone, to the second, with its offset."""
    if value is None:
        return "-"
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S%z")


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    caption: str | None = None,
    wrap: Sequence[str] = ("text", "last error", "filter"),
) -> None:
    """Print a table; numbers right-aligned; only the ``wrap`` columns may wrap.

    Cells are plain text: a name or tag such as ``[bold]`` or ``[/x]`` is shown as typed,
    never read as rich markup (``[/x]`` used to end the command with a MarkupError).
    """
    from rich.table import Table
    from rich.text import Text

    rows = list(rows)
    grid = Table(title=title, caption=caption, header_style="bold")
    for index, name in enumerate(columns):
        numeric = bool(rows) and all(isinstance(row[index], int) for row in rows)
        grid.add_column(
            name, justify="right" if numeric else "left", no_wrap=name not in wrap, overflow="fold"
        )
    for row in rows:
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    _stdout().print(grid)


def page_caption(total: int, limit: int, offset: int, shown: int) -> str:
    if total == 0:
        return "nothing yet"
    if shown == 0:
        return f"{total} in all; none at offset {offset}"
    last = offset + shown
    more = f" (next: --offset {last})" if last < total else ""
    return f"{offset + 1}-{last} of {total}{more}"


@contextmanager
def progress(description: str, *, total: int, unit: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr counting ``unit`` (``1,250/50,000 rows``) while the block
    runs; the block reports how far it got by calling what this yields. The bar is gone
    when the block ends (and never shown when stderr is not a terminal)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = stderr_console()
    bar = Progress(
        TextColumn(description),
        BarColumn(),
        TextColumn(f"{{task.completed:,}}/{{task.total:,}} {unit}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # (else it leaves an empty line in a log)
    )
    with bar:
        task = bar.add_task(description, total=total)
        # (A total counted ahead may fall short of what is read: the bar grows with it.)
        yield lambda done: bar.update(task, completed=done, total=max(total, done))


def info(message: str) -> None:
    """A message for the person at the terminal, on stderr."""
    stderr_console().print(message, highlight=False)


def admin_link(settings, base: str, login_token: str) -> str:
    """The line naming the admin UI: its login link, or its page when a provider signs in."""
    if settings.oidc_issuer and settings.oidc_client_id:
        return f"admin UI: {base}/admin/ (sign in with {settings.oidc_issuer})"
    return f"admin UI (login link): {base}/admin/login?token={login_token}"


def login_lines(settings, base: str, *, token: str, generated: bool) -> str:
    """The admin UI's link and the login token's line, as `up` and `api` print them.

    stderr is a log wherever a supervisor runs us: the token is printed only when this
    process just made it up for a local run (as Jupyter does), never one it was given
    (NOTIFY_LOGIN_TOKEN) and never in production.
    """
    use = "Authorize in Swagger UI, or Authorization: Bearer"
    if generated and settings.env != "prod":
        return f"{admin_link(settings, base, token)}\nlogin token ({use}): {token}"
    # No link with a placeholder in it (…?token=<your token>): what is printed opens as it is.
    if settings.oidc_issuer and settings.oidc_client_id:
        link = admin_link(settings, base, token)  # names the provider, not the token
    elif not generated:
        link = f"admin UI: {base}/admin/login?token= followed by your NOTIFY_LOGIN_TOKEN"
    else:
        link = f"admin UI: {base}/admin/"
    if not generated:
        return f"{link}\nlogin token: use your NOTIFY_LOGIN_TOKEN ({use})"
    return (
        f"{link}\nlogin token: a random one, not shown in production; set NOTIFY_LOGIN_TOKEN "
        "or create API tokens with `notifyctl token create`"
    )
