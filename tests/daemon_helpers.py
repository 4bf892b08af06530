"""Helpers for daemon tests: a live mock API, settings, a worker in-process, daemon processes."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime

import httpx
import sqlalchemy as sa
from sqlmodel import Session

from daemon.clock import SystemClock
from daemon.worker import Counters, Worker
from mock.auth import demo_token
from notifyctl.config import Settings
from notifyctl.db import make_engine
from notifyctl.models import Attempt, Message
from tests.factories import add_clients, add_mailing

AUTH = {"Authorization": f"Bearer {demo_token()}"}


class MockApi:
    """A running mock: its send URL, fault control and received log."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.send_url = f"{base_url}/v1/send"

    def faults(self, **changes) -> None:
        response = httpx.put(f"{self.base_url}/v1/_faults", json=changes, headers=AUTH)
        response.raise_for_status()

    def received(self) -> list[dict]:
        response = httpx.get(
            f"{self.base_url}/v1/_received", params={"limit": 100_000}, headers=AUTH
        )
        response.raise_for_status()
        return response.json()["items"]


def settings_for(db_url: str, mock: MockApi, **overrides) -> Settings:
    values = {
        "database_url": db_url,
        "sender_url": mock.send_url,
        "concurrency": 20,
        "request_timeout": 5.0,
        "lease_seconds": 10.0,
        "breaker_threshold": 10_000,
    } | overrides
    return Settings(**values)


def run_worker(
    settings: Settings,
    *,
    burst: bool = True,
    until: Callable[[], bool] | None = None,
    timeout: float = 30.0,
    clock=None,
    during: Callable[[Worker], None] | None = None,
) -> Counters:
    """Run a worker (burst, or until ``until()`` holds) and return its counters."""
    engine = make_engine(settings.database_url)
    clock = clock or SystemClock(wait_scale=0.0)  # retries without waiting
    worker = Worker(engine=engine, settings=settings, burst=burst, clock=clock)

    async def watch() -> None:
        while True:
            await asyncio.sleep(0.05)
            if during is not None:
                during(worker)
            if until is not None and await asyncio.to_thread(until):
                worker.stop()
                return

    async def main() -> Counters:
        watcher = asyncio.create_task(watch())
        try:
            async with asyncio.timeout(timeout):
                return await worker.run()
        finally:
            watcher.cancel()

    try:
        return asyncio.run(main())
    finally:
        engine.dispose()


def change(db_url: str, action, **kwargs) -> None:
    """Call the service function ``action`` in a session of its own, as another client would."""
    engine = make_engine(db_url)
    with Session(engine) as own:
        action(session=own, **kwargs)
        own.commit()
    engine.dispose()


def statuses(db_url: str, mailing_id: int) -> dict[str, int]:
    engine = make_engine(db_url)
    with Session(engine) as session:
        rows = session.execute(
            sa.select(Message.status, sa.func.count())
            .where(Message.mailing_id == mailing_id)
            .group_by(Message.status)
        )
        result = dict(rows.all())
    engine.dispose()
    return result


def message_statuses(db_url: str, mailing_id: int) -> dict[int, str]:
    """Each message id of the mailing with its status."""
    engine = make_engine(db_url)
    with Session(engine) as session:
        rows = session.execute(
            sa.select(Message.id, Message.status).where(Message.mailing_id == mailing_id)
        )
        result = {message_id: str(status) for message_id, status in rows}
    engine.dispose()
    return result


def attempts_of(db_url: str) -> list[Attempt]:
    engine = make_engine(db_url)
    with Session(engine) as session:
        rows = list(session.execute(sa.select(Attempt).order_by(Attempt.id)).scalars())
    engine.dispose()
    return rows


def arrivals(items: list[dict]) -> list[datetime]:
    return [datetime.fromisoformat(item["last_at"]) for item in items]


# --- daemons as processes ----------------------------------------------------------------

_started: list[subprocess.Popen] = []


def kill_started_daemons() -> None:
    """Kill every daemon process a test started and left running."""
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


def start_daemon(db_url: str, mock: MockApi, *extra: str, **env: str) -> subprocess.Popen:
    environment = (
        dict(os.environ)
        | {
            "NOTIFY_SENDER_URL": mock.send_url,
            "NOTIFY_CONCURRENCY": "40",
            "NOTIFY_REQUEST_TIMEOUT": "2",
            "NOTIFY_LEASE_SECONDS": "7",
            "NOTIFY_LOG_LEVEL": "WARNING",
        }
        | env
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "notifyctl", "--db", db_url, "daemon", *extra],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _started.append(process)
    return process


def fresh_postgres_mailing(postgres_url: str, *, clients: int):
    """Empty the run's PostgreSQL database, add clients and a due mailing to all of them."""
    from sqlmodel import Session

    from notifyctl.db import make_engine
    from tests.conftest import TABLES, forget_partitions

    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        forget_partitions(connection)
        connection.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    with Session(engine, expire_on_commit=False) as session:
        add_clients(session, clients)
        mailing = add_mailing(session)
    engine.dispose()
    return mailing


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(30)
