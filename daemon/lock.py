"""On SQLite only one daemon may send: a second one is refused with a clear message.

The lock is an ``flock`` on a file next to the database, so the kernel frees it when the
holder dies, even by SIGKILL.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import Engine

from notifyctl.errors import Conflict


@contextmanager
def single_sender(engine: Engine) -> Iterator[None]:
    """Hold the SQLite database's sender lock for the block; PostgreSQL needs none."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    path = Path(database).expanduser().resolve()
    lock_path = path.with_name(path.name + ".daemon.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise Conflict(
                f"another daemon (pid {holder}) is already sending from {path}; SQLite allows "
                "one. Stop it first, or use PostgreSQL to run several."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
