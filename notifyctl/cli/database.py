"""``notifyctl db``: the schema."""

import typer

from notifyctl.cli.command import NotifyTyper
from notifyctl.cli.context import state
from notifyctl.render import info

app = NotifyTyper(help="Database schema: apply migrations.", no_args_is_help=True)


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
