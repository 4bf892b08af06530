"""``notifyctl mailing``: create and steer mailings."""

import typer

from notifyctl.cli.command import NotifyTyper
from notifyctl.cli.context import confirm, state

app = NotifyTyper(
    help="Create, change, pause, cancel, delete, list and test mailings.", no_args_is_help=True
)

TIME_HELP = (
    "ISO-8601 time such as 2026-12-01T09:00+03:00, or now / now+10m / now+2h; "
    "without an offset it is read in NOTIFY_DEFAULT_TIMEZONE."
)
OPERATOR_HELP = "Send only to this operator code; repeat for several ('' clears the list)."
TAG_HELP = "Send only to clients with this tag; repeat for several ('' clears the list)."
WINDOW_HELP = "Send only while the client's local time is in HH:MM-HH:MM (22:00-06:00 wraps)."
NAME_HELP = "What operators call it, shown first in every list: up to 200 characters, one line."
TRANSACTIONAL_HELP = (
    "A one-time code or service notice: it reaches opted-out clients and is not frequency-capped."
)
MAILING_ID = typer.Argument(..., metavar="ID", help="The mailing's id (see mailing list).")


def _cleaned(values: list[str] | None) -> list[str] | None:
    return None if values is None else [v for v in values if v.strip()]


@app.command("create")
def create(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", metavar="NAME", help=NAME_HELP),
    text: str = typer.Option(..., "--text", metavar="TEXT", help="The message, 1-1000 characters."),
    start: str = typer.Option(
        ..., "--start", metavar="TIME", help="When sending starts. " + TIME_HELP
    ),
    end: str = typer.Option(
        ..., "--end", metavar="TIME", help="When sending stops for good. " + TIME_HELP
    ),
    transactional: bool = typer.Option(False, "--transactional", help=TRANSACTIONAL_HELP),
    operator: list[str] | None = typer.Option(
        None, "--operator", metavar="CODE", help=OPERATOR_HELP
    ),
    tag: list[str] | None = typer.Option(None, "--tag", metavar="TAG", help=TAG_HELP),
    window: str | None = typer.Option(None, "--window", metavar="HH:MM-HH:MM", help=WINDOW_HELP),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Check everything and print how many clients the filter matches now, with the "
        "text's SMS segments (and the estimated cost when NOTIFY_SEGMENT_PRICE is set); "
        "create nothing.",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help='Print JSON: the new mailing (as POST /api/v1/mailings), or {"audience": N, '
        '"segments": {...}, "cost": {...} or null} with --dry-run.',
    ),
) -> None:
    """Create a mailing and print its id; the daemon starts it at --start.

    Says on stderr how many SMS segments its text takes, and warns when no client
    matches its filter now. With --dry-run it prints the number of clients the filter
    matches now instead (segments and estimated cost on stderr), and creates nothing.

    Example: notifyctl mailing create --name "Black Friday" --text "Sale" --start now --end now+2h
    """
    from notifyctl import render
    from notifyctl.models import MailingCreate, MailingFilter
    from notifyctl.services import validation
    from notifyctl.services.cost import plan_mailing
    from notifyctl.services.mailings import create_mailing, mailing_audience
    from notifyctl.services.segments import count_segments, describe
    from notifyctl.timeutil import parse_datetime

    cli = state(ctx)
    tz = cli.settings.default_timezone
    mailing_in = MailingCreate(
        name=name,
        transactional=transactional,
        text=text,
        start_at=parse_datetime(start, field="start", default_tz=tz),
        end_at=parse_datetime(end, field="end", default_tz=tz),
        filter=MailingFilter(operator_codes=_cleaned(operator) or [], tags=_cleaned(tag) or []),
        send_window=validation.parse_window(window) if window else None,
    )
    with cli.session() as session:
        if dry_run:
            plan = plan_mailing(
                session=session, mailing_in=mailing_in, price=cli.settings.segment_price
            )
        else:
            mailing = create_mailing(session=session, mailing_in=mailing_in)
            audience = mailing_audience(session=session, mailing=mailing)
            public = _public(mailing) if as_json else None
    if dry_run:
        _print_plan(plan, as_json=as_json)
        return
    if as_json:
        render.print_json(public)
    else:
        print(mailing.id)
    if audience == 0:
        render.info(
            f"warning: no client matches the filter of mailing {mailing.id} now "
            f"({_describe_filter(mailing.operator_codes, mailing.tags)}); it sends nothing "
            "unless matching clients are added before it starts"
        )
    render.info(f"mailing {mailing.id}: {describe(count_segments(mailing.text))}")


