"""The per-message log lines (``NOTIFY_LOG_MESSAGES``), formatted here, written in batches.

A daemon sending thousands of messages a second writes two lines for each. Through
loguru one by one, a line costs about 18 µs of CPU (a record, a look at the caller's
frame, the patcher, a lock, a write and a flush per line): a tenth of a message's whole
budget. Here a line is formatted directly, only in the formats some sink writes (text on
stderr, JSON on stderr or in ``NOTIFY_LOG_FILE``), and the lines gathered since the last
flush go to loguru as one record that the sinks of ``notifyctl.logs`` write as they are.

The lines are the ones loguru would have written: the same time stamp (local, to the
millisecond), level, ids, sentence and JSON fields, masked and escaped alike
(``redact``, ``printable``). Other lines are written at once, so a per-message line may
follow a line logged up to one flush interval (``RECORD_INTERVAL``) after it.
"""

import json
import time
from datetime import datetime

from loguru import logger

from notifyctl import logs
from notifyctl.config import Settings
from notifyctl.logs import BLOCK_JSON, BLOCK_TEXT, block_formats, printable, redact

FLUSH_LINES = 2_000  # lines kept at most before they are written, whatever the interval
LEVEL = "INFO"
#: the text line's level column, as loguru's ``{level: <7}`` writes it (bold when coloured)
_LEVEL_TEXT = f"{LEVEL: <7}"
_GREEN, _BOLD, _CYAN, _RESET = "\x1b[32m", "\x1b[1m", "\x1b[36m", "\x1b[0m"


class MessageLog:
    """Lines of one daemon's messages, in the formats its sinks write.

    ``bound`` holds the fields every line carries (the daemon's name); ``source`` is the
    JSON ``source`` of the lines.
    """

    def __init__(
        self,
        *,
        text: bool,
        json_lines: bool,
        colors: bool = False,
        bound: dict[str, object] | None = None,
        source: str = "daemon.dispatcher:trace",
    ) -> None:
        self.text, self.json_lines, self.colors = text, json_lines, colors
        self.bound = dict(bound or {})
        self.source = source
        self._text: list[str] = []
        self._json: list[str] = []
        self._second = -1  # the second the cached parts of the time stamp are of
        self._text_second = self._json_second = self._offset = ""

    @classmethod
    def for_settings(cls, settings: Settings, **kwargs) -> "MessageLog | None":
        """The message log the configured sinks want, or None when no sink takes the lines."""
        text, json_lines = block_formats(settings)
        if not settings.log_messages or not (text or json_lines):
            return None
        return cls(text=text, json_lines=json_lines, colors=text and logs.stderr_colors(), **kwargs)

    def __len__(self) -> int:
        return max(len(self._text), len(self._json))

    def add(self, ids: dict[str, int], message: str, fields: dict[str, object]) -> None:
        """One line: ``message`` (the sentence) with ``ids`` and the value ``fields``.

        ``ids`` are shown in a text line (``mailing_id=… message_id=… client_id=…``) and
        are fields of a JSON line, as are ``fields``.
        """
        text_time, json_time = self._times()
        message = printable(redact(message))
        if self.text:
            stamp = text_time
            shown = " ".join(f"{key}={value}" for key, value in ids.items())
            if self.colors:
                self._text.append(
                    f"{_GREEN}{stamp}{_RESET} {_BOLD}{_LEVEL_TEXT}{_RESET} "
                    f"{_CYAN}{shown}{_RESET} {message}\n"
                )
            else:
                self._text.append(f"{stamp} {_LEVEL_TEXT} {shown} {message}\n")
        if self.json_lines:
            line: dict[str, object] = {
                "time": json_time,
                "level": LEVEL,
                "message": message,
                "source": self.source,
            }
            for key, value in (*self.bound.items(), *ids.items(), *fields.items()):
                if key not in line:  # (a field never replaces one of the four above)
                    line[key] = (
                        value
                        if value is None or isinstance(value, int | float | bool)
                        else printable(redact(str(value)))
                    )
            self._json.append(json.dumps(line, ensure_ascii=False) + "\n")
        if len(self) >= FLUSH_LINES:
            self.flush()

    def _times(self) -> tuple[str, str]:
        """Now, local, to the millisecond: as a text line and as a JSON line show it.

        The date, the time to the second and the UTC offset are worked out once a second.
        """
        now = time.time()
        second = int(now)
        if second != self._second:
            moment = datetime.fromtimestamp(second).astimezone()
            self._second = second
            self._text_second = f"{moment:%Y-%m-%d %H:%M:%S}"
            self._json_second = moment.isoformat()[:19]
            self._offset = moment.isoformat()[19:]
        milliseconds = int((now - second) * 1000)
        return (
            f"{self._text_second}.{milliseconds:03d}",
            f"{self._json_second}.{milliseconds:03d}{self._offset}",
        )

    def flush(self) -> None:
        """Write the lines gathered so far: one loguru record, each sink its own block."""
        count = len(self)
        if not count:
            return
        blocks = {}
        if self.text:
            blocks[BLOCK_TEXT] = "".join(self._text)
        if self.json_lines:
            blocks[BLOCK_JSON] = "".join(self._json)
        self._text, self._json = [], []
        logger.bind(**blocks).log(LEVEL, "{lines} per-message lines", lines=count)
