"""``notifyctl logs``: the lines of one mailing, message or client from the JSON log file."""

import contextlib
from pathlib import Path

import typer

from notifyctl.cli.context import state


def logs(
    ctx: typer.Context,
    mailing: int | None = typer.Option(
        None, "--mailing", metavar="ID", help="Lines about this mailing."
    ),
    message: int | None = typer.Option(
        None, "--message", metavar="ID", help="Lines about this message."
    ),
    client: int | None = typer.Option(
        None, "--client", metavar="ID", help="Lines about this client."
    ),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new lines as they are written (Ctrl-C ends)."
    ),
    file: Path | None = typer.Option(
        None,
        "--file",
        metavar="FILE",
        help="The JSON log file (default: NOTIFY_LOG_FILE, or else the file `notifyctl up` "
        "writes).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the matching JSON lines as they are."
    ),
) -> None:
    """Pull the lines of one mailing, message or client out of the JSON log file.

    The file is written by every notifyctl process when NOTIFY_LOG_FILE is set, and by
    `notifyctl up` in any case (where its start says; rotated files beside it are read
    too). Without a filter, every line is printed.

    Examples: notifyctl logs --message 3456    notifyctl logs --mailing 12 --follow
    """
    import json

    from notifyctl import logfile
    from notifyctl.config import default_log_file
    from notifyctl.errors import InvalidInput

    # Without NOTIFY_LOG_FILE, the file `notifyctl up` writes (it sets that variable for
    # its children to this same default).
    path = file or state(ctx).settings.log_file or default_log_file()
    if not follow and not logfile.log_files(path):
        raise InvalidInput(
            f"{path} does not exist (yet): notifyctl processes write it when NOTIFY_LOG_FILE "
            "names it, `notifyctl up` in any case",
            field="--file",
        )
    wanted = {
        key: value
        for key, value in (("mailing_id", mailing), ("message_id", message), ("client_id", client))
        if value is not None
    }

    def show(records) -> None:
        for record in records:
            if logfile.matches(record, wanted):
                line = (
                    json.dumps(record, ensure_ascii=False) if as_json else logfile.readable(record)
                )
                print(line, flush=True)

    show(logfile.read_lines(path))
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            show(logfile.follow_lines(path))
