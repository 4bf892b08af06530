"""A mailing's test sends listed (``test_sends.list_test_sends``), on SQLite and
PostgreSQL: newest first, a page at a time, only that mailing's; bad paging and unknown
mailings are refused."""

from datetime import UTC, datetime, timedelta

import pytest

from notifyctl.db import session_scope
from notifyctl.errors import InvalidInput, NotFound
from notifyctl.services import test_sends
from notifyctl.services.delivery import AttemptRecord
from tests.factories import add_mailing

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def answered_at(minute: int, status: int = 200):
    """A stand-in for the request: answered ``status``, started ``minute`` after START."""

    def post(message_id: int, phone: str, text: str) -> AttemptRecord:
        return AttemptRecord(
            started_at=START + timedelta(minutes=minute),
            duration_ms=12.0,
            http_status=status,
            response_excerpt='{"code": 0, "message": "OK"}' if status == 200 else "busy",
            error=None if status == 200 else f"HTTP {status}",
        )

    return post


def send(engine, mailing_id: int, minute: int, phone: str = "79160000999", status: int = 200):
    return test_sends.send_test(
        open_session=lambda: session_scope(engine),
        mailing_id=mailing_id,
        phone=phone,
        post=answered_at(minute, status),
    )


def listed(session, mailing_id: int, **paging) -> list[int]:
    page = test_sends.list_test_sends(session=session, mailing_id=mailing_id, **paging)
    return [test.id for test in page.items]


def test_test_sends_are_listed_newest_first_with_their_answers(engine, session):
    mailing = add_mailing(session)
    first = send(engine, mailing.id, minute=1, phone="+7 916 123-45-67")
    refused = send(engine, mailing.id, minute=3, status=503)
    second = send(engine, mailing.id, minute=2)

    page = test_sends.list_test_sends(session=session, mailing_id=mailing.id)

    assert page.total == 3
    assert [test.id for test in page.items] == [refused.id, second.id, first.id]
    shown = [test_sends.to_public(test) for test in page.items]
    assert shown[0] == refused
    assert (shown[0].accepted, shown[0].http_status, shown[0].error) == (False, 503, "HTTP 503")
    assert shown[2] == first
    assert (shown[2].phone, shown[2].at) == ("79161234567", START + timedelta(minutes=1))


def test_the_list_is_paged(engine, session):
    mailing = add_mailing(session)
    ids = [send(engine, mailing.id, minute=n).id for n in range(5)]
    newest_first = ids[::-1]

    assert listed(session, mailing.id, limit=2) == newest_first[:2]
    assert listed(session, mailing.id, limit=2, offset=2) == newest_first[2:4]
    assert listed(session, mailing.id, limit=2, offset=4) == newest_first[4:]
    page = test_sends.list_test_sends(session=session, mailing_id=mailing.id, offset=10)
    assert (page.total, page.items) == (5, [])


def test_only_the_mailings_own_test_sends_are_listed(engine, session):
    mine, other = add_mailing(session), add_mailing(session)
    kept = send(engine, mine.id, minute=1).id
    send(engine, other.id, minute=2)

    assert listed(session, mine.id) == [kept]
    assert listed(session, add_mailing(session).id) == []


def test_an_interrupted_test_send_is_listed_as_not_accepted(engine, session):
    mailing = add_mailing(session)
    with session_scope(engine) as own:
        test, _text = test_sends.start_test_send(
            session=own, mailing_id=mailing.id, phone="79160000999"
        )  # no answer ever recorded: the process died mid-request

    (row,) = test_sends.list_test_sends(session=session, mailing_id=mailing.id).items

    shown = test_sends.to_public(row)
    assert (shown.id, shown.accepted, shown.error) == (test.id, False, test_sends.NO_ANSWER)


def test_an_unknown_mailing_or_bad_paging_is_refused(session):
    mailing = add_mailing(session)
    with pytest.raises(NotFound) as unknown:
        test_sends.list_test_sends(session=session, mailing_id=mailing.id + 1)
    assert unknown.value.field == "id"
    with pytest.raises(NotFound):
        test_sends.list_test_sends(session=session, mailing_id=2**70)
    bad = [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"offset": -1}, "offset")]
    for paging, field in bad:
        with pytest.raises(InvalidInput) as caught:
            test_sends.list_test_sends(session=session, mailing_id=mailing.id, **paging)
        assert caught.value.field == field
