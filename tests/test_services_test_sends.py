"""Test sends in the service layer, on SQLite and PostgreSQL: their ids are never any
message's (before, after, interleaved with activations, after deletes, across upgrades),
they are not counted in statistics, and bad input changes nothing."""

import shutil
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from notifyctl.db import HEAD_REVISION, make_engine, session_scope, upgrade
from notifyctl.errors import Conflict, InvalidInput, NotFound
from notifyctl.models import Client, MailingUpdate, Message, TestSend
from notifyctl.services import audience, mailings, stats, test_sends
from notifyctl.services.delivery import AttemptRecord
from tests.factories import add_clients, add_mailing


def accepted(message_id: int, phone: str, text: str) -> AttemptRecord:
    """A stand-in for the request: the API took it."""
    return AttemptRecord(
        started_at=datetime.now(UTC),
        duration_ms=3.0,
        http_status=200,
        response_excerpt='{"code": 0, "message": "OK"}',
    )


class Recorder:
    """A stand-in for the request that remembers what it was asked to send."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, str]] = []

    def __call__(self, message_id: int, phone: str, text: str) -> AttemptRecord:
        self.calls.append((message_id, phone, text))
        return accepted(message_id, phone, text)


def send(engine, mailing_id: int, phone: str = "79160000999", post=accepted):
    return test_sends.send_test(
        open_session=lambda: session_scope(engine), mailing_id=mailing_id, phone=phone, post=post
    )


def activate(session, mailing) -> set[int]:
    """Create the mailing's messages, as the daemon does when it starts; their ids."""
    assert audience.materialise(session=session, mailing=mailing) > 0
    session.commit()
    return set(
        session.execute(sa.select(Message.id).where(Message.mailing_id == mailing.id)).scalars()
    )


def message_ids(session) -> set[int]:
    return set(session.execute(sa.select(Message.id)).scalars())


def test_a_test_send_posts_the_current_text_to_the_normalised_phone(engine, session):
    mailing = add_mailing(session, text="Sale today")
    mailings.update_mailing(
        session=session,
        mailing_id=mailing.id,
        mailing_in=MailingUpdate(text="Sale, corrected"),
    )
    session.commit()
    post = Recorder()

    shown = send(engine, mailing.id, "+7 (916) 123-45-67", post)

    assert post.calls == [(shown.id, "79161234567", "Sale, corrected")]
    assert (shown.accepted, shown.http_status, shown.phone) == (True, 200, "79161234567")
    stored = session.get(TestSend, shown.id)
    assert (stored.mailing_id, stored.http_status, stored.error) == (mailing.id, 200, None)
    assert stored.response_excerpt == '{"code": 0, "message": "OK"}'


def test_a_failed_request_is_recorded_with_its_error(engine, session):
    mailing = add_mailing(session)

    def refused(message_id, phone, text):
        return AttemptRecord(
            started_at=datetime.now(UTC), duration_ms=7.0, http_status=503, error="HTTP 503"
        )

    shown = send(engine, mailing.id, post=refused)

    assert (shown.accepted, shown.http_status, shown.error) == (False, 503, "HTTP 503")
    assert session.get(TestSend, shown.id).error == "HTTP 503"


def test_a_request_that_never_answers_leaves_a_record_saying_so(engine, session):
    mailing = add_mailing(session)

    def crash(message_id, phone, text):
        raise KeyboardInterrupt  # the operator's Ctrl-C, mid-request

    with pytest.raises(KeyboardInterrupt):
        send(engine, mailing.id, post=crash)

    (row,) = session.exec(select(TestSend)).all()
    assert row.error == test_sends.NO_ANSWER


def test_test_sends_are_not_counted_in_the_mailings_statistics(engine, session):
    add_clients(session, 3)
    mailing = add_mailing(session)
    activate(session, mailing)

    send(engine, mailing.id)
    send(engine, mailing.id)

    counts = stats.mailing_stats(session=session, mailing_id=mailing.id)
    assert counts.total == 3
    page = stats.list_messages(session=session, mailing_id=mailing.id, limit=100, offset=0)
    assert page.total == 3
    assert all(m.id not in {t.id for t in session.exec(select(TestSend))} for m in page.items)


def test_ids_never_collide_with_messages_before_between_and_after_activations(engine, session):
    add_clients(session, 3)
    first = send(engine, add_mailing(session).id).id  # before any message exists
    a = activate(session, add_mailing(session))
    middle = send(engine, add_mailing(session).id).id
    b_mailing = add_mailing(session)
    b = activate(session, b_mailing)
    late = send(engine, b_mailing.id).id
    # Deleting the newest messages and the test send must not give their ids again.
    mailings.delete_mailing(session=session, mailing_id=b_mailing.id)
    session.commit()
    after_delete = send(engine, add_mailing(session).id).id
    c = activate(session, add_mailing(session))

    tests = [first, middle, late, after_delete]
    assert not set(tests) & (a | b | c)
    assert first < min(a)
    assert max(a) < middle < min(b)
    assert max(b) < late < after_delete < min(c)


