"""``notifyctl client``: the client directory."""

from pathlib import Path

import typer

from notifyctl.cli.command import NotifyTyper
from notifyctl.cli.context import confirm, state

app = NotifyTyper(
    help="Create, change, delete, list and import clients; opt them out and in.",
    no_args_is_help=True,
)

PHONE_HELP = "Phone, 7 followed by 10 digits; '+7 (916) 123-45-67' is accepted."
OPERATOR_HELP = "3-digit operator code (default: the phone's digits 2-4)."
TZ_HELP = "IANA timezone such as Europe/Moscow (default: NOTIFY_DEFAULT_TIMEZONE)."
CLIENT_ID = typer.Argument(..., metavar="ID", help="The client's id (see client list).")


def complete_zone(incomplete: str) -> list[str]:
    """Shell completion of --tz: the zone names that start with what was typed."""
    from notifyctl.timeutil import zone_names

    folded = incomplete.casefold()
    return [name for name in zone_names() if name.casefold().startswith(folded)]


@app.command("create")
def create(
    ctx: typer.Context,
    phone: str = typer.Option(..., "--phone", metavar="PHONE", help=PHONE_HELP),
    operator: str | None = typer.Option(None, "--operator", metavar="CODE", help=OPERATOR_HELP),
    tag: str = typer.Option(
        "", "--tag", metavar="TAG", help="Free-text label, up to 64 characters."
    ),
    tz: str | None = typer.Option(
        None, "--tz", metavar="ZONE", help=TZ_HELP, autocompletion=complete_zone
    ),
) -> None:
    """Add a client and print its id.

    Example: notifyctl client create --phone "+7 916 123-45-67" --tag vip --tz Europe/Moscow
    """
    from notifyctl.models import ClientCreate
    from notifyctl.services.clients import create_client

    cli = state(ctx)
    with cli.session() as session:
        client = create_client(
            session=session,
            client_in=ClientCreate(phone=phone, operator_code=operator, tag=tag, timezone=tz),
            default_timezone=cli.settings.default_timezone,
        )
    print(client.id)


@app.command("update")
def update(
    ctx: typer.Context,
    client_id: int = CLIENT_ID,
    phone: str | None = typer.Option(None, "--phone", metavar="PHONE", help=PHONE_HELP),
    operator: str | None = typer.Option(None, "--operator", metavar="CODE", help=OPERATOR_HELP),
    tag: str | None = typer.Option(None, "--tag", metavar="TAG", help="New label ('' clears it)."),
    tz: str | None = typer.Option(
        None, "--tz", metavar="ZONE", help="New IANA timezone.", autocompletion=complete_zone
    ),
) -> None:
    """Change the given fields of a client; a new phone re-derives the operator unless given.

    Example: notifyctl client update 12 --tag churned
    """
    from notifyctl.models import ClientUpdate
    from notifyctl.services.clients import update_client

    with state(ctx).session() as session:
        update_client(
            session=session,
            client_id=client_id,
            client_in=ClientUpdate(phone=phone, operator_code=operator, tag=tag, timezone=tz),
        )


@app.command("delete")
def delete(
    ctx: typer.Context,
    client_id: int = CLIENT_ID,
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Do not ask (needed when stdin is not a terminal)."
    ),
) -> None:
    """Delete a client; its unsent messages are cancelled, sent ones stay in the statistics.

    Asks first on a terminal; elsewhere it needs --yes.

    Example: notifyctl client delete 12 --yes
    """
    from notifyctl.render import info
    from notifyctl.services.clients import delete_client

    confirm(f"Delete client {client_id}?", yes=yes)
    with state(ctx).session() as session:
        cancelled = delete_client(session=session, client_id=client_id)
    if cancelled:
        info(f"client {client_id} deleted; {cancelled} unsent message(s) cancelled")


