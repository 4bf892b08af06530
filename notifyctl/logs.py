"""Logging set-up for entry points (libraries never add sinks): text or JSON lines on stderr."""

import sys

from loguru import logger

from notifyctl.config import LogFormat, Settings

TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra}</cyan> {message}"
)


def configure_logging(settings: Settings) -> None:
    """Send loguru's lines to stderr in the configured format and level."""
    logger.remove()
    if settings.log_format is LogFormat.json:
        logger.add(sys.stderr, level=settings.log_level, serialize=True, backtrace=False)
    else:
        logger.add(sys.stderr, level=settings.log_level, format=TEXT_FORMAT, backtrace=False)
