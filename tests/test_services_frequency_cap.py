"""The frequency cap (NOTIFY_FREQUENCY_CAP) in the claim, on SQLite and PostgreSQL: who is
held back, until when, what is not counted, and claims racing for one client."""

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import Session

from notifyctl.caps import parse_frequency_cap
from notifyctl.config import Settings
from notifyctl.db import make_engine, session_scope
from notifyctl.models import Mailing, Message
from notifyctl.services import delivery, frequency
from notifyctl.timeutil import utcnow
from tests.conftest import TABLES
from tests.factories import add_clients, add_mailing

CAP = parse_frequency_cap("3/24h")


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [
        ("3/24h", 3, timedelta(hours=24)),
        (" 10 / 5m ", 10, timedelta(minutes=5)),
        ("1/45S", 1, timedelta(seconds=45)),
        ("2/7d", 2, timedelta(days=7)),
    ],
)
def test_a_cap_reads_as_count_per_period(text, count, period):
    cap = Settings(frequency_cap=text).frequency_cap
    assert (cap.count, cap.period) == (count, period)


@pytest.mark.parametrize("text", ["", "  "])
def test_an_empty_cap_is_no_cap(text):
    assert Settings(frequency_cap=text).frequency_cap is None


@pytest.mark.parametrize(
    "text",
    ["3", "3/", "/24h", "0/24h", "3/0h", "3/24", "3/24w", "-1/1h", "3/99999d", "x/y", "3/1e3h"],
)
def test_a_malformed_cap_is_refused_saying_what_is_expected(text):
    with pytest.raises(ValidationError, match="not a frequency cap such as 3/24h"):
        Settings(frequency_cap=text)


def transactional(session, mailing: Mailing) -> Mailing:
    session.execute(sa.update(Mailing).where(Mailing.id == mailing.id).values(transactional=True))
    session.commit()
    return mailing


def mailings_for(session, count: int, **kwargs) -> list[Mailing]:
    made = [add_mailing(session, text=f"text {n}", **kwargs) for n in range(count)]
    for mailing in made:
        delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.commit()
    return made


def mark_sent(session, mailing: Mailing, client_id: int, at) -> None:
    session.execute(
        sa.update(Message)
        .where(Message.mailing_id == mailing.id, Message.client_id == client_id)
        .values(status="sent", sent_at=at, next_attempt_at=None)
    )
    session.commit()


def claim(session, mailings, *, owner="me", now=None, cap=CAP):
    now = now or utcnow()
    claimed = delivery.claim(
        session=session,
        owner=owner,
        mailing_ids=[m.id for m in mailings],
        now=now,
        lease_until=now + timedelta(seconds=30),
        limit=100,
        cap=cap,
    )
    session.commit()
    return claimed


def row(session, mailing: Mailing, client_id: int):
    session.expire_all()
    return session.execute(
        sa.select(
            Message.status, Message.next_attempt_at, Message.last_error, Message.lease_owner
        ).where(Message.mailing_id == mailing.id, Message.client_id == client_id)
    ).one()


def test_a_client_at_the_cap_waits_until_its_oldest_message_leaves_the_period(session):
    capped, free = add_clients(session, 2)
    *earlier, fourth = mailings_for(session, 4)
    now = utcnow()
    for hours_ago, mailing in zip((23, 5, 1), earlier, strict=True):
        mark_sent(session, mailing, capped.id, now - timedelta(hours=hours_ago))
        mark_sent(session, mailing, free.id, now - timedelta(hours=25 + hours_ago))

    claimed = claim(session, [fourth], now=now)

    assert [(c.mailing_id, c.client_id) for c in claimed] == [(fourth.id, free.id)]
    status, due, error, owner = row(session, fourth, capped.id)
    assert (status, error, owner) == ("pending", "frequency cap 3/24h", None)
    assert due == now - timedelta(hours=23) + timedelta(hours=24)  # one hour from now
    # Nothing is handed out before then; at that moment it is.
    assert claim(session, [fourth], now=due - timedelta(seconds=1)) == []
    [again] = claim(session, [fourth], now=due)
    assert again.client_id == capped.id


def test_one_claim_lets_only_the_cap_through_for_one_client(session):
    [client] = add_clients(session, 1)
    made = mailings_for(session, 5)
    now = utcnow()

    claimed = claim(session, made, now=now)

    assert len(claimed) == 3
    held = [row(session, m, client.id) for m in made if m.id not in {c.mailing_id for c in claimed}]
    assert [(status, error) for status, _, error, _ in held] == [
        ("pending", "frequency cap 3/24h")
    ] * 2
    # What holds them back is in flight and may yet fail: looked at again soon.
    assert {due for _, due, _, _ in held} == {now + timedelta(seconds=5)}


