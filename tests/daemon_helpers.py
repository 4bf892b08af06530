"""Helpers for daemon tests: a live mock API, settings, and running a worker in-process."""

import asyncio
from collections.abc import Callable
from datetime import datetime

import httpx
import sqlalchemy as sa
from sqlmodel import Session

from daemon.worker import Counters, Worker
from mock.auth import demo_token
from notifyctl.config import Settings
from notifyctl.db import make_engine
from notifyctl.models import Attempt, Message

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
    worker = Worker(engine=engine, settings=settings, burst=burst, wait_scale=0.0, clock=clock)

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


def attempts_of(db_url: str) -> list[Attempt]:
    engine = make_engine(db_url)
    with Session(engine) as session:
        rows = list(session.execute(sa.select(Attempt).order_by(Attempt.id)).scalars())
    engine.dispose()
    return rows


def arrivals(items: list[dict]) -> list[datetime]:
    return [datetime.fromisoformat(item["last_at"]) for item in items]
