"""Is the daemon making progress? Stamps from its loops, a heartbeat file, ``--check``.

Each loop stamps the moment it last did its work (a claim that answered, outcomes
recorded or none waiting, a deliberate wait for the circuit breaker). The oldest stamp is
the daemon's progress: a loop that died, hangs or keeps failing holds it back. The worker
writes it to a heartbeat file every second; ``notifyctl daemon --check`` (the liveness
probe) fails when it is older than ``NOTIFY_STALL_SECONDS`` while messages are due.
"""

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

HEARTBEAT_INTERVAL = 1.0  # seconds between writes of the heartbeat file


class Progress:
    """The last moment each named loop did its work."""

    def __init__(
        self,
        loops: tuple[str, ...],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._monotonic, self._wall = monotonic, wall
        now = (monotonic(), wall())
        self._stamps = dict.fromkeys(loops, now)

    def beat(self, loop: str) -> None:
        self._stamps[loop] = (self._monotonic(), self._wall())

    def oldest(self) -> tuple[str, float]:
        """The loop furthest behind and how many seconds ago it last did its work."""
        loop, (stamp, _) = min(self._stamps.items(), key=lambda item: item[1][0])
        return loop, self._monotonic() - stamp

    def at(self) -> float:
        """Unix time of the daemon's progress (its oldest stamp)."""
        return min(wall for _, wall in self._stamps.values())


def write_heartbeat(path: Path, progress: Progress) -> None:
    """Replace the heartbeat file atomically (a reader never sees half of it)."""
    loop, _ = progress.oldest()
    data = {
        "pid": os.getpid(),
        "written_at": time.time(),
        "progress_at": progress.at(),
        "slowest_loop": loop,
    }
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_text(json.dumps(data))
    scratch.replace(path)


def heartbeat_files(path: Path) -> list[Path]:
    """The file and those of the sender processes of ``--workers N`` (``NAME.1`` ...)."""
    if not path.parent.is_dir():
        return []
    return sorted(
        p
        for p in path.parent.iterdir()
        if p.name == path.name or p.name.startswith(f"{path.name}.")
    )


def stalled(path: Path, *, stall_seconds: float, now: float | None = None) -> list[str]:
    """What is wrong with the daemons writing to ``path``: one line each; [] when fine.

    A daemon is stalled when its progress, or the heartbeat itself (a frozen loop), is
    older than ``stall_seconds``. No file at all is not an error here: the daemon may not
    have started yet, and the database check covers the rest.
    """
    now = time.time() if now is None else now
    problems = []
    for file in heartbeat_files(path):
        try:
            data = json.loads(file.read_text())
            progress_at = min(float(data["progress_at"]), float(data["written_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            problems.append(f"{file}: unreadable heartbeat")
            continue
        if not _alive(data.get("pid")):
            # Left by a daemon that was killed (or by another --workers count): not ours.
            file.unlink(missing_ok=True)
            continue
        behind = now - progress_at
        if behind > stall_seconds:
            problems.append(
                f"daemon pid {data.get('pid')} made no progress for {behind:.0f}s "
                f"(its {data.get('slowest_loop', '?')} loop; limit NOTIFY_STALL_SECONDS="
                f"{stall_seconds:g})"
            )
    return problems


def _alive(pid) -> bool:
    """Is there a process ``pid`` (on this host, in this PID namespace)?"""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