def test_messages_in_flight_count_whoever_holds_them(session):
    [client] = add_clients(session, 1)
    first, second, third, fourth = mailings_for(session, 4)
    assert len(claim(session, [first, second], owner="other daemon")) == 2
    mark_sent(session, third, client.id, utcnow() - timedelta(minutes=1))

    assert claim(session, [fourth]) == []
    assert row(session, fourth, client.id)[0] == "pending"


def test_transactional_mailings_are_neither_capped_nor_counted(session):
    [client] = add_clients(session, 1)
    ordinary = mailings_for(session, 3)
    *codes, fourth_code = [transactional(session, m) for m in mailings_for(session, 4)]
    now = utcnow()
    for mailing in codes:
        mark_sent(session, mailing, client.id, now - timedelta(minutes=5))

    claimed = claim(session, [*ordinary, fourth_code], now=now)

    assert {c.mailing_id for c in claimed} == {*(m.id for m in ordinary), fourth_code.id}


def test_without_a_cap_nothing_is_held_back(session):
    add_clients(session, 1)
    made = mailings_for(session, 5)
    assert len(claim(session, made, cap=None)) == 5


def test_a_held_message_expires_at_its_mailings_end_like_any_other(session):
    [client] = add_clients(session, 1)
    *earlier, last = mailings_for(session, 4)
    now = utcnow()
    for mailing in earlier:
        mark_sent(session, mailing, client.id, now - timedelta(minutes=10))
    assert claim(session, [last], now=now) == []

    delivery.expire_ended(session=session, now=last.end_at)
    session.commit()

    assert row(session, last, client.id)[:3] == ("expired", None, "frequency cap 3/24h")


def test_claims_racing_for_one_client_let_no_fourth_message_through(postgres_url):
    """Three daemons claim at the same instant, each every mailing of one client."""
    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    with Session(engine, expire_on_commit=False) as session:
        [client] = add_clients(session, 1)
        made = mailings_for(session, 12)
    for _ in range(5):  # several rounds: each must hold
        start = threading.Barrier(3)
        handed: list[int] = []

        def daemon(owner: str, start=start, handed=handed) -> None:
            start.wait()
            now = utcnow()
            with session_scope(engine) as session:
                got = delivery.claim(
                    session=session,
                    owner=owner,
                    mailing_ids=[m.id for m in made],
                    now=now,
                    lease_until=now + timedelta(seconds=30),
                    limit=4,
                    cap=CAP,
                )
            handed.extend(c.id for c in got)

        threads = [threading.Thread(target=daemon, args=(f"d{n}",)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(handed) == 3
        with engine.begin() as connection:  # give them back for the next round
            connection.execute(
                sa.update(Message)
                .where(Message.client_id == client.id)
                .values(
                    status="pending", lease_owner=None, lease_until=None, next_attempt_at=utcnow()
                )
            )
    engine.dispose()


def test_messages_held_under_another_cap_are_due_again_when_a_daemon_starts(session):
    """A cap removed or changed: what it held is decided again at once, not after its
    old due time; what the same cap held keeps waiting."""
    [client] = add_clients(session, 1)
    first, second = mailings_for(session, 2)
    now = utcnow()
    mark_sent(session, first, client.id, now - timedelta(minutes=1))
    assert claim(session, [second], now=now, cap=parse_frequency_cap("1/1h")) == []
    held_until = row(session, second, client.id)[1]
    assert held_until == now - timedelta(minutes=1) + timedelta(hours=1)

    for cap, released in (("1/1h", 0), ("2/1h", 1)):
        later = utcnow()
        count = frequency.release_held(session=session, cap=parse_frequency_cap(cap), now=later)
        session.commit()
        assert count == released
    assert row(session, second, client.id)[1] == later
    assert len(claim(session, [second], now=later, cap=None)) == 1


def test_a_message_held_back_by_messages_in_flight_is_looked_at_again_soon(session):
    """Two of the three counted are in flight: should they fail, the client has room at
    once, so the fourth must not wait for the sent one to leave the period."""
    [client] = add_clients(session, 1)
    sent, first, second, fourth = mailings_for(session, 4)
    now = utcnow()
    mark_sent(session, sent, client.id, now - timedelta(hours=1))
    assert len(claim(session, [first, second], owner="other daemon", now=now)) == 2

    assert claim(session, [fourth], now=now) == []
    assert row(session, fourth, client.id)[1] == now + timedelta(seconds=5)

    session.execute(  # the API refused both
        sa.update(Message)
        .where(Message.mailing_id.in_([first.id, second.id]))
        .values(status="failed", lease_owner=None, lease_until=None)
    )
    session.commit()
    [again] = claim(session, [fourth], now=now + timedelta(seconds=5))
    assert again.client_id == client.id
