"""Logging set-up for entry points (libraries never add sinks).

Lines go to stderr (text or JSON, ``NOTIFY_LOG_FORMAT``) and, with ``NOTIFY_LOG_FILE``,
to a file of JSON lines that rotates and expires (``NOTIFY_LOG_ROTATION``,
``NOTIFY_LOG_RETENTION``) and that ``notifyctl logs`` reads. A JSON line is one flat
object: ``time``, ``level``, ``message``, ``source`` and every id bound to the line
(``mailing_id``, ``message_id``, ``client_id``, ``request_id``, ``daemon``…), so one
filter pulls out all lines of one mailing, message or client. Anything that looks like
a token is masked before a line is written, whatever the sink.

The rule for every log call: the message is a string literal, and every value (above
all one a caller sent) goes in as a keyword argument: ``logger.info("created {phone}",
phone=phone)``. Caller text inside the template would be formatted (``{0.__class__}``
walks to ``os.environ``) or read as a colour tag. ``tests/test_log_calls.py`` checks the
rule over the source; the text format's template holds no value of the record either.

Every keyword argument becomes a JSON field, so it carries a value (``error="HTTP 503"``),
never a piece of the sentence (``", error: HTTP 503"``). A sentence with optional parts
binds its values (``log.bind(error=error)``) and formats the parts with
``.opt(capture=False)``, which keeps them out of the fields (``daemon/dispatcher.py``).
"""

import json
import os
import re
import sys
from traceback import format_exception

from loguru import logger

from notifyctl.config import LogFormat, Settings

#: The ids a text line shows, in this order, when the line is bound to them.
ID_KEYS = ("request_id", "mailing_id", "message_id", "client_id")
#: Bearer tokens, JWTs, our own tokens (login link, API tokens), token= in URLs, passwords.
#: Also the password of a URL's user-info (``//user:password@host``).
SECRET = re.compile(
    r"(?i:bearer)\s+[\w.~+/=-]+"
    r"|eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"
    r"|nfy_[\w-]{8,}"
)
#: A URL's whole user-info (user:password, :password, a bare token), up to its last @.
USER_INFO = re.compile(r"//[^/\s]+@")
#: Basic credentials: base64 with a capital or digit after a small letter (not a word).
BASIC = re.compile(
    r"(?i:\bbasic)\s+(?=[A-Za-z0-9+/]*?[a-z0-9+/][A-Za-z0-9+/]*[A-Z0-9+/=])[A-Za-z0-9+/]{8,}={0,2}"
)
#: The value of a query or form parameter named like a secret: ``token=``,
#: ``access_token=``, ``password=``, ``client_secret=``, ``api_key=``, ``apikey=`` ...
SECRET_PARAMETER = re.compile(
    r"(?i)\b([\w-]*(?:token|secret|password|passwd|api[_-]?key))=[^&\s\"']+"
)
#: The same names as JSON fields (``"password": "x"``), and ``password: x``.
SECRET_FIELD = re.compile(
    r'(?i)("[\w-]*(?:token|secret|password|passwd|api[_-]?key)"\s*:\s*)"(?:[^"\\]|\\.)*"'
    r"|\b([\w-]*(?:password|passwd)\s*:\s*)[^\s\"',;}]+"
)
MASK = "[secret]"
#: Control characters (ESC, NUL, CR, LF …): shown as escapes, so that a value cannot
#: colour a terminal, hide text or start a forged line.
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def redact(text: str) -> str:
    """``text`` with anything that looks like a token or password replaced by [secret].

    Runs on every line: the rarer patterns only run when a cheap test says they may match.
    """
    text = SECRET.sub(MASK, text)
    if "@" in text and "//" in text:
        text = USER_INFO.sub(f"//{MASK}@", text)
    lower = text.lower()
    if "basic" in lower:
        text = BASIC.sub(MASK, text)
    if "token" in lower or "secret" in lower or "passw" in lower or "api" in lower:
        text = SECRET_PARAMETER.sub(rf"\1={MASK}", text)
        text = SECRET_FIELD.sub(_mask_field, text)
    return text


def _mask_field(match: re.Match) -> str:
    if match.group(1) is not None:
        return f'{match.group(1)}"{MASK}"'
    return f"{match.group(2)}{MASK}"


def printable(text: str) -> str:
    """``text`` with control characters written as escapes (``\\x1b``, ``\\n``)."""
    if not CONTROL.search(text):
        return text
    return CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


def _patch(record) -> None:
    """Mask secrets in every line, whatever the sink; gather the ids a text line shows.

    The ids go into ``extra["ids"]`` so that the text format refers to them as a field:
    caller-controlled text (a request id, say) is data, never part of a format template.
    """
    record["message"] = printable(redact(record["message"]))
    extra = record["extra"]
    extra["ids"] = " ".join(f"{key}={extra[key]}" for key in ID_KEYS if key in extra)


