"""The daemon's event loop: uvloop where it is installed, asyncio's own otherwise.

uvloop (it comes with ``uvicorn[standard]``) runs the loop, its timers and its sockets
in C: the daemon spends less CPU per message on the loop's bookkeeping (bench/RESULTS.md).
It has no Windows build; there, and wherever it is missing, asyncio's loop runs.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # pragma: no cover - Windows, or a trimmed install
    uvloop = None

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the fastest loop at hand."""
    if uvloop is not None:
        return uvloop.run(main)
    return asyncio.run(main)