def _print_plan(plan, *, as_json: bool) -> None:
    """A dry run's answer: the audience (or all of it as JSON) on stdout, the rest on stderr."""
    from notifyctl import render
    from notifyctl.services.segments import describe

    if as_json:
        from notifyctl.services.views import dry_run_public

        render.print_json(dry_run_public(plan).model_dump(mode="json"))
    else:
        print(plan.audience)
    render.info(f"dry run: {plan.audience} client(s) match the filter now; nothing was created")
    render.info(f"text: {describe(plan.segments)}")
    if plan.estimated is not None:
        render.info(
            f"estimated cost: {plan.audience} client(s) x {plan.segments.segments} "
            f"segment(s) x {plan.price} = {plan.estimated}"
        )


def _public(mailing) -> dict:
    from notifyctl.services.views import mailing_public

    return mailing_public(mailing).model_dump(mode="json")


@app.command("update")
def update(
    ctx: typer.Context,
    mailing_id: int = MAILING_ID,
    text: str | None = typer.Option(None, "--text", metavar="TEXT", help="New text."),
    name: str | None = typer.Option(
        None, "--name", metavar="NAME", help="New name ('' removes it). " + NAME_HELP
    ),
    transactional: bool | None = typer.Option(
        None,
        "--transactional/--not-transactional",
        help="Make it transactional or not; only before it starts. " + TRANSACTIONAL_HELP,
    ),
    start: str | None = typer.Option(
        None, "--start", metavar="TIME", help="New start. " + TIME_HELP
    ),
    end: str | None = typer.Option(None, "--end", metavar="TIME", help="New end. " + TIME_HELP),
    operator: list[str] | None = typer.Option(
        None, "--operator", metavar="CODE", help=OPERATOR_HELP
    ),
    tag: list[str] | None = typer.Option(None, "--tag", metavar="TAG", help=TAG_HELP),
    window: str | None = typer.Option(None, "--window", metavar="HH:MM-HH:MM", help=WINDOW_HELP),
    no_window: bool = typer.Option(False, "--no-window", help="Remove the send window."),
) -> None:
    """Change a mailing that has not ended; unsent messages follow the change at once.

    Example: notifyctl mailing update 3 --name "Black Friday, day 2" --tag vip --tag new
    """
    from notifyctl.models import MailingFilter, MailingUpdate
    from notifyctl.services import validation
    from notifyctl.services.mailings import get_mailing, update_mailing
    from notifyctl.timeutil import parse_datetime

    cli = state(ctx)
    tz = cli.settings.default_timezone
    with cli.session() as session:
        filter_ = None
        if operator is not None or tag is not None:
            current = get_mailing(session=session, mailing_id=mailing_id)
            filter_ = MailingFilter(
                operator_codes=_cleaned(operator)
                if operator is not None
                else current.operator_codes,
                tags=_cleaned(tag) if tag is not None else current.tags,
            )
        # (a name given, even '', is a change; none given leaves the name as it is)
        renamed = {"name": name} if name is not None else {}
        update_mailing(
            session=session,
            mailing_id=mailing_id,
            mailing_in=MailingUpdate(
                **renamed,
                transactional=transactional,
                text=text,
                start_at=parse_datetime(start, field="start", default_tz=tz) if start else None,
                end_at=parse_datetime(end, field="end", default_tz=tz) if end else None,
                filter=filter_,
                send_window=validation.parse_window(window) if window else None,
                clear_window=no_window,
            ),
        )


def _steering_command(
    action: str, service_name: str, doc: str, *, question: str | None = None
) -> None:
    """Register ``notifyctl mailing ACTION ID``, a call of one mailing service function.

    With a ``question`` ("Delete mailing {id}?") the action cannot be undone: the command
    takes --yes, and asks on a terminal without it (see ``context.confirm``).
    """

    def run(ctx: typer.Context, mailing_id: int) -> None:
        from notifyctl.render import info
        from notifyctl.services import mailings

        with state(ctx).session() as session:
            result = getattr(mailings, service_name)(session=session, mailing_id=mailing_id)
        if action == "retry":
            info(f"{result} failed message(s) of mailing {mailing_id} queued again")

    if question is None:

        def command(ctx: typer.Context, mailing_id: int = MAILING_ID) -> None:
            run(ctx, mailing_id)

    else:

        def command(
            ctx: typer.Context,
            mailing_id: int = MAILING_ID,
            yes: bool = typer.Option(
                False, "--yes", "-y", help="Do not ask (needed when stdin is not a terminal)."
            ),
        ) -> None:
            confirm(question.format(id=mailing_id), yes=yes)
            run(ctx, mailing_id)

    command.__doc__ = doc
    app.command(action)(command)


