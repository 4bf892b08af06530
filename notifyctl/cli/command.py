"""The classes every ``notifyctl`` command is built from: readable help, one error path.

Typer builds each command from a function. These classes change how it shows them:
help names a value by what it is (``--tz ZONE``, ``ID``, ``[ID]``), never by its Python
type (``<str>``, ``<list[str]>``, ``{ID}``), and a flag takes no value and shows none.
Help is Click's plain layout, whose paragraphs re-flow to the terminal.
"""

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from notifyctl.cli.context import CliState, error


class _Argument(TyperArgument):
    """An argument shown by its name alone: ``ID`` when required, ``[ID]`` when not."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # (its name says what it is; `<int>` adds nothing)

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = _argument_name(self) + ("..." if self.nargs != 1 else "")
        return [name if self.required else f"[{name}]"]


class _Option(TyperOption):
    """An option shown with the name of its value (``--tz ZONE``); a flag with none."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        return self.metavar or (self.name or "value").upper()


def _argument_name(param: Any) -> str:
    return param.metavar or (param.name or "value").upper()


def _readable(params: list[Any]) -> list[Any]:
    # Typer creates its own parameter classes with no way to choose others; these
    # subclasses only change how a parameter is shown, so the objects are re-classed.
    for param in params:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
        elif type(param) is TyperOption:
            param.__class__ = _Option
    return params


class NotifyCommand(TyperCommand):
    """A command with readable help."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _readable(super().get_params(ctx))


class NotifyGroup(TyperGroup):
    """A command group with readable help; as the root, it turns every error a user can
    cause into one line and an exit code.

    Domain errors map to the codes in ``notifyctl.errors``; settings that fail validation
    exit 2; anything unexpected is reported in one line (exit 1), with the traceback
    only under ``-v``.
    """

    def get_params(self, ctx: Any) -> list[Any]:
        return _readable(super().get_params(ctx))

    def invoke(self, ctx: Any) -> Any:
        from notifyctl.errors import NotifyError

        try:
            return super().invoke(ctx)
        except NotifyError as exc:
            error(str(exc))
            raise typer.Exit(exc.exit_code) from exc
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise  # usage errors and exits: typer prints and exits as usual
        except Exception as exc:
            if _is_validation_error(exc):
                error(f"invalid setting: {_first_validation_problem(exc)}")
                raise typer.Exit(2) from exc
            if isinstance(ctx.obj, CliState) and ctx.obj.verbose:
                raise
            error(f"unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)")
            raise typer.Exit(1) from exc


class NotifyTyper(typer.Typer):
    """A Typer whose groups and commands are the classes above."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", NotifyGroup)
        kwargs.setdefault("rich_markup_mode", None)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", NotifyCommand)
        return super().command(*args, **kwargs)


def _is_validation_error(exc: Exception) -> bool:
    return type(exc).__name__ == "ValidationError" and hasattr(exc, "errors")


def _first_validation_problem(exc: Any) -> str:
    problem = exc.errors()[0]
    message = str(problem.get("msg")).removeprefix("Value error, ")
    where = ".".join(str(part) for part in problem.get("loc", ()))
    # A rule across several settings has no one place; its message names the variables.
    return f"NOTIFY_{where.upper()}: {message}" if where else message
