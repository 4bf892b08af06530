"""Statistics: counts by status for all mailings and for one, with its messages."""

import json

import pytest
import sqlalchemy as sa

from notifyctl.errors import NotFound
from notifyctl.models import Attempt, Message, MessageStatus
from notifyctl.services import audience, stats
from tests.factories import add_clients, add_mailing


def test_overall_counts_every_status_of_every_mailing_including_empty_ones(session):
    add_clients(session, 4)
    busy = add_mailing(session)
    empty = add_mailing(session, tags=["nobody"])
    audience.materialise(session=session, mailing=busy)
    ids = session.execute(sa.select(Message.id).order_by(Message.id)).scalars().all()
    session.execute(sa.update(Message).where(Message.id.in_(ids[:2])).values(status="sent"))
    session.execute(sa.update(Message).where(Message.id == ids[2]).values(status="failed"))
    session.commit()

    rows = {row.mailing_id: row for row in stats.overall_stats(session=session)}
    assert rows[busy.id].total == 4
    assert rows[busy.id].by_status == {
        "pending": 1,
        "sending": 0,
        "sent": 2,
        "failed": 1,
        "expired": 0,
        "cancelled": 0,
    }
    assert rows[empty.id].total == 0
    assert set(rows[empty.id].by_status) == {s.value for s in MessageStatus}


def test_one_mailing_lists_its_messages_by_status_and_page(session):
    add_clients(session, 5)
    mailing = add_mailing(session)
    audience.materialise(session=session, mailing=mailing)
    first = session.execute(sa.select(Message).order_by(Message.id)).scalars().first()
    first.status = MessageStatus.failed
    session.commit()

    one = stats.mailing_stats(session=session, mailing_id=mailing.id)
    assert (one.total, one.by_status["pending"], one.by_status["failed"]) == (5, 4, 1)
    failed = stats.list_messages(
        session=session, mailing_id=mailing.id, status=MessageStatus.failed
    )
    assert [m.id for m in failed.items] == [first.id]
    page = stats.list_messages(session=session, mailing_id=mailing.id, limit=2, offset=4)
    assert (page.total, len(page.items)) == (5, 1)


def test_message_detail_lists_its_attempts_in_order(session):
    add_clients(session, 1)
    mailing = add_mailing(session)
    audience.materialise(session=session, mailing=mailing)
    message = session.execute(sa.select(Message)).scalars().one()
    session.add_all(
        [
            Attempt(
                message_id=message.id, mailing_id=mailing.id, http_status=503, error="server error"
            ),
            Attempt(
                message_id=message.id,
                mailing_id=mailing.id,
                http_status=200,
                response_excerpt='{"code":0}',
            ),
        ]
    )
    session.commit()
    _, attempts = stats.get_message(session=session, message_id=message.id)
    assert [a.http_status for a in attempts] == [503, 200]


def test_unknown_mailing_or_message_is_not_found(session):
    with pytest.raises(NotFound):
        stats.mailing_stats(session=session, mailing_id=42)
    with pytest.raises(NotFound):
        stats.list_messages(session=session, mailing_id=42)
    with pytest.raises(NotFound):
        stats.get_message(session=session, message_id=42)


def _stored_as(type_: sa.types.TypeEngine) -> type:
    """The SQL type under a decorator (SQLModel's AutoString is a String)."""
    return type(type_.impl_instance if isinstance(type_, sa.types.TypeDecorator) else type_)


def test_the_core_views_of_the_tables_match_the_models():
    from notifyctl.models import Mailing
    from notifyctl.tables import UTCDateTime, mailing, message

    for view, model in ((mailing, Mailing), (message, Message)):
        for column in view.c:
            stored = model.__table__.c[column.name]
            assert _stored_as(column.type) is _stored_as(stored.type), column.name
            assert isinstance(column.type, UTCDateTime) == isinstance(stored.type, UTCDateTime)


def test_the_counts_as_json_are_the_rest_apis(session):
    from notifyctl.services.counts import stats_json
    from notifyctl.services.views import stats_public

    add_clients(session, 2)
    audience.materialise(session=session, mailing=add_mailing(session))
    add_mailing(session, tags=["nobody"])
    session.commit()

    rows = stats.overall_stats(session=session)
    assert [json.dumps(stats_json(r)) for r in rows] == [
        json.dumps(stats_public(r).model_dump(mode="json")) for r in rows
    ]
