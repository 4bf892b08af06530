"""SIGTERM and SIGINT ask the daemon to drain; a second signal stops it at once."""

import asyncio
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Within the running loop: the first signal calls ``stop``, the second raises SystemExit."""
    loop = asyncio.get_running_loop()
    received = 0

    def handler() -> None:
        nonlocal received
        received += 1
        if received == 1:
            stop()
        else:
            raise SystemExit(130)

    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, handler)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
