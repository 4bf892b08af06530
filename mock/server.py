"""Serving the mock with uvicorn (httptools and uvloop when installed: the fastest pair)."""

import uvicorn

from mock.app import create_app
from mock.auth import DEMO_SECRET
from mock.faults import Faults


def config(
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    secret: str = DEMO_SECRET,
    faults: Faults | None = None,
    seed: int | None = None,
    log_level: str = "warning",
) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(secret=secret, faults=faults, seed=seed),
        host=host,
        port=port,
        loop="auto",
        http="auto",
        access_log=False,
        log_level=log_level,
        # Keep idle keep-alive connections open as long as a sender may pause between bursts.
        timeout_keep_alive=30,
        backlog=4096,
    )


def serve(**options) -> None:
    """Run the mock until interrupted."""
    uvicorn.Server(config(**options)).run()
