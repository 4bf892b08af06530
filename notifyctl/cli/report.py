"""``notifyctl report``: the daily statistics report, in the terminal or by email now."""

import typer

from notifyctl.cli.command import NotifyTyper
from notifyctl.cli.context import state

app = NotifyTyper(
    help="The statistics report of the last 24 hours (the daemon emails it daily).",
    no_args_is_help=True,
)
HOURS = typer.Option(
    24, "--hours", metavar="N", min=1, max=24 * 366, help="How far back the report looks."
)


def _build(ctx: typer.Context, hours: int):
    from notifyctl.services.report import build_report
    from notifyctl.timeutil import utcnow

    with state(ctx).session() as session:
        return build_report(session=session, now=utcnow(), hours=hours)


@app.command("show")
def show(
    ctx: typer.Context,
    hours: int = HOURS,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print the report the daily email carries: each mailing's counts and delivery rate.

    Example: notifyctl report show --hours 48
    """
    from notifyctl import render

    report = _build(ctx, hours)
    if as_json:
        render.print_json(
            {
                "since": report.since.isoformat(),
                "until": report.until.isoformat(),
                "mailings": [
                    {
                        "mailing_id": row.mailing_id,
                        "name": row.name,
                        "text": row.text,
                        "state": row.state.value,
                        "total": row.total,
                        "by_status": row.by_status,
                        "delivery_rate": row.delivery_rate,
                    }
                    for row in report.rows
                ],
                "totals": report.totals,
            }
        )
        return
    tz = state(ctx).settings.report_zone
    since, until = render.when(report.since, tz), render.when(report.until, tz)
    render.table(
        f"Mailings sending between {since} and {until}",
        ["name", "mailing", "text", "state", "total", *render.STATUS_ORDER, "delivered"],
        [
            [
                row.name or "-",
                row.mailing_id,
                row.text,
                row.state.value,
                row.total,
                *(row.by_status[s] for s in render.STATUS_ORDER),
                "-" if row.delivery_rate is None else f"{row.delivery_rate:.1%}",
            ]
            for row in report.rows
        ],
        caption=None if report.rows else "no mailing was sending in this period",
    )


@app.command("send")
def send(ctx: typer.Context, hours: int = HOURS) -> None:
    """Email the report now to NOTIFY_REPORT_TO over NOTIFY_SMTP_HOST (retried, then an error).

    This does not count as the day's report: the daemon still sends that one.

    Example: NOTIFY_SMTP_HOST=mail.example.com notifyctl report send
    """
    from daemon.mailer import MailError, send_report
    from notifyctl.errors import InvalidInput, Unavailable
    from notifyctl.render import info

    settings = state(ctx).settings
    # Settings missing are the caller's to fix (exit 2); only a failing server is exit 6.
    for variable, value in (
        ("NOTIFY_SMTP_HOST", settings.smtp_host),
        ("NOTIFY_REPORT_TO", settings.report_to),
    ):
        if not value:
            raise InvalidInput(
                "is not set; the report needs NOTIFY_SMTP_HOST and NOTIFY_REPORT_TO",
                field=variable,
            )
    report = _build(ctx, hours)
    try:
        send_report(settings, report)
    except MailError as exc:
        raise Unavailable(str(exc)) from None
    info(f"report sent to {', '.join(settings.report_to)}: {len(report.rows)} mailings")
