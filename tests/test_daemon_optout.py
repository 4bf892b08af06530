"""Opt-out against the daemon: what its view of opt-outs knows and when, a quick retry
stopped by an opt-out, and live runs against the mock on SQLite and PostgreSQL
(an opted-out client is left out, a transactional mailing still reaches it, an opt-out
while a mailing runs stops what the daemon holds before its request)."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from daemon import optouts
from daemon.optouts import OptOutView
from daemon.rules import Consent
from notifyctl.db import make_engine
from notifyctl.models import Attempt, Mailing, Message, MessageStatus
from notifyctl.services import optout
from notifyctl.services.delivery import AttemptRecord, Claimed, MailingSnapshot
from tests.daemon_helpers import change, run_worker, settings_for, statuses
from tests.factories import add_clients, add_mailing


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def held(client_id: int, seen_at: float, message_id: int = 1) -> Claimed:
    lease = datetime.now(UTC) + timedelta(seconds=30)
    return Claimed(message_id, 1, client_id, "79160000000", "UTC", 0, lease, seen_at)


def lookup_of(opted_out: set[int]):
    async def lookup(client_ids: list[int]) -> set[int]:
        lookup.asked.append(client_ids)
        return opted_out & set(client_ids)

    lookup.asked = []
    return lookup


# --- the view ------------------------------------------------------------------------------


def test_a_fresh_claim_is_consent_enough_and_an_old_one_is_not():
    clock = FakeTime()
    view = OptOutView(max_age=1.0, clock=clock)
    message = held(7, seen_at=clock.now)
    assert view.consent(message) is Consent.given
    clock.now += 1.5  # no look-up since the claim
    assert view.consent(message) is Consent.unknown


def test_a_look_up_after_the_claim_finds_the_opt_out():
    clock = FakeTime()
    view = OptOutView(clock=clock)
    mine, other = held(7, seen_at=clock.now, message_id=1), held(8, clock.now, message_id=2)
    clock.now += 0.5
    lookup = lookup_of({7})
    asyncio.run(view.look([mine, other], lookup))
    assert lookup.asked == [[7, 8]]
    assert view.consent(mine) is Consent.withdrawn
    assert view.consent(other) is Consent.given
    clock.now += 5.0  # withdrawn stays withdrawn; given goes stale
    assert (view.consent(mine), view.consent(other)) == (Consent.withdrawn, Consent.unknown)


def test_a_claim_in_progress_during_a_look_up_goes_by_its_own_time():
    """Its messages were not in the look-up (not held yet): their claim is what was seen."""
    clock = FakeTime()
    view = OptOutView(clock=clock)
    with view.claiming() as began:
        clock.now += 0.1
        asyncio.run(view.look([], lookup_of({7})))  # (the claim's messages not held yet)
        clock.now += 0.1
    late = held(7, seen_at=began)
    assert view.consent(late) is Consent.given  # not withdrawn: it was not looked up
    clock.now = began + 1.5
    assert view.consent(late) is Consent.unknown


def test_a_sender_waits_for_the_next_look_up_rather_than_give_a_message_back():
    clock = FakeTime()
    view = OptOutView(clock=clock)
    message = held(7, seen_at=clock.now)
    clock.now += 3.0

    async def scenario() -> Consent:
        waiting = asyncio.create_task(view.settle(message, patience=5.0))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await view.look([message], lookup_of({7}))
        return await waiting

    assert asyncio.run(scenario()) is Consent.withdrawn


def test_without_look_ups_a_sender_gives_up_after_its_patience():
    view = OptOutView(max_age=0.0)
    message = held(7, seen_at=0.0)
    assert asyncio.run(view.settle(message, patience=0.05)) is Consent.unknown


def test_a_failed_look_up_leaves_the_view_to_age():
    clock = FakeTime()
    view = OptOutView(clock=clock)
    message = held(7, seen_at=clock.now)

    async def broken(_ids):
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        asyncio.run(view.look([message], broken))
    clock.now += 1.5
    assert view.consent(message) is Consent.unknown


# --- a quick retry ------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["during the request", "during the pause after it"])
def test_an_opt_out_between_quick_retries_stops_the_next_request(monkeypatch, when):
    """Asked before the pause (with the breaker) and again right before the next request."""
    from loguru import logger

    from daemon.clock import SystemClock
    from daemon.dispatcher import Counters, Dispatcher
    from daemon.metrics import DaemonMetrics
    from daemon.sender import Transient
    from notifyctl.config import Settings

    view = OptOutView()
    clock = SystemClock(wait_scale=0)
    dispatcher = Dispatcher(
        settings=Settings(breaker_threshold=100),
        clock=clock,
        counters=Counters(),
        metrics=DaemonMetrics(),
        log=logger,
        stopping=lambda: False,
        optouts=view,
    )
    claimed = held(7, seen_at=optouts.time.monotonic())
    posted = []

    async def opt_out() -> None:
        await view.look([claimed], lookup_of({7}))

    async def post(message_id, *_args, **_kwargs):
        posted.append(message_id)
        if when == "during the request":
            await opt_out()
        error = Transient("HTTP 503")
        error.attempt = AttemptRecord(started_at=datetime.now(UTC), duration_ms=1.0)
        raise error

    async def sleep(_seconds: float) -> None:
        if when != "during the request":
            await opt_out()

    monkeypatch.setattr(dispatcher.sender, "post", post)
    monkeypatch.setattr(clock, "sleep", sleep)
    now = datetime.now(UTC)
    snapshot = MailingSnapshot(
        1, "Hello", now - timedelta(hours=1), now + timedelta(hours=1), None, False, False
    )
    outcome = asyncio.run(dispatcher.process(claimed, snapshot))

    assert posted == [1]  # no retry
    assert (outcome.status, outcome.last_error) == (MessageStatus.cancelled, "opted out")
    assert len(outcome.attempts) == 1


# --- live, against the mock ---------------------------------------------------------------


def make_transactional(db_url: str, mailing: Mailing) -> None:
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.execute(
            sa.update(Mailing).where(Mailing.id == mailing.id).values(transactional=True)
        )
    engine.dispose()


def test_an_opted_out_client_gets_only_transactional_mailings(db_url, session, mock_api):
    out, stays = add_clients(session, 2)
    optout.opt_out(session=session, client_id=out.id)
    session.commit()
    ordinary = add_mailing(session, text="sale")
    urgent = add_mailing(session, text="code 1234")
    make_transactional(db_url, urgent)

    run_worker(settings_for(db_url, mock_api))

    received = {(item["text"], item["phone"]) for item in mock_api.received()}
    assert received == {
        ("sale", int(stays.phone)),
        ("code 1234", int(stays.phone)),
        ("code 1234", int(out.phone)),
    }
    assert statuses(db_url, ordinary.id) == {"sent": 1}
    assert statuses(db_url, urgent.id) == {"sent": 2}


def test_an_opt_out_while_a_mailing_runs_stops_even_what_the_daemon_holds(
    db_url, session, mock_api
):
    """One request in flight, one message claimed and queued behind it (concurrency 1,
    each answer taking 1 s), the rest pending: every client opts out. The request in flight
    was made before and stands; no other request is made, not even for the claimed one."""
    clients = add_clients(session, 6)
    mock_api.faults(latency_ms=1000)
    mailing = add_mailing(session)
    opted_out_at = {}

    def opt_everyone_out_once_two_are_claimed(worker) -> None:
        # (run on the worker's loop: a sender in flight has made its request by now)
        if not opted_out_at and (worker._in_flight, worker._queue.qsize()) == (1, 1):
            engine = make_engine(db_url)
            with Session(engine) as own:
                for client in clients:
                    optout.opt_out(session=own, client_id=client.id)
                own.commit()
            engine.dispose()
            opted_out_at["t"] = datetime.now(UTC)

    run_worker(
        settings_for(db_url, mock_api, concurrency=1),
        during=opt_everyone_out_once_two_are_claimed,
    )

    assert opted_out_at
    assert statuses(db_url, mailing.id) == {"sent": 1, "cancelled": 5}
    engine = make_engine(db_url)
    with Session(engine) as own:
        reasons = own.execute(
            sa.select(Message.last_error).where(Message.status == MessageStatus.cancelled)
        )
        assert set(reasons.scalars()) == {"opted out"}
        started = own.execute(sa.select(Attempt.started_at)).scalars().all()
    engine.dispose()
    assert len(started) == 1
    assert max(started) < opted_out_at["t"]  # every request began before the opt-out
    [item] = mock_api.received()  # the mock got the one in flight, answered 1 s later
    assert item["count"] == 1

    # Opting in again brings nothing back; a new mailing reaches everyone.
    for client in clients:
        change(db_url, optout.opt_in, client_id=client.id)
    later = add_mailing(session, text="welcome back")
    mock_api.faults(latency_ms=0)
    run_worker(settings_for(db_url, mock_api))
    assert statuses(db_url, mailing.id) == {"sent": 1, "cancelled": 5}
    assert statuses(db_url, later.id) == {"sent": 6}
    assert len(mock_api.received()) == 7
