"""Logging set-up for entry points (libraries never add sinks): text or JSON lines on stderr."""

import sys

from loguru import logger

from notifyctl.config import LogFormat, Settings

#: The ids a text line shows, in this order, when the line is bound to them.
ID_KEYS = ("request_id", "mailing_id", "message_id", "client_id")


def _text_format(record) -> str:
    ids = " ".join(f"{key}={record['extra'][key]}" for key in ID_KEYS if key in record["extra"])
    return (
        "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
        + (f"<cyan>{ids}</cyan> " if ids else "")
        + "{message}\n{exception}"
    )


def configure_logging(settings: Settings) -> None:
    """Send loguru's lines to stderr in the configured format and level."""
    logger.remove()
    if settings.log_format is LogFormat.json:
        logger.add(sys.stderr, level=settings.log_level, serialize=True, backtrace=False)
    else:
        logger.add(sys.stderr, level=settings.log_level, format=_text_format, backtrace=False)