@app.command("list")
def list_(
    ctx: typer.Context,
    tag: str | None = typer.Option(
        None, "--tag", metavar="TAG", help="Only clients with this tag."
    ),
    operator: str | None = typer.Option(
        None, "--operator", metavar="CODE", help="Only this operator code."
    ),
    phone: str | None = typer.Option(
        None, "--phone", metavar="DIGITS", help="Only phones starting with these digits."
    ),
    limit: int = typer.Option(100, "--limit", metavar="N", help="Rows per page (1-1000)."),
    offset: int = typer.Option(0, "--offset", metavar="N", help="Rows to skip."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (as GET /api/v1/clients)."),
) -> None:
    """List clients in id order, a page at a time.

    Example: notifyctl client list --tag vip --operator 916 --json
    """
    from notifyctl import render
    from notifyctl.services.clients import list_clients

    cli = state(ctx)
    with cli.session() as session:
        page = list_clients(
            session=session,
            tag=tag,
            operator_code=operator,
            phone=phone,
            limit=limit,
            offset=offset,
        )
    if as_json:
        from notifyctl.services.views import client_public, page_public

        render.print_json(page_public(page, client_public).model_dump(mode="json"))
        return
    zone = cli.settings.default_timezone
    render.table(
        "Clients",
        ["id", "phone", "operator", "tag", "timezone", "opted out"],
        [
            (c.id, c.phone, c.operator_code, c.tag, c.timezone, _opted_out(c.opted_out_at, zone))
            for c in page.items
        ],
        caption=render.page_caption(page.total, page.limit, page.offset, len(page.items)),
    )


def _opted_out(at, zone: str) -> str:
    from notifyctl.render import when

    return "" if at is None else when(at, zone)


@app.command("opt-out")
def opt_out(
    ctx: typer.Context,
    client_id: int = CLIENT_ID,
    as_json: bool = typer.Option(
        False, "--json", help="Print the client as JSON (as POST /api/v1/clients/{id}/opt-out)."
    ),
) -> None:
    """Stop sending to a client: only transactional mailings still reach it.

    Its pending messages of other mailings are cancelled at once (reason "opted out"),
    and no daemon starts a request for one later than a second after this returns.
    Opting out again changes nothing.

    Example: notifyctl client opt-out 12
    """
    from notifyctl import render
    from notifyctl.services.optout import opt_out as opt_client_out

    with state(ctx).session() as session:
        client, cancelled = opt_client_out(session=session, client_id=client_id)
        public = _public(client)
    if as_json:
        render.print_json(public)
    render.info(f"client {client_id} opted out; {cancelled} pending message(s) cancelled")


@app.command("opt-in")
def opt_in(
    ctx: typer.Context,
    client_id: int = CLIENT_ID,
    as_json: bool = typer.Option(
        False, "--json", help="Print the client as JSON (as POST /api/v1/clients/{id}/opt-in)."
    ),
) -> None:
    """Let a client receive every mailing again (from now on: cancelled messages stay so).

    Example: notifyctl client opt-in 12
    """
    from notifyctl import render
    from notifyctl.services.optout import opt_in as opt_client_in

    with state(ctx).session() as session:
        public = _public(opt_client_in(session=session, client_id=client_id))
    if as_json:
        render.print_json(public)
    render.info(f"client {client_id} opted in")


def _public(client) -> dict:
    from notifyctl.services.views import client_public

    return client_public(client).model_dump(mode="json")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Path = typer.Argument(..., metavar="FILE", help="CSV with a header line."),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Import the valid rows even if some are bad."
    ),
    on_duplicate: str = typer.Option(
        "fail",
        "--on-duplicate",
        metavar="[fail|skip|update]",
        help="A phone already stored: a bad row (fail), left as it is (skip), or given "
        "the row's values for the file's columns (update).",
        autocompletion=lambda: ["fail", "skip", "update"],
    ),
) -> None:
    """Import clients from CSV with columns phone,operator_code,tag,timezone (phone required).

    The file is streamed, so its size does not matter. Every bad row is reported with its
    line number, and nothing is imported unless every row is valid (or --skip-invalid). A
    phone already stored is a bad row unless --on-duplicate says to skip or update it, so
    the same file can be imported again.

    Example: notifyctl client import clients.csv --on-duplicate update
    """
    from notifyctl import render
    from notifyctl.errors import InvalidInput
    from notifyctl.services.imports import import_clients

    if not file.is_file():
        raise InvalidInput(f"no such file: {file}", field="file")
    cli = state(ctx)
    with (
        cli.session() as session,
        file.open(encoding="utf-8-sig", newline="") as source,
        render.progress("importing", total=_lines_after_header(file), unit="rows") as done,
    ):
        report = import_clients(
            session=session,
            source=source,
            default_timezone=cli.settings.default_timezone,
            skip_invalid=skip_invalid,
            on_duplicate=on_duplicate,
            on_progress=done,
        )
    for problem in report.errors:
        render.info(f"{file}:{problem.line}: {problem.message}")
    if report.rejected > len(report.errors):
        render.info(f"... and {report.rejected - len(report.errors)} more bad rows")
    if not report.committed:
        hint = "--skip-invalid imports the rest"
        if report.stored_phones:
            hint += (
                f"; --on-duplicate skip or update takes the {report.stored_phones} stored phone(s)"
            )
        raise InvalidInput(f"{report.rejected} bad row(s); nothing imported ({hint})")
    parts = [f"imported {report.imported} client(s)"]
    if report.updated:
        parts.append(f"updated {report.updated}")
    if report.skipped:
        parts.append(f"{report.skipped} already stored, left as they were")
    if report.rejected:
        parts.append(f"{report.rejected} bad row(s) skipped")
    render.info(", ".join(parts))


def _lines_after_header(path: Path) -> int:
    """How many lines follow the header: the progress bar's total, counted in one quick
    pass over the bytes (a row with a quoted line break counts as two lines, as it does
    in the progress the import reports)."""
    lines, last = 0, b"\n"
    with path.open("rb") as raw:
        for chunk in iter(lambda: raw.read(1 << 20), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return max(lines + (last != b"\n") - 1, 0)
