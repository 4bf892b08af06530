"""Opt-out in the service layer, on SQLite and PostgreSQL: what opting out and in changes,
who a mailing reaches, and what a claim hands out."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from notifyctl.errors import NotFound
from notifyctl.models import Client, Mailing, Message
from notifyctl.services import audience, delivery, mailings, optout
from notifyctl.services.clients import get_client
from notifyctl.timeutil import utcnow
from tests.factories import add_clients, add_mailing


def make_transactional(session, mailing: Mailing) -> Mailing:
    # (the create forms' --transactional is another part of the work: set it directly)
    session.execute(sa.update(Mailing).where(Mailing.id == mailing.id).values(transactional=True))
    session.commit()
    session.refresh(mailing)
    return mailing


def messages_of(session, mailing: Mailing) -> dict[int, tuple[str, str | None]]:
    """client id -> (status, last_error) of each message of the mailing."""
    session.expire_all()
    rows = session.execute(
        sa.select(Message.client_id, Message.status, Message.last_error).where(
            Message.mailing_id == mailing.id
        )
    )
    return {client_id: (status, error) for client_id, status, error in rows}


def test_opting_out_cancels_pending_messages_of_ordinary_mailings_only(session):
    first, second = add_clients(session, 2)
    ordinary = add_mailing(session, text="sale")
    urgent = make_transactional(session, add_mailing(session, text="code 1234"))
    for mailing in (ordinary, urgent):
        delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.commit()

    client, cancelled = optout.opt_out(session=session, client_id=first.id)
    session.commit()

    assert cancelled == 1
    assert client.opted_out_at is not None
    assert messages_of(session, ordinary) == {
        first.id: ("cancelled", "opted out"),
        second.id: ("pending", None),
    }
    assert messages_of(session, urgent) == {
        first.id: ("pending", None),
        second.id: ("pending", None),
    }


def test_sent_and_claimed_messages_are_left_to_their_fate(session):
    [client] = add_clients(session, 1)
    sent_one, claimed_one = add_mailing(session, text="a"), add_mailing(session, text="b")
    for mailing in (sent_one, claimed_one):
        delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.execute(
        sa.update(Message).where(Message.mailing_id == sent_one.id).values(status="sent")
    )
    session.execute(
        sa.update(Message).where(Message.mailing_id == claimed_one.id).values(status="sending")
    )
    session.commit()

    assert optout.opt_out(session=session, client_id=client.id)[1] == 0
    session.commit()

    assert messages_of(session, sent_one) == {client.id: ("sent", None)}
    # A daemon holds it: the daemon cancels it before its request (tests/test_daemon_optout.py).
    assert messages_of(session, claimed_one) == {client.id: ("sending", None)}


def test_opting_out_twice_keeps_the_first_time(session):
    [stored] = add_clients(session, 1)
    first_time = utcnow() - timedelta(days=3)
    optout.opt_out(session=session, client_id=stored.id, now=first_time)
    session.commit()
    client, _ = optout.opt_out(session=session, client_id=stored.id)
    session.commit()
    session.expire_all()
    assert get_client(session=session, client_id=stored.id).opted_out_at == first_time
    assert client.opted_out_at == first_time


def test_opting_in_brings_no_cancelled_message_back(session):
    [client] = add_clients(session, 1)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    optout.opt_out(session=session, client_id=client.id)
    session.commit()

    opted_in = optout.opt_in(session=session, client_id=client.id)
    again = optout.opt_in(session=session, client_id=client.id)  # idempotent
    session.commit()

    assert (opted_in.opted_out_at, again.opted_out_at) == (None, None)
    assert messages_of(session, mailing) == {client.id: ("cancelled", "opted out")}
    # A mailing that starts after the opt-in reaches it again.
    later = add_mailing(session, text="later")
    assert delivery.activate(session=session, mailing=later, now=utcnow()) == 1


@pytest.mark.parametrize("client_id", [0, -1, 999, 2**63, 2**70])
def test_an_unknown_client_is_not_found_and_nothing_changes(session, client_id):
    add_clients(session, 1)
    with pytest.raises(NotFound):
        optout.opt_out(session=session, client_id=client_id)
    with pytest.raises(NotFound):
        optout.opt_in(session=session, client_id=client_id)
    session.rollback()
    assert session.execute(sa.select(Client.opted_out_at)).scalars().all() == [None]


def test_a_mailing_leaves_opted_out_clients_out_when_it_starts(session):
    first, second, third = add_clients(session, 3)
    for client in (first, third):
        optout.opt_out(session=session, client_id=client.id)
    session.commit()
    ordinary = add_mailing(session)
    urgent = make_transactional(session, add_mailing(session))

    assert audience.count_audience(session=session, operator_codes=[], tags=[]) == 1
    assert mailings.mailing_audience(session=session, mailing=urgent) == 3
    assert delivery.activate(session=session, mailing=ordinary, now=utcnow()) == 1
    assert delivery.activate(session=session, mailing=urgent, now=utcnow()) == 3
    session.commit()
    assert set(messages_of(session, ordinary)) == {second.id}
    assert set(messages_of(session, urgent)) == {first.id, second.id, third.id}


def claim(session, mailing_ids: list[int]) -> list[delivery.Claimed]:
    now = utcnow()
    return delivery.claim(
        session=session,
        owner="me",
        mailing_ids=mailing_ids,
        now=now + timedelta(seconds=1),
        lease_until=now + timedelta(seconds=30),
        limit=100,
        seen_at=12.5,
    )


def test_a_claim_cancels_what_slipped_past_the_opt_out_and_hands_out_the_rest(session):
    """A message made pending after the opt-out's own cancelling (an activation racing
    with it, a retry given back by a daemon) never reaches a sender."""
    first, second = add_clients(session, 2)
    ordinary = add_mailing(session)
    urgent = make_transactional(session, add_mailing(session))
    for mailing in (ordinary, urgent):
        delivery.activate(session=session, mailing=mailing, now=utcnow())
    # The opt-out as a racing transaction leaves it: the client's row only.
    session.execute(sa.update(Client).where(Client.id == first.id).values(opted_out_at=utcnow()))
    session.commit()

    claimed = claim(session, [ordinary.id, urgent.id])
    session.commit()

    assert sorted((c.mailing_id, c.client_id) for c in claimed) == [
        (ordinary.id, second.id),
        (urgent.id, first.id),
        (urgent.id, second.id),
    ]
    assert {c.seen_at for c in claimed} == {12.5}
    assert messages_of(session, ordinary) == {
        first.id: ("cancelled", "opted out"),
        second.id: ("sending", None),
    }
    leftover = session.execute(
        sa.select(Message.lease_owner, Message.next_attempt_at).where(
            Message.mailing_id == ordinary.id, Message.client_id == first.id
        )
    ).one()
    assert tuple(leftover) == (None, None)


def test_retrying_failed_messages_skips_clients_who_opted_out(session):
    first, second = add_clients(session, 2)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.execute(
        sa.update(Message).where(Message.mailing_id == mailing.id).values(status="failed")
    )
    optout.opt_out(session=session, client_id=first.id)
    session.commit()

    assert mailings.retry_failed(session=session, mailing_id=mailing.id) == 1
    session.commit()
    assert messages_of(session, mailing) == {
        first.id: ("failed", None),
        second.id: ("pending", None),
    }


def test_the_daemon_look_up_finds_opted_out_clients_among_many(session, monkeypatch):
    clients = add_clients(session, 7)
    for client in clients[::3]:
        optout.opt_out(session=session, client_id=client.id)
    session.commit()
    monkeypatch.setattr(optout, "LOOKUP_CHUNK", 2)
    asked = [c.id for c in clients] + [10**6]
    assert optout.opted_out_among(session=session, client_ids=asked) == {c.id for c in clients[::3]}
    assert optout.opted_out_among(session=session, client_ids=[]) == set()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # (SQLite: one writer)
def test_two_opt_outs_at_once_keep_the_first_time_and_one_audit_entry(engine, session):
    """Two front ends opt the same client out at the same moment (PostgreSQL: the second
    waits for the first's row lock): the first time stays, and the log has one entry."""
    import threading

    from notifyctl.db import session_scope
    from notifyctl.models import Audit

    [client] = add_clients(session, 1)
    first_at = utcnow() - timedelta(minutes=1)
    second = threading.Thread(
        target=lambda: _opt_out_in_own_session(engine, client.id), name="second-opt-out"
    )
    with session_scope(engine) as first:
        optout.opt_out(session=first, client_id=client.id, now=first_at)
        second.start()
        second.join(0.3)  # it reads the client, then waits for this transaction's lock
    second.join(10)
    session.expire_all()
    assert session.get(Client, client.id).opted_out_at == first_at
    actions = session.execute(sa.select(Audit.action).where(Audit.object_id == client.id))
    assert list(actions.scalars()) == ["opted_out"]


def _opt_out_in_own_session(engine, client_id: int) -> None:
    from notifyctl.db import session_scope

    with session_scope(engine) as session:
        optout.opt_out(session=session, client_id=client_id)
