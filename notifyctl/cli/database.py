"""``notifyctl db``: the schema, and retention."""

import typer

from notifyctl.cli.command import NotifyTyper
from notifyctl.cli.context import state
from notifyctl.render import info

app = NotifyTyper(
    help="Database schema and retention: apply migrations, prune old rows.", no_args_is_help=True
)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Apply every migration not yet applied (safe to run again).

    Example: notifyctl --db postgresql://notify@db/notify db upgrade
    """
    from notifyctl.db import HEAD_REVISION, current_revision, make_engine, redact
    from notifyctl.db import upgrade as apply

    settings = state(ctx).settings
    engine = make_engine(settings.database_url)
    before = current_revision(engine)
    apply(engine)
    target = redact(settings.database_url)
    if before == HEAD_REVISION:
        info(f"{target} is up to date (revision {HEAD_REVISION})")
    else:
        info(f"{target} upgraded from {before or 'empty'} to revision {HEAD_REVISION}")


@app.command("prune")
def prune(
    ctx: typer.Context,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only count what would be removed; change nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    no_pause: bool = typer.Option(
        False,
        "--no-pause",
        help="Delete batch after batch without pausing (when no daemon is sending).",
    ),
) -> None:
    """Apply retention now: delete attempts older than NOTIFY_RETENTION_ATTEMPTS, and the
    messages of mailings that ended longer ago than NOTIFY_RETENTION_MESSAGES (their
    counts stay, in a summary). Prints rows per table, and the database's size.

    Batches of 5,000 rows, each its own transaction, with a pause after each as long as
    it took, so that sending daemons keep half of the database's time. The daemon does
    the same once a day; 0 keeps everything forever.

    Example: NOTIFY_RETENTION_MESSAGES=180d notifyctl db prune --dry-run
    """
    import time

    from notifyctl import render
    from notifyctl.cli.context import actor
    from notifyctl.services import retention
    from notifyctl.timeutil import utcnow

    cli = state(ctx)
    settings = cli.settings
    cutoffs = retention.cutoffs(
        now=utcnow(), attempts=settings.retention_attempts, messages=settings.retention_messages
    )
    with cli.session() as session:
        before = retention.database_size(session=session)
        planned = retention.plan(session=session, cutoffs=cutoffs)
    removed, after = planned, before
    if not dry_run:
        total = planned.attempt + planned.message
        with render.progress("pruning", total=total, unit="rows") as done:
            steps = retention.steps(engine=cli.engine, cutoffs=cutoffs, actor=actor())
            while True:
                started = time.monotonic()
                if (step := next(steps, None)) is None:
                    break
                removed = step
                done(removed.attempt + removed.message)
                if not no_pause:
                    time.sleep(retention.pause_after(time.monotonic() - started))
        with cli.session() as session:
            after = retention.database_size(session=session)
    dialect = cli.engine.dialect.name
    if as_json:
        render.print_json(
            {
                "dry_run": dry_run,
                "rows": removed.rows,
                "mailings": removed.mailings,
                "size_before": _size_json(before),
                "size_after": _size_json(after),
            }
        )
        return
    verb = "would remove" if dry_run else "removed"
    render.table(
        f"Rows {verb} (mailings summarised: {len(removed.mailings)})",
        ["table", "rows"],
        [(name, n) for name, n in removed.rows.items()],
    )
    if before is not None and after is not None:
        render.info(f"database size: {_mb(before)} before, {_mb(after)} after")
    if dialect == "sqlite":
        render.info("a SQLite file shrinks only with VACUUM; freed pages are reused until then")
    elif dialect == "postgresql":
        render.info("PostgreSQL reuses the freed space after (auto)vacuum; VACUUM FULL shrinks it")


def _size_json(size) -> dict | None:
    return None if size is None else {"bytes": size.bytes, "free_bytes": size.free_bytes}


def _mb(size) -> str:
    text = f"{size.bytes / 1e6:,.1f} MB"
    return text if size.free_bytes is None else f"{text} ({size.free_bytes / 1e6:,.1f} MB free)"