_steering_command(
    "pause",
    "pause_mailing",
    "Pause a mailing: nothing is sent until it is resumed (its end still holds).\n\n"
    "Example: notifyctl mailing pause 3",
)
_steering_command(
    "resume", "resume_mailing", "Resume a paused mailing.\n\nExample: notifyctl mailing resume 3"
)
_steering_command(
    "retry",
    "retry_failed",
    "Queue the failed messages of a mailing that has not ended again.\n\n"
    "Example: notifyctl mailing retry 3",
)
_steering_command(
    "cancel",
    "cancel_mailing",
    "Cancel a mailing for good: its pending messages become cancelled.\n\n"
    "Asks first on a terminal; elsewhere it needs --yes.\n\n"
    "Example: notifyctl mailing cancel 3 --yes",
    question="Cancel mailing {id} for good?",
)
_steering_command(
    "delete",
    "delete_mailing",
    "Delete a mailing with its messages and statistics.\n\n"
    "Asks first on a terminal; elsewhere it needs --yes.\n\n"
    "Example: notifyctl mailing delete 3 --yes",
    question="Delete mailing {id} with its messages and statistics?",
)


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: int = typer.Option(100, "--limit", metavar="N", help="Rows per page (1-1000)."),
    offset: int = typer.Option(0, "--offset", metavar="N", help="Rows to skip."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (as GET /api/v1/mailings)."),
) -> None:
    """List mailings, newest first.

    Example: notifyctl mailing list --json
    """
    from notifyctl import render
    from notifyctl.services.mailings import list_mailings, mailing_state

    cli = state(ctx)
    with cli.session() as session:
        page = list_mailings(session=session, limit=limit, offset=offset)
    if as_json:
        from notifyctl.services.views import mailing_public, page_public

        render.print_json(page_public(page, mailing_public).model_dump(mode="json"))
        return
    tz = cli.settings.default_timezone
    render.table(
        "Mailings",
        ["name", "id", "state", "start", "end", "filter", "window", "text"],
        [
            (
                _cut(m.name) if m.name else "-",
                m.id,
                mailing_state(m).value,
                render.when(m.start_at, tz),
                render.when(m.end_at, tz),
                _describe_filter(m.operator_codes, m.tags),
                f"{m.window_start}-{m.window_end}" if m.window_start else "-",
                _cut(m.text),
            )
            for m in page.items
        ],
        caption=render.page_caption(page.total, page.limit, page.offset, len(page.items)),
    )


@app.command("show")
def show(
    ctx: typer.Context,
    mailing_id: int = MAILING_ID,
    as_json: bool = typer.Option(False, "--json", help="Print JSON (as GET /api/v1/mailings/ID)."),
) -> None:
    """Show one mailing: its name, whether it is transactional, its text, times and filter.

    Example: notifyctl mailing show 3
    """
    from notifyctl import render
    from notifyctl.services.mailings import get_mailing, mailing_state

    cli = state(ctx)
    with cli.session() as session:
        mailing = get_mailing(session=session, mailing_id=mailing_id)
    if as_json:
        render.print_json(_public(mailing))
        return
    tz = cli.settings.default_timezone
    window = f"{mailing.window_start}-{mailing.window_end}" if mailing.window_start else "-"
    render.table(
        f"Mailing {mailing.id}",
        ["field", "value"],
        [
            ("name", mailing.name or "-"),
            ("id", str(mailing.id)),
            ("state", mailing_state(mailing).value),
            ("transactional", "yes" if mailing.transactional else "no"),
            ("start", render.when(mailing.start_at, tz)),
            ("end", render.when(mailing.end_at, tz)),
            ("filter", _describe_filter(mailing.operator_codes, mailing.tags)),
            ("window", window),
            ("text", mailing.text),
        ],
        wrap=("value",),
    )


def _cut(value: str, width: int = 40) -> str:
    """``value`` for a table column: at most ``width`` characters, cut with an ellipsis."""
    return value if len(value) <= width else value[: width - 1] + "…"


def _describe_filter(operator_codes: list[str], tags: list[str]) -> str:
    parts = []
    if operator_codes:
        parts.append("operator " + ",".join(operator_codes))
    if tags:
        parts.append("tag " + ",".join(tags))
    return "; ".join(parts) or "everyone"
