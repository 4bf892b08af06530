"""The classes every ``notifyctl`` command is built from: readable help, one error path.

Typer builds each command from a function; these classes change what it builds in
three ways:

- Help names a value by what it is (``--tz ZONE``, ``ID``, ``[ID]``), never by its Python
  type (``<str>``, ``<list[str]>``, ``{ID}``); a flag takes no value and shows none.
- Every error is one line on stderr, ``error: --tz: 'Mars/Base' is not an IANA timezone
  …``, with the exit code of the README's table: the domain errors of the services,
  Typer's own usage errors (no boxed panels), a refused setting, anything unexpected (the
  traceback only with ``-v``). A field a service names (``timezone``, ``end_at``) is
  reported as the option or argument of the command that was typed (``--tz``, ``--end``).
- A closed stdout (``notifyctl logs | head``) ends the command quietly, with exit code
  141 as a command killed by SIGPIPE has, not a traceback.
"""

import contextlib
import os
import re
import sys
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from notifyctl.cli.context import CliState, error

#: Exit code when stdout's reader went away: what a shell reports for a command that
#: SIGPIPE ended (128 + 13), so `set -o pipefail` scripts see what they see for `cat`.
STDOUT_CLOSED = 141
#: Exit code of a prompt answered no (or Ctrl-C at a prompt): nothing was done.
ABORTED = 1

#: Fields the services name (shared with the REST API) that the command line spells
#: differently. A field not here is looked up as ``--field`` or as an argument's name.
OPTION_OF_FIELD = {
    "timezone": "--tz",
    "operator_code": "--operator",
    "filter.operator_codes": "--operator",
    "filter.tags": "--tag",
    "start_at": "--start",
    "end_at": "--end",
    "send_window": "--window",
    "send_window.start": "--window",
    "send_window.end": "--window",
    "mailing_id": "--mailing",
    "client_id": "--client",
}


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
    """A command with readable help whose errors name the options as typed."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _readable(super().get_params(ctx))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise stdout_closed() from None
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise  # exits, and Typer's usage errors: NotifyGroup.main reports those
        except Exception as exc:
            code = explain(exc, params=self.params, verbose=_verbose(ctx))
            raise typer.Exit(code) from exc


class NotifyGroup(TyperGroup):
    """A command group with readable help; as the root, the one place errors end up.

    The root's ``main`` runs Typer in non-standalone mode and reports what comes out of
    it (usage errors, an aborted prompt) in the same one-line style as the commands'
    errors, then flushes stdout so that a reader gone away is noticed here, not as a
    traceback at interpreter exit.
    """

    def get_params(self, ctx: Any) -> list[Any]:
        return _readable(super().get_params(ctx))

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:  # (--help, --version and --show-completion print while the context is made)
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:
            raise stdout_closed() from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # a sub-command's --help into `| head`
            raise stdout_closed() from None
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise
        except Exception as exc:  # (the root's own callback; commands report their own)
            raise typer.Exit(explain(exc, verbose=_verbose(ctx))) from exc

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            try:
                result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
                # Non-standalone Typer returns the code of a typer.Exit; our commands
                # return nothing.
                code = result if isinstance(result, int) else 0
            except (typer.TyperException, typer.Abort) as exc:
                code = explain(exc)
            sys.stdout.flush()
        except BrokenPipeError:
            code = stdout_closed().exit_code
        if not standalone_mode:
            return code
        sys.exit(code)


class NotifyTyper(typer.Typer):
    """A Typer whose groups and commands are the classes above."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", NotifyGroup)
        kwargs.setdefault("rich_markup_mode", None)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", NotifyCommand)
        return super().command(*args, **kwargs)


def stdout_closed() -> typer.Exit:
    """Stop writing to a stdout nobody reads: point it at /dev/null (as the Python docs
    advise, so the final flush cannot fail again) and exit quietly."""
    with contextlib.suppress(OSError, ValueError):  # (no file descriptor under CliRunner)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return typer.Exit(STDOUT_CLOSED)


