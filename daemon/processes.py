"""Several sender processes under one daemon: one event loop per core.

A daemon's sending is CPU-bound in Python; with a core to spare, a second process sends
as much again. The parent holds SQLite's single-sender lock, hands orphaned leases back
once, then runs the children and forwards SIGTERM/SIGINT to them (once: each then drains).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def run_children(count: int, args: list[str], env: dict[str, str]) -> int:
    """Run ``count`` copies of ``python -m notifyctl ARGS``; return the worst exit code.

    Each child serves its metrics on its own port (NOTIFY_METRICS_PORT + its index) and
    writes its own heartbeat file (NOTIFY_HEARTBEAT_FILE.index), all read by ``--check``.
    """
    metrics_port = int(env.get("NOTIFY_METRICS_PORT") or 0)
    heartbeat = env["NOTIFY_HEARTBEAT_FILE"]
    children = [
        # Own sessions: a Ctrl-C at the terminal reaches the parent only, which forwards it.
        subprocess.Popen(
            [sys.executable, "-m", "notifyctl", *args],
            env=env
            | {
                "NOTIFY_METRICS_PORT": str(metrics_port + index if metrics_port else 0),
                "NOTIFY_HEARTBEAT_FILE": f"{heartbeat}.{index}",
            },
            start_new_session=True,
        )
        for index in range(count)
    ]
    forwarded = False
    asked: set[int] = set()  # the children sent our SIGTERM

    def forward(_signum, _frame) -> None:
        nonlocal forwarded
        if forwarded:  # a second signal: stop at once
            for child in children:
                if child.poll() is None:
                    child.kill()
            return
        forwarded = True
        for child in children:
            if child.poll() is None:
                asked.add(child.pid)
                child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while any(child.poll() is None for child in children):
            if not forwarded and any(child.poll() not in (None, 0) for child in children):
                forward(signal.SIGTERM, None)  # one died: stop the rest, report the failure
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # A child our SIGTERM reached while it was still starting (before its handler was up,
    # so before any claim) stopped as asked, holding nothing: not a failure.
    return max(
        0 if child.pid in asked and child.returncode == -signal.SIGTERM else abs(child.returncode)
        for child in children
    )


def child_environment(database_url: str, metrics_port: int, heartbeat: Path) -> dict[str, str]:
    # The URL goes by environment, not argv: a password would show in `ps`.
    return dict(os.environ) | {
        "NOTIFY_DATABASE_URL": database_url,
        "NOTIFY_METRICS_PORT": str(metrics_port),
        "NOTIFY_HEARTBEAT_FILE": str(heartbeat),
    }
