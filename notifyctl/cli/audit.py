"""``notifyctl audit``: who changed what."""

import typer

from notifyctl.cli.context import state

#: Characters of one value the table shows (``--json`` has them whole).
SHOWN_CHARS = 60


def audit(
    ctx: typer.Context,
    mailing: int | None = typer.Option(
        None, "--mailing", metavar="ID", help="Only entries about this mailing."
    ),
    client: int | None = typer.Option(
        None, "--client", metavar="ID", help="Only entries about this client."
    ),
    limit: int = typer.Option(100, "--limit", metavar="N", help="Rows per page (1-1000)."),
    offset: int = typer.Option(0, "--offset", metavar="N", help="Rows to skip."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (as GET /api/v1/audit)."),
) -> None:
    """Show who changed what, newest first: every change made through the CLI, the REST
    API or the admin UI, and the daemon's own (activation, completion, expiry).

    With --mailing and --client both, entries about either are shown.

    Example: notifyctl audit --mailing 3 --limit 20
    """
    from notifyctl import render
    from notifyctl.services.audit import list_entries, shown

    cli = state(ctx)
    with cli.session() as session:
        page = list_entries(
            session=session, mailing_id=mailing, client_id=client, limit=limit, offset=offset
        )
    if as_json:
        from notifyctl.services.views import audit_public, page_public

        render.print_json(page_public(page, audit_public).model_dump(mode="json"))
        return
    tz = cli.settings.default_timezone
    render.table(
        "Audit log",
        ["at", "actor", "action", "object", "changes"],
        [
            (
                render.when(entry.at, tz),
                entry.actor,
                entry.action,
                f"{entry.object_type} {entry.object_id}"
                if entry.object_id is not None
                else entry.object_type,
                "; ".join(
                    f"{field}: {shown(old, SHOWN_CHARS)} → {shown(new, SHOWN_CHARS)}"
                    for field, (old, new) in entry.changes.items()
                ),
            )
            for entry in page.items
        ],
        caption=render.page_caption(page.total, page.limit, page.offset, len(page.items)),
        wrap=("changes",),
    )
