"""Test sends: a mailing's current text to one phone, now, through the sending API.

The rules:

- The phone is checked and normalised as a client's is; it need not be a client's. A
  client who opted out gets a test send only from a transactional mailing, as from the
  mailing itself.
- Any mailing may be tested, in any state (scheduled, running, paused, finished,
  cancelled): a test send goes to the one phone given, never to the audience, and the
  text of an ended mailing is what its clients got.
- A test send is no message of its mailing: it is in none of its statistics. Its row in
  ``test_send`` keeps the request's answer (HTTP status, body excerpt, duration, error).
- Its id is the message id given to the API, the API's idempotency key: it comes from
  the message table's own sequence, so no message, earlier or later, ever has it
  (``next_message_id``).
- One request, no retry (``post`` makes it); no transaction is open meanwhile, so a
  slow API holds up neither the daemon nor the database.
- A mailing's test sends are listed newest first (``list_test_sends``), a page at a time;
  they go with their mailing when it is deleted.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager

import sqlalchemy as sa
from loguru import logger
from sqlmodel import Session

from notifyctl.errors import Conflict
from notifyctl.models import Client, Page, TestSend, TestSendPublic
from notifyctl.services import audit, validation
from notifyctl.services.delivery import AttemptRecord
from notifyctl.services.mailings import get_mailing
from notifyctl.timeutil import utcnow

#: What ``send_test`` calls to make the request: (message id, phone, text) -> its record.
Post = Callable[[int, str, str], AttemptRecord]

#: Kept in a test send's row until its answer replaces it: what a crash mid-request leaves.
NO_ANSWER = "no answer recorded (the test send was interrupted)"
MAX_STORED = 500  # characters of an excerpt or error the row holds


def next_message_id(session: Session) -> int:
    """Take the next id of the message table's sequence; no message will ever get it.

    PostgreSQL: ``nextval`` of the sequence behind ``message.id`` (never rolled back).
    SQLite: ``AUTOINCREMENT`` gives a new message ``max(sqlite_sequence, max(id)) + 1``,
    so raising ``sqlite_sequence`` takes the id. The first statement is the write, so
    this transaction holds SQLite's one write lock from its first read to its commit: a
    daemon activating a mailing meanwhile inserts before (its ids are then below and in
    ``sqlite_sequence`` already) or after (above). Ids of earlier test sends count too,
    should the sequence ever be rebuilt lower (``tests/test_services_test_sends.py`` checks that
    upgrades keep it).
    """
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(
            sa.text("SELECT nextval(pg_get_serial_sequence('message', 'id'))")
        ).scalar_one()
    used = (
        "MAX((SELECT COALESCE(MAX(id), 0) FROM message), "
        "(SELECT COALESCE(MAX(id), 0) FROM test_send))"
    )
    raised = session.execute(
        sa.text(f"UPDATE sqlite_sequence SET seq = MAX(seq, {used}) + 1 WHERE name = 'message'")
    ).rowcount
    if not raised:  # no message was ever inserted: SQLite keeps no row for the table yet
        session.execute(
            sa.text(f"INSERT INTO sqlite_sequence (name, seq) SELECT 'message', {used} + 1")
        )
    return session.execute(
        sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'message'")
    ).scalar_one()


def start_test_send(*, session: Session, mailing_id: int, phone: str) -> tuple[TestSend, str]:
    """Check the request, take an id and store the test send (answer not yet known).

    Returns the row and the text to send. Bad input raises before anything is stored.
    """
    mailing = get_mailing(session=session, mailing_id=mailing_id)
    phone = validation.normalise_phone(phone)
    if not mailing.transactional:
        opted_out = session.execute(
            sa.select(Client.id).where(Client.phone == phone, Client.opted_out_at.is_not(None))
        ).scalar()
        if opted_out is not None:
            raise Conflict(
                f"client {opted_out} with this phone opted out; only a transactional "
                "mailing may send to it",
                field="phone",
            )
    test = TestSend(
        id=next_message_id(session),
        mailing_id=mailing.id,
        phone=phone,
        at=utcnow(),
        error=NO_ANSWER,
    )
    session.add(test)
    session.flush()
    # (a real SMS to a phone: who asked for it is on record, as for any change)
    audit.record(
        session=session,
        action="test_sent",
        object_type="mailing",
        object_id=mailing.id,
        changes={"test_send_id": [None, test.id], "phone": [None, phone]},
    )
    return test, mailing.text


def record_test_send(
    *, session: Session, test_send: TestSend, attempt: AttemptRecord
) -> TestSendPublic:
    """Store the answer of a test send's request; return the test send as shown."""
    values = {
        "at": attempt.started_at,
        "duration_ms": round(attempt.duration_ms, 3),
        "http_status": attempt.http_status,
        "response_excerpt": _stored(attempt.response_excerpt),
        "error": _stored(attempt.error),
    }
    # An UPDATE, not the ORM row: the mailing (and so this row) may be deleted meanwhile,
    # and the operator still gets the answer.
    session.execute(sa.update(TestSend).where(TestSend.id == test_send.id).values(**values))
    shown = TestSend(id=test_send.id, mailing_id=test_send.mailing_id, phone=test_send.phone)
    for name, value in values.items():
        setattr(shown, name, value)
    return to_public(shown)


