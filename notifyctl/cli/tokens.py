"""``notifyctl token``: API tokens for scripts."""

import typer

from notifyctl.cli.command import NotifyTyper
from notifyctl.cli.context import state

app = NotifyTyper(help="Create, list and revoke API tokens.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="A name to tell it by."),
) -> None:
    """Create a token and print it, alone, on stdout. It is shown only this once.

    Example: TOKEN=$(notifyctl token create deploy-script)
    """
    from notifyctl.render import info
    from notifyctl.services.tokens import create_token

    with state(ctx).session() as session:
        _, plain = create_token(session=session, name=name)
    print(plain)
    info(f"token {name!r} created; store it now, it cannot be shown again")


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List tokens (names and dates; never the tokens themselves).

    Example: notifyctl token list
    """
    from notifyctl import render
    from notifyctl.models import ApiTokenPublic
    from notifyctl.services.tokens import list_tokens

    cli = state(ctx)
    with cli.session() as session:
        tokens = list_tokens(session=session)
    if as_json:
        render.print_json(
            [
                ApiTokenPublic.model_validate(t, from_attributes=True).model_dump(mode="json")
                for t in tokens
            ]
        )
        return
    tz = cli.settings.default_timezone
    render.table(
        "API tokens",
        ["name", "created", "last used", "revoked"],
        [
            (
                t.name,
                render.when(t.created_at, tz),
                render.when(t.last_used_at, tz),
                render.when(t.revoked_at, tz),
            )
            for t in tokens
        ],
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context, name: str = typer.Argument(..., metavar="NAME", help="The token's name.")
) -> None:
    """Revoke a token: it stops working at once.

    Example: notifyctl token revoke deploy-script
    """
    from notifyctl.services.tokens import revoke_token

    with state(ctx).session() as session:
        revoke_token(session=session, name=name)