#: Extras of a record that carries lines formatted already (``daemon.tracelog``, the
#: per-message lines): a sink writes the block of its own format as it is, or nothing.
BLOCK_TEXT, BLOCK_JSON = "block_text", "block_json"


def _block(record, key: str) -> str | None:
    """The template that writes a block record's ``key`` block; None for other records."""
    extra = record["extra"]
    if BLOCK_TEXT not in extra and BLOCK_JSON not in extra:
        return None
    return f"{{extra[{key}]}}" if key in extra else ""


def _json_format(record) -> str:
    """One flat JSON object; built only for a JSON sink, once per line."""
    if (block := _block(record, BLOCK_JSON)) is not None:
        return block
    if "json" not in record["extra"]:
        record["extra"]["json"] = _as_json(record)
    return "{extra[json]}\n"


def _as_json(record) -> str:
    fields = {
        "time": record["time"].isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "message": record["message"],
        "source": f"{record['name']}:{record['function']}:{record['line']}",
    }
    for key, value in record["extra"].items():
        # (a field named like one of ours never replaces it: the message stays the sentence)
        if key not in ("json", "ids", "traceback") and key not in fields:
            fields[key] = (
                value
                if isinstance(value, int | float | bool | None)
                else printable(redact(str(value)))
            )
    if record["exception"] is not None:
        exc_type, exc, _ = record["exception"]
        fields["exception"] = redact(f"{exc_type.__name__ if exc_type else ''}: {exc}")
    return json.dumps(fields, ensure_ascii=False)


def _text_format(record) -> str:
    """The template of a text line. It holds no value of the record: loguru fills in
    ``{extra[ids]}`` and ``{message}`` as data, so braces or colour tags in them are text."""
    if (block := _block(record, BLOCK_TEXT)) is not None:
        return block
    if record["exception"] is not None and "traceback" not in record["extra"]:
        # Formatted here, masked, and shown as a field: loguru's own {exception} would
        # print a token or password in the exception's text as it is.
        kind, value, trace = record["exception"]
        record["extra"]["traceback"] = redact("".join(format_exception(kind, value, trace)))
    return (
        "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
        + ("<cyan>{extra[ids]}</cyan> " if record["extra"].get("ids") else "")
        + "{message}\n"
        + ("{extra[traceback]}" if record["exception"] is not None else "")
    )


def configure_logging(settings: Settings, *, console_level: str | None = None) -> None:
    """Send loguru's lines to stderr (at ``console_level``, default the setting) and the file.

    CLI commands pass ``console_level="WARNING"``: their output is their result, while
    the file (when set) still gets every line at ``NOTIFY_LOG_LEVEL``.
    """
    logger.remove()
    logger.configure(patcher=_patch)
    level = console_level or settings.log_console_level or settings.log_level
    # diagnose=False: a traceback shows no variable's value (a token, a password).
    if settings.log_format is LogFormat.json:
        logger.add(sys.stderr, level=level, format=_json_format, backtrace=False, diagnose=False)
    else:
        logger.add(
            sys.stderr,
            level=level,
            format=_text_format,
            colorize=stderr_colors(),
            backtrace=False,
            diagnose=False,
        )
    if settings.log_file:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        logger.add(
            settings.log_file,
            level=settings.log_level,
            format=_json_format,
            rotation=settings.log_rotation,
            retention=(
                int(settings.log_retention)
                if settings.log_retention.isdigit()
                else settings.log_retention
            ),
            backtrace=False,
            diagnose=False,
            encoding="utf-8",
        )


def stderr_colors() -> bool:
    """Whether text lines on stderr are coloured: on a terminal, unless NO_COLOR is set."""
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR")


def block_formats(settings: Settings) -> tuple[bool, bool]:
    """Which formats of INFO lines the sinks of ``configure_logging`` write: (text, JSON).

    ``daemon.tracelog`` formats its lines in these only.
    """
    console = settings.log_console_level or settings.log_level
    on_console = writes_level(console, "INFO")
    in_file = bool(settings.log_file) and writes_level(settings.log_level, "INFO")
    text = on_console and settings.log_format is not LogFormat.json
    return text, in_file or (on_console and settings.log_format is LogFormat.json)


def writes_level(threshold: str, level: str) -> bool:
    """Whether a sink at ``threshold`` takes a line at ``level``."""
    return logger.level(level).no >= logger.level(threshold.upper()).no


def writes(settings: Settings, level: str) -> bool:
    """Whether a line at ``level`` reaches a sink that ``configure_logging`` sets up.

    Lets a hot path skip building lines nobody will read (the daemon's per-message trace).
    """
    levels = [settings.log_console_level or settings.log_level]
    if settings.log_file:
        levels.append(settings.log_level)
    return logger.level(level).no >= min(logger.level(name.upper()).no for name in levels)