def send_test(
    *,
    open_session: Callable[[], AbstractContextManager[Session]],
    mailing_id: int,
    phone: str,
    post: Post,
) -> TestSendPublic:
    """Send a mailing's current text to ``phone`` now, once, and record the answer.

    ``open_session`` opens a session that commits on leaving (``db.session_scope``): the
    test send is stored before its request and its answer after, in two transactions,
    so none is open while the API answers. ``post`` makes the request.
    """
    with open_session() as session:
        test, text = start_test_send(session=session, mailing_id=mailing_id, phone=phone)
    log = logger.bind(mailing_id=mailing_id, test_send_id=test.id)
    log.info("test send {test_send_id} to {phone}: sending", test_send_id=test.id, phone=test.phone)
    attempt = post(test.id, test.phone, text)
    # Logged before it is stored: should the database fail now, the answer (the SMS may
    # have gone out) is still in the log, under this id.
    log.info(
        "test send {test_send_id}: {outcome} (HTTP {status}, {duration_ms:.0f} ms)",
        test_send_id=test.id,
        outcome="accepted" if attempt.error is None else f"not accepted: {attempt.error}",
        status=attempt.http_status,
        duration_ms=attempt.duration_ms,
    )
    with open_session() as session:
        return record_test_send(session=session, test_send=test, attempt=attempt)


def list_test_sends(
    *, session: Session, mailing_id: int, limit: int = 100, offset: int = 0
) -> Page[TestSend]:
    """One page of a mailing's test sends, newest first (by when the request started;
    an interrupted one by when it was asked for). An unknown mailing is ``NotFound``."""
    limit, offset = validation.page_bounds(limit, offset)
    get_mailing(session=session, mailing_id=mailing_id)
    mine = TestSend.mailing_id == mailing_id
    total = session.execute(
        sa.select(sa.func.count()).select_from(TestSend).where(mine)
    ).scalar_one()
    rows = session.execute(
        sa.select(TestSend)
        .where(mine)
        .order_by(TestSend.at.desc(), TestSend.id.desc())
        .limit(limit)
        .offset(offset)
    ).scalars()
    return Page(total=total, limit=limit, offset=offset, items=list(rows))


def to_public(test: TestSend) -> TestSendPublic:
    return TestSendPublic(
        id=test.id,
        mailing_id=test.mailing_id,
        phone=test.phone,
        at=test.at,
        accepted=test.error is None,
        http_status=test.http_status,
        response_excerpt=test.response_excerpt,
        duration_ms=test.duration_ms,
        error=test.error,
    )


def _stored(text: str | None) -> str | None:
    """What a row can hold of an answer: no NUL (PostgreSQL refuses it), at most 500."""
    return None if text is None else text.replace("\x00", "\ufffd")[:MAX_STORED]