def test_ids_never_collide_with_a_daemon_activating_at_the_same_time(db_url):
    """Test sends in one thread, activations in another, each with its own connection."""
    engine = make_engine(db_url)
    with Session(engine) as setup:
        add_clients(setup, 5)
        target = add_mailing(setup).id
    taken: list[int] = []
    errors: list[BaseException] = []

    def test_sending() -> None:
        try:
            for _ in range(25):
                with session_scope(engine) as own:
                    test, _text = test_sends.start_test_send(
                        session=own, mailing_id=target, phone="79160000999"
                    )
                    taken.append(test.id)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    def activating() -> None:
        try:
            for _ in range(25):
                with Session(engine) as own:
                    activate(own, add_mailing(own))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=test_sending), threading.Thread(target=activating)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with Session(engine) as check:
        used = message_ids(check)
    engine.dispose()

    assert errors == []
    assert len(used) == 125
    assert len(set(taken)) == 25
    assert not set(taken) & used


def test_bad_input_is_refused_and_changes_nothing(engine, session):
    mailing = add_mailing(session)
    post = Recorder()
    cases = [
        (InvalidInput, mailing.id, "12345"),
        (InvalidInput, mailing.id, "89161234567"),
        (InvalidInput, mailing.id, "+7 916 ٣٣٣ 45 67"),  # digits of another script
        (NotFound, mailing.id + 1000, "79161234567"),
        (NotFound, 2**70, "79161234567"),
    ]
    for error, mailing_id, phone in cases:
        with pytest.raises(error) as caught:
            send(engine, mailing_id, phone, post)
        assert caught.value.field in ("phone", "id")
    assert post.calls == []
    assert session.exec(select(TestSend)).all() == []
    # Not even an id was taken: the next message is number 1.
    add_clients(session, 1)
    assert activate(session, mailing) == {1}


def test_an_opted_out_client_gets_no_test_send_of_a_non_transactional_mailing(engine, session):
    add_clients(session, 1)
    client = session.exec(select(Client)).one()
    client.opted_out_at = datetime.now(UTC)
    session.add(client)
    mailing = add_mailing(session)
    post = Recorder()

    with pytest.raises(Conflict) as caught:
        send(engine, mailing.id, client.phone, post)

    assert caught.value.field == "phone"
    assert post.calls == []
    mailing.transactional = True  # one-time codes reach opted-out clients: a test may too
    session.add(mailing)
    session.commit()
    assert send(engine, mailing.id, client.phone, post).accepted


def test_a_finished_or_cancelled_mailing_may_still_be_tested(engine, session):
    mailing = add_mailing(session)
    mailings.cancel_mailing(session=session, mailing_id=mailing.id)
    session.commit()

    assert send(engine, mailing.id).accepted


def test_deleting_the_mailing_deletes_its_test_sends(engine, session):
    mailing = add_mailing(session)
    send(engine, mailing.id)

    mailings.delete_mailing(session=session, mailing_id=mailing.id)
    session.commit()

    assert session.exec(select(TestSend)).all() == []


def test_an_upgrade_keeps_test_send_ids_out_of_the_next_messages(tmp_path, sqlite_template):
    """A migration after the test sends' (0008) that rebuilds the message table (SQLite
    copies tables) must keep its sequence above the ids test sends took: test sends are
    taken, every later migration is undone and done again, and a new mailing's messages
    come after them."""
    from tests.test_migration_0004 import alembic

    path = tmp_path / "old.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    with Session(engine) as session:
        add_clients(session, 2)
        mailing = add_mailing(session)
        activate(session, mailing)
    taken = [send(engine, mailing.id).id for _ in range(3)]
    alembic(engine, "downgrade", "0008")  # (the test sends' revision)

    upgrade(engine)
    with Session(engine) as session:
        assert session.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == (
            HEAD_REVISION
        )
        new = activate(session, add_mailing(session))
    engine.dispose()

    assert min(new) > max(taken)


def test_an_answer_the_database_cannot_store_is_still_in_the_log(engine, session):
    """The database fails after the request: the operator gets the error, and the API's
    answer (the SMS may have gone out) is not lost with it."""
    from loguru import logger

    from notifyctl.errors import Unavailable

    mailing = add_mailing(session)
    opened = []

    def open_session():
        opened.append(1)
        if len(opened) == 2:
            raise Unavailable("database gone")
        return session_scope(engine)

    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}")
    try:
        with pytest.raises(Unavailable):
            test_sends.send_test(
                open_session=open_session, mailing_id=mailing.id, phone="79160000999", post=accepted
            )
    finally:
        logger.remove(sink)
    (row,) = session.exec(select(TestSend)).all()
    assert row.error == test_sends.NO_ANSWER
    assert any(f"test send {row.id}: accepted (HTTP 200" in line for line in lines), lines


def test_a_test_send_is_in_the_audit_log_with_who_asked_for_it(engine, session):
    """A test send changes no data but sends a real SMS: the log says who sent which
    mailing's text to which phone; a refused one leaves no entry."""
    from notifyctl.models import Audit

    mailing = add_mailing(session)
    with pytest.raises(InvalidInput):
        send(engine, mailing.id, "12345")
    shown = test_sends.send_test(
        open_session=lambda: session_scope(engine, actor="cli:ops"),
        mailing_id=mailing.id,
        phone="+7 916 000 09 99",
        post=accepted,
    )
    session.expire_all()
    entries = session.exec(select(Audit).where(Audit.action == "test_sent")).all()
    assert [(e.actor, e.object_type, e.object_id) for e in entries] == [
        ("cli:ops", "mailing", mailing.id)
    ]
    assert entries[0].changes == {"test_send_id": [None, shown.id], "phone": [None, "79160000999"]}
