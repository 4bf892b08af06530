"""Reading the JSON log file back: every line of one mailing, message or client.

The file is the one ``NOTIFY_LOG_FILE`` names; loguru renames it on rotation to
``STEM.<timestamp>SUFFIX`` beside it, so older lines are read from those first.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path

from notifyctl.logs import ID_KEYS

FOLLOW_POLL = 0.25  # seconds between looks at a followed file


def log_files(path: Path) -> list[Path]:
    """The rotated files (oldest first), then the current one."""
    rotated = sorted(path.parent.glob(f"{path.stem}.*{path.suffix}"))
    return [p for p in rotated if p != path] + ([path] if path.exists() else [])


def read_lines(path: Path) -> Iterator[dict]:
    """Every JSON line of the log (rotated files included); other lines are skipped."""
    for file in log_files(path):
        with file.open(encoding="utf-8", errors="replace") as stream:
            yield from _parsed(stream)


def follow_lines(path: Path, *, stop=lambda: False) -> Iterator[dict]:
    """Lines appended to ``path`` from now on, across rotations, until ``stop()``."""
    stream = path.open(encoding="utf-8", errors="replace") if path.exists() else None
    if stream is not None:
        stream.seek(0, 2)
    inode = path.stat().st_ino if stream is not None else None
    pending = ""
    while not stop():
        if stream is not None:
            chunk = stream.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split("\n")
                yield from _parsed(complete)
                continue
        time.sleep(FOLLOW_POLL)
        if path.exists() and path.stat().st_ino != inode:  # rotated: the new file
            if stream is not None:
                stream.close()
            stream, pending = path.open(encoding="utf-8", errors="replace"), ""
            inode = path.stat().st_ino
    if stream is not None:
        stream.close()


def _parsed(lines) -> Iterator[dict]:
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def matches(record: dict, wanted: dict[str, int]) -> bool:
    """Whether the line carries every id asked for."""
    return all(record.get(key) == value for key, value in wanted.items())


def readable(record: dict) -> str:
    """One line for a terminal: time, level, the ids it carries, the message."""
    ids = " ".join(f"{key}={record[key]}" for key in ID_KEYS if key in record)
    when = str(record.get("time", ""))[:23].replace("T", " ")
    parts = [when, f"{record.get('level', ''):<7}", ids, str(record.get("message", ""))]
    text = " ".join(part for part in parts if part)
    if record.get("exception"):
        text += f"\n    {record['exception']}"
    return text
