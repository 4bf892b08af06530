"""``notifyctl stats``: message counts by status, for every mailing or one."""

import typer

from notifyctl.cli.context import state
from notifyctl.render import STATUS_ORDER


def stats(
    ctx: typer.Context,
    mailing_id: int | None = typer.Argument(None, metavar="ID", help="One mailing in detail."),
    status: str | None = typer.Option(
        None,
        "--status",
        metavar="STATUS",
        help="With ID: only messages of this status (sent, pending, sending, failed, "
        "expired, cancelled).",
        autocompletion=lambda: list(STATUS_ORDER),
    ),
    limit: int = typer.Option(
        100, "--limit", metavar="N", help="With ID: messages per page (1-1000)."
    ),
    offset: int = typer.Option(0, "--offset", metavar="N", help="With ID: messages to skip."),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON (as GET /api/v1/stats or /mailings/ID/stats)."
    ),
) -> None:
    """Message counts by status for every mailing, or for one mailing with its messages.

    Examples: notifyctl stats    notifyctl stats 3 --status failed --json
    """
    from notifyctl import render

    cli = state(ctx)
    if mailing_id is None:
        # Every mailing's counts come through SQLAlchemy Core: no ORM to load.
        from notifyctl.services.counts import overall_stats, stats_json

        with cli.connection() as connection:
            rows = overall_stats(session=connection)
        if as_json:
            render.print_json([stats_json(row) for row in rows])
            return
        render.table(
            "Mailings by message status",
            ["name", "mailing", "state", "total", *STATUS_ORDER],
            [
                (
                    r.name or "-",
                    r.mailing_id,
                    r.state.value,
                    r.total,
                    *(r.by_status[s] for s in STATUS_ORDER),
                )
                for r in rows
            ],
        )
        return

    from notifyctl.services import stats as service
    from notifyctl.services.cost import mailing_cost
    from notifyctl.services.validation import message_status

    wanted = message_status(status) if status else None
    with cli.session() as session:
        one = service.mailing_stats(session=session, mailing_id=mailing_id)
        page = service.list_messages(
            session=session, mailing_id=mailing_id, status=wanted, limit=limit, offset=offset
        )
        cost = mailing_cost(session=session, stats=one, price=cli.settings.segment_price)
    if as_json:
        from notifyctl.services.views import stats_detail

        render.print_json(stats_detail(one, page, cost).model_dump(mode="json"))
        return
    tz = cli.settings.default_timezone
    render.table(
        f"{one.name} (mailing {one.mailing_id}, {one.state.value})"
        if one.name
        else f"Mailing {one.mailing_id} ({one.state.value})",
        ["total", *STATUS_ORDER],
        [(one.total, *(one.by_status[s] for s in STATUS_ORDER))],
    )
    if cost is not None:
        render.table(
            "Cost",
            ["price per segment", "segments", "audience", "estimated", "sent", "spent"],
            [
                (
                    str(cost.price),
                    cost.segments,
                    cost.audience,
                    str(cost.estimated),
                    one.by_status["sent"],
                    str(cost.spent),
                )
            ],
        )
    render.table(
        "Messages",
        ["id", "client", "status", "attempts", "sent at", "last error"],
        [
            (
                m.id,
                m.client_id,
                m.status,
                m.attempts,
                render.when(m.sent_at, tz),
                m.last_error or "",
            )
            for m in page.items
        ],
        caption=render.page_caption(page.total, page.limit, page.offset, len(page.items)),
    )
