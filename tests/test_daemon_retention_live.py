"""Pruning while a mailing sends: nothing of the sending mailing is lost, nothing sent twice."""

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from notifyctl.db import make_engine, session_scope
from notifyctl.models import Message
from notifyctl.services import retention, stats
from tests.daemon_helpers import run_worker, settings_for, statuses
from tests.factories import add_clients, add_history, add_mailing


def test_pruning_again_and_again_while_a_mailing_sends_loses_and_repeats_nothing(
    db_url, session, mock_api
):
    now = datetime.now(UTC)
    history = [add_history(session, ended=now - timedelta(days=d), clients=30) for d in (400, 500)]
    add_clients(session, 80, tag="live")
    live = add_mailing(session, text="Now", tags=["live"])
    engine = make_engine(db_url)
    stop, rounds, errors = threading.Event(), [], []

    def prune_again_and_again() -> None:
        # Attempts older than a second go too: those of the sending mailing among them.
        try:
            while not stop.is_set():
                cutoffs = retention.cutoffs(
                    now=datetime.now(UTC), attempts=timedelta(seconds=1), messages=timedelta(days=1)
                )
                rounds.append(retention.prune(engine=engine, cutoffs=cutoffs, actor="t", limit=7))
        except Exception as exc:  # (reported by the assertion below, not lost in the thread)
            errors.append(exc)

    pruner = threading.Thread(target=prune_again_and_again)
    pruner.start()
    try:
        # A slow mailing (concurrency 2, 80 a second at most): prunings run all along.
        run_worker(settings_for(db_url, mock_api, concurrency=2, rate_limit=80))
    finally:
        stop.set()
        pruner.join()

    assert errors == []
    assert len(rounds) > 1
    assert statuses(db_url, live.id) == {"sent": 80}
    received = mock_api.received()
    assert len(received) == 80
    assert {item["count"] for item in received} == {1}
    with session_scope(engine) as s:
        tries = s.execute(sa.select(Message.attempts).where(Message.mailing_id == live.id))
        assert sorted(tries.scalars()) == [1] * 80
        for mailing in history:
            summary = stats.mailing_stats(session=s, mailing_id=mailing.id)
            assert (summary.total, summary.pruned_at is not None) == (30, True)
        left = s.execute(sa.select(sa.func.count()).where(Message.mailing_id != live.id))
        assert left.scalar_one() == 0
    engine.dispose()
