"""The frequency cap with the daemon against the real mock: in-process on SQLite and
PostgreSQL, and three daemon processes racing for one client on PostgreSQL."""

import collections
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session

from daemon.store import Store
from notifyctl.caps import parse_frequency_cap
from notifyctl.db import make_engine
from notifyctl.models import Mailing, Message
from notifyctl.services import delivery
from notifyctl.timeutil import utcnow
from tests.conftest import TABLES
from tests.daemon_helpers import run_worker, settings_for, start_daemon, stop, wait_for
from tests.factories import add_clients, add_mailing


def fates(db_url: str) -> list[tuple[str, str | None]]:
    """(status, last_error) of every message, in id order."""
    engine = make_engine(db_url)
    with Session(engine) as session:
        rows = session.execute(
            sa.select(Message.status, Message.last_error).order_by(Message.id)
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_the_daemon_sends_a_client_no_more_than_the_cap(db_url, session, mock_api):
    [client] = add_clients(session, 1)
    for n in range(3):
        add_mailing(session, text=f"offer {n}")
    code = add_mailing(session, text="code 1234")
    session.execute(sa.update(Mailing).where(Mailing.id == code.id).values(transactional=True))
    session.commit()

    run_worker(settings_for(db_url, mock_api, frequency_cap="2/1h"))

    texts = sorted(
        item["text"] for item in mock_api.received() if item["phone"] == int(client.phone)
    )
    assert len(texts) == 3
    assert "code 1234" in texts  # a transactional mailing is not capped
    assert sorted(fates(db_url)) == [
        ("pending", "frequency cap 2/1h"),
        ("sent", None),
        ("sent", None),
        ("sent", None),
    ]


def test_three_daemons_racing_for_the_same_clients_keep_to_the_cap(postgres_url, mock_api):
    """Four clients are in each of 24 mailings; three daemons claim a few at a time, so
    their claims keep meeting on the same clients. No client gets a fourth message.
    (Claims forced to meet at one instant: test_services_frequency_cap's racing test.)"""
    clients, mailings = 4, 24
    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    with Session(engine, expire_on_commit=False) as session:
        add_clients(session, clients)
        for n in range(mailings):
            add_mailing(session, text=f"offer {n}")
    engine.dispose()
    mock_api.faults(latency_ms=10)
    daemons = [
        start_daemon(postgres_url, mock_api, NOTIFY_FREQUENCY_CAP="3/24h", NOTIFY_CONCURRENCY="4")
        for _ in range(3)
    ]

    def settled() -> bool:
        # (every other message looked at and held back: one given back untouched by a
        # sender, such as for a lease too short, is pending without a reason until then)
        seen = collections.Counter(fates(postgres_url))
        return (
            seen[("sent", None)] == 3 * clients
            and seen.total() == clients * mailings
            and (seen[("sent", None)] + seen[("pending", "frequency cap 3/24h")] == seen.total())
        )

    wait_for(settled, timeout=60)
    assert [stop(daemon) for daemon in daemons] == [0, 0, 0]
    per_phone = collections.Counter(item["phone"] for item in mock_api.received())
    assert len(per_phone) == clients
    assert set(per_phone.values()) == {3}
    assert set(fates(postgres_url)) == {("pending", "frequency cap 3/24h"), ("sent", None)}


def test_messages_held_back_give_their_rate_permits_back(engine, session):
    """Under NOTIFY_RATE_LIMIT a claim takes permits first: those of messages it then
    holds back sent nothing, and must not slow the messages of clients with room."""
    capped, free = add_clients(session, 2)
    *earlier, offer = [add_mailing(session, text=f"offer {n}") for n in range(4)]
    now = utcnow()
    for mailing in [*earlier, offer]:
        delivery.activate(session=session, mailing=mailing, now=now)
    session.execute(
        sa.update(Message)
        .where(Message.mailing_id.in_([m.id for m in earlier]), Message.client_id == capped.id)
        .values(status="sent", sent_at=now - timedelta(minutes=5), next_attempt_at=None)
    )
    session.execute(  # the capped client's message comes first
        sa.update(Message)
        .where(Message.mailing_id == offer.id, Message.client_id == capped.id)
        .values(next_attempt_at=now - timedelta(minutes=1))
    )
    session.commit()
    store = Store(engine, owner="me", rate_limit=1.0, frequency_cap=parse_frequency_cap("3/24h"))

    def claim():  # one permit a claim (the bucket holds one), all at the same instant
        return store._claim(1, [offer.id], now, now + timedelta(seconds=30), 0.0)

    assert claim() == []  # the capped client's message, held back
    assert [c.client_id for c in claim()] == [free.id]
