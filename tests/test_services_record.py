"""``delivery.record`` writes outcomes with hand-written statements (executemany on
SQLite, one array statement each on PostgreSQL): what it stores must be what the ORM
stores, read back the same way by everything else."""

import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import select

from notifyctl.models import Attempt, Message, MessageStatus
from notifyctl.services import delivery
from notifyctl.services.delivery import AttemptRecord, Outcome
from notifyctl.timeutil import utcnow
from tests.factories import add_clients, add_mailing

#: how SQLAlchemy's SQLite dialect writes a time: the format every query compares with
SQLITE_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


def claimed_messages(session, count: int, *, owner: str = "me"):
    add_clients(session, count)
    mailing = add_mailing(session)
    now = utcnow()
    delivery.activate(session=session, mailing=mailing, now=now)
    claimed = delivery.claim(
        session=session,
        owner=owner,
        mailing_ids=[mailing.id],
        now=now,
        lease_until=now + timedelta(seconds=30),
        limit=count,
    )
    session.commit()
    return sorted(claimed, key=lambda c: c.id)


def test_every_kind_of_outcome_is_stored_as_the_orm_reads_it(db_url, session):
    first, second, third, fourth = claimed_messages(session, 4)
    at = datetime(2027, 3, 28, 0, 59, 59, 999_999, tzinfo=UTC)
    later = at + timedelta(minutes=5, microseconds=1)
    failed_try = AttemptRecord(at, 12.3456, None, None, "ConnectError: refused \x00 \udcff")
    served = AttemptRecord(later, 3.0, 200, '{"code": 0, "message": "Привет"}')
    outcomes = [
        Outcome(
            first.id,
            MessageStatus.sent,
            [failed_try, served],
            sent_at=later,
            mailing_id=first.mailing_id,
        ),
        Outcome(
            second.id,
            MessageStatus.pending,
            [failed_try],
            next_attempt_at=later,
            last_error="HTTP 503",
            mailing_id=second.mailing_id,
        ),
        Outcome(
            third.id,
            MessageStatus.failed,
            [served],
            last_error="code 5: rejected",
            mailing_id=third.mailing_id,
        ),
        Outcome(
            fourth.id, MessageStatus.pending, mailing_id=fourth.mailing_id
        ),  # given back untouched (no attempt)
    ]
    delivery.record(session=session, owner="me", outcomes=outcomes)
    session.commit()
    session.expire_all()

    rows = {m.id: m for m in session.exec(select(Message))}
    sent, waiting, failed, untouched = (rows[c.id] for c in (first, second, third, fourth))
    assert (sent.status, sent.sent_at, sent.attempts) == ("sent", later, 2)
    assert (sent.lease_owner, sent.lease_until, sent.next_attempt_at) == (None, None, None)
    assert (waiting.status, waiting.next_attempt_at, waiting.attempts) == ("pending", later, 1)
    assert waiting.last_error == "HTTP 503"
    assert (failed.status, failed.last_error, failed.attempts) == ("failed", "code 5: rejected", 1)
    assert (untouched.status, untouched.attempts, untouched.lease_owner) == ("pending", 0, None)

    attempts = session.exec(select(Attempt).order_by(Attempt.id)).all()
    assert [(a.message_id, a.started_at, a.http_status) for a in attempts] == [
        (first.id, at, None),
        (first.id, later, 200),
        (second.id, at, None),
        (third.id, later, 200),
    ]
    assert attempts[0].duration_ms == 12.346
    assert attempts[0].error == "ConnectError: refused \ufffd ?"
    assert attempts[1].response_excerpt == '{"code": 0, "message": "Привет"}'

    # Times are stored as the ORM stores them, so every comparison in SQL still holds.
    window = select(Message).where(Message.next_attempt_at > at, Message.next_attempt_at <= later)
    assert [m.id for m in session.exec(window)] == [second.id]
    if db_url.startswith("sqlite"):
        raw = (
            session.connection()
            .execute(sa.text("SELECT sent_at FROM message WHERE id = :i"), {"i": first.id})
            .scalar()
        )
        assert SQLITE_TIME.match(raw), raw


def test_an_outcome_of_a_message_another_daemon_holds_changes_nothing(db_url, session):
    [claimed] = claimed_messages(session, 1, owner="other")
    delivery.record(
        session=session,
        owner="me",
        outcomes=[
            Outcome(
                claimed.id,
                MessageStatus.failed,
                [],
                last_error="not mine",
                mailing_id=claimed.mailing_id,
            )
        ],
    )
    session.commit()
    session.expire_all()
    message = session.get(Message, claimed.id)
    assert (message.status, message.lease_owner, message.last_error) == ("sending", "other", None)


def test_a_sent_outcome_is_stored_even_after_the_lease_was_taken_over(db_url, session):
    [claimed] = claimed_messages(session, 1, owner="other")
    sent_at = utcnow()
    delivery.record(
        session=session,
        owner="me",
        outcomes=[
            Outcome(
                claimed.id, MessageStatus.sent, [], sent_at=sent_at, mailing_id=claimed.mailing_id
            )
        ],
    )
    session.commit()
    session.expire_all()
    message = session.get(Message, claimed.id)
    assert (message.status, message.sent_at, message.lease_owner) == ("sent", sent_at, None)
