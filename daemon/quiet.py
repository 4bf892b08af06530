"""Errors that repeat (a database that is down, a batch that keeps failing) are logged once
per interval with how often they came, not once per try: a long outage stays readable and
cannot fill a disk."""

import time
from collections.abc import Callable

REPEAT_INTERVAL = 30.0  # seconds between two lines about the same trouble


class QuietErrors:
    """Rate-limited error lines, one stream per ``key``."""

    def __init__(
        self,
        log,
        *,
        interval: float = REPEAT_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._monotonic = monotonic
        self._last: dict[str, float] = {}
        self._repeats: dict[str, int] = {}

    def error(self, key: str, message: str, exc: BaseException | None = None, **fields) -> bool:
        """Log ``message`` unless the same ``key`` was logged within the interval."""
        now = self._monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._repeats[key] = self._repeats.get(key, 0) + 1
            return False
        repeats = self._repeats.pop(key, 0)
        self._last[key] = now
        # Values are fields (``error``, ``repeats``); the sentence's optional parts are
        # formatted into the message only (capture=False), never into a field.
        if exc is not None:
            fields["error"] = str(exc)
        if repeats:
            fields["repeats"] = repeats
        self._log.bind(**fields).opt(capture=False).error(
            "{what}{detail}{suffix}",
            what=message,
            detail=f": {exc}" if exc is not None else "",
            suffix=f" (and {repeats} times more in the last {self._interval:.0f}s)"
            if repeats
            else "",
        )
        return True

    def recovered(self, key: str, message: str) -> None:
        """Say once that the trouble under ``key`` is over."""
        if self._last.pop(key, None) is not None:
            repeats = self._repeats.pop(key, 0)
            self._log.bind(repeats=repeats).opt(capture=False).info(
                "{what} (after {failures} more failures)", what=message, failures=repeats
            )
