"""`notifyctl` run as a user runs it: a process of its own, output captured."""

import os
import subprocess
import sys


def notifyctl(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """``notifyctl ARGS`` in a child process (stdin closed, 60 s at most unless told)."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("timeout", 60)
    return subprocess.run(
        [sys.executable, "-m", "notifyctl", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else dict(os.environ),
        check=False,
        **kwargs,
    )