def explain(exc: BaseException, *, params: list[Any] | None = None, verbose: bool = False) -> int:
    """Say what went wrong in one line on stderr; return the exit code.

    ``params`` are the parameters of the command that ran, to name the option a
    service's field came from. Anything unexpected is re-raised under ``-v``.
    """
    from notifyctl.errors import InvalidInput, NotifyError

    if isinstance(exc, NotifyError):
        where = typed_name(exc.field, params or []) if exc.field else None
        if where is None and isinstance(exc, InvalidInput):
            where = exc.field  # a field no option names: still say which
        error(f"{where}: {exc.message}" if where else exc.message)
        return exc.exit_code
    if isinstance(exc, typer.Abort):
        error("aborted; nothing was changed")
        return ABORTED
    if isinstance(exc, typer.TyperException):
        return _usage_error(exc)
    if _is_validation_error(exc):
        error(f"invalid setting: {_first_validation_problem(exc)}")
        return 2
    if type(exc).__name__ == "SettingsError":  # pydantic-settings could not read a value
        named = re.search(r'field "(\w+)"', str(exc))
        variable = f"NOTIFY_{named.group(1).upper()}" if named else "a setting"
        error(
            f"invalid setting: {variable}: is not valid JSON "
            '(a list is written ["ops@example.com"], with the quotes)'
        )
        return 2
    if isinstance(
        exc, IsADirectoryError | NotADirectoryError | FileNotFoundError | PermissionError
    ):
        error(f"{exc.filename}: {_clause(exc.strerror or str(exc))}")
        return 2
    if verbose:
        raise exc
    error(f"unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)")
    return 1


def typed_name(field: str, params: list[Any]) -> str | None:
    """The option (``--tz``) or argument (``ID``) of a command that a service's field
    (``timezone``, ``id``) came from; None when the command has no such parameter."""
    options = {opt for param in params if isinstance(param, TyperOption) for opt in param.opts}
    dashed = "--" + field.replace("_", "-")
    for candidate in (field, OPTION_OF_FIELD.get(field), dashed):
        if candidate in options:
            return candidate
    for param in params:
        name = param.name or ""
        if isinstance(param, TyperArgument) and (name == field or name.endswith(f"_{field}")):
            return _argument_name(param)
    return None


def _usage_error(exc: Any) -> int:
    """Typer's (Click's) usage errors, in our style: ``error: --limit: 'x' is not …``."""
    kind = type(exc).__name__
    ctx = getattr(exc, "ctx", None)
    if kind == "NoArgsIsHelpError":  # a group run without a command: its help is the answer
        print(exc.format_message(), file=sys.stderr)
        return exc.exit_code
    param = getattr(exc, "param", None)
    if param is not None:
        where = (
            next((o for o in param.opts if o.startswith("--")), param.opts[0])
            if isinstance(param, TyperOption)
            else _argument_name(param)
        )
        message = "is required" if kind == "MissingParameter" else exc.message
        error(f"{where}: {_clause(message)}")
        return exc.exit_code
    message = _clause(exc.format_message())
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    error(message)
    return exc.exit_code


def _clause(message: str) -> str:
    """A sentence of Click's or pydantic's ("Input should be …. ") as our messages read:
    lower case first (unless a name starts it), no full stop."""
    message = message.strip().rstrip(".")
    if message[1:2].islower():
        message = message[:1].lower() + message[1:]
    return message


def _verbose(ctx: Any) -> bool:
    root = ctx.find_root()
    return isinstance(root.obj, CliState) and root.obj.verbose


def _is_validation_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "ValidationError" and hasattr(exc, "errors")


def _first_validation_problem(exc: Any) -> str:
    problem = exc.errors()[0]
    message = str(problem.get("msg")).removeprefix("Value error, ")
    where = ".".join(str(part) for part in problem.get("loc", ()))
    # A rule across several settings has no one place; its message names the variables.
    return f"NOTIFY_{where.upper()}: {message}" if where else message
