"""``notifyctl mailing test`` and ``mailing tests``: send a mailing's text to one phone
now, and list what such test sends got back (commands of the ``mailing`` sub-app)."""

import typer

from notifyctl.cli.context import state
from notifyctl.cli.mailings import MAILING_ID

#: Characters of the API's answer the table shows (``--json`` has it whole).
SHOWN_CHARS = 60


def send_test_text(
    ctx: typer.Context,
    mailing_id: int = MAILING_ID,
    phone: str = typer.Option(
        ...,
        "--phone",
        metavar="PHONE",
        help="Where to send it: 7 and 10 digits, such as +7 (916) 123-45-67.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON (as POST /api/v1/mailings/ID/test)."
    ),
) -> None:
    """Send the mailing's current text to one phone now, once, and print the API's answer.

    The request goes to NOTIFY_SENDER_URL with NOTIFY_SENDER_TOKEN, like the daemon's,
    with no retry and at most NOTIFY_REQUEST_TIMEOUT seconds. It is no message of the
    mailing (not in its statistics) and works in any state of it; it is recorded, and its
    id, the message id the API gets, is never any message's. Exit code 6 when the API
    does not accept it (an error status, a refused token, a timeout, no connection).

    Example: notifyctl mailing test 3 --phone "+7 916 123-45-67"
    """
    from notifyctl import render
    from notifyctl.errors import Unavailable
    from notifyctl.sendapi import poster
    from notifyctl.services.test_sends import send_test

    cli = state(ctx)
    shown = send_test(
        open_session=cli.session,
        mailing_id=mailing_id,
        phone=phone,
        post=poster(cli.settings),
    )
    if as_json:
        render.print_json(shown.model_dump(mode="json"))
    else:
        status = "-" if shown.http_status is None else str(shown.http_status)
        verdict = "accepted" if shown.accepted else "NOT accepted"
        print(f"test send {shown.id} to {shown.phone}: {verdict}")
        print(f"  HTTP status  {status}")
        print(f"  duration     {shown.duration_ms:.0f} ms")
        print(f"  answer       {shown.response_excerpt or '-'}")
    if not shown.accepted:
        raise Unavailable(f"the sending API did not accept test send {shown.id}: {shown.error}")


def list_test_sends(
    ctx: typer.Context,
    mailing_id: int = MAILING_ID,
    limit: int = typer.Option(100, "--limit", metavar="N", help="Rows per page (1-1000)."),
    offset: int = typer.Option(0, "--offset", metavar="N", help="Rows to skip."),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON (as GET /api/v1/mailings/ID/tests)."
    ),
) -> None:
    """List a mailing's test sends, newest first: the phone, when, and the API's answer.

    Example: notifyctl mailing tests 3 --limit 10
    """
    from notifyctl import render
    from notifyctl.services.test_sends import list_test_sends as list_page
    from notifyctl.services.test_sends import to_public
    from notifyctl.services.views import page_public

    cli = state(ctx)
    with cli.session() as session:
        page = list_page(session=session, mailing_id=mailing_id, limit=limit, offset=offset)
    shown = page_public(page, to_public)
    if as_json:
        render.print_json(shown.model_dump(mode="json"))
        return
    tz = cli.settings.default_timezone
    render.table(
        f"Test sends of mailing {mailing_id}",
        ["id", "at", "phone", "accepted", "HTTP", "ms", "answer"],
        [
            (
                test.id,
                render.when(test.at, tz),
                test.phone,
                "yes" if test.accepted else "no",
                "-" if test.http_status is None else str(test.http_status),
                "-" if test.duration_ms is None else f"{test.duration_ms:.0f}",
                _cut(test.error or test.response_excerpt or "-"),
            )
            for test in shown.items
        ],
        caption=render.page_caption(page.total, page.limit, page.offset, len(page.items)),
        wrap=("answer",),
    )


def _cut(value: str) -> str:
    return value if len(value) <= SHOWN_CHARS else value[: SHOWN_CHARS - 1] + "…"
