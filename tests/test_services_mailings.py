"""Mailing service functions: validation, state, steering, audience."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from notifyctl.errors import Conflict, InvalidInput, NotFound
from notifyctl.models import (
    MailingCreate,
    MailingFilter,
    MailingState,
    MailingUpdate,
    Message,
    MessageStatus,
    SendWindow,
)
from notifyctl.services import audience, mailings
from notifyctl.timeutil import utcnow
from tests.factories import add_clients, add_mailing

# States, steering and refusals all follow start_at, end_at and now.
pytestmark = pytest.mark.clock


def statuses(session, mailing_id):
    rows = session.execute(
        sa.select(Message.status).where(Message.mailing_id == mailing_id).order_by(Message.id)
    )
    return [row[0] for row in rows]


def test_end_before_start_is_refused(session):
    now = utcnow()
    with pytest.raises(InvalidInput) as caught:
        mailings.create_mailing(
            session=session,
            mailing_in=MailingCreate(text="x", start_at=now, end_at=now - timedelta(seconds=1)),
        )
    assert caught.value.field == "end_at"


def test_mailing_that_already_ended_is_refused(session):
    now = utcnow()
    with pytest.raises(InvalidInput, match="past"):
        mailings.create_mailing(
            session=session,
            mailing_in=MailingCreate(
                text="x", start_at=now - timedelta(hours=2), end_at=now - timedelta(hours=1)
            ),
        )


@pytest.mark.parametrize("text", ["", "   ", "x" * 1001])
def test_text_must_be_1_to_1000_characters(session, text):
    now = utcnow()
    with pytest.raises(InvalidInput) as caught:
        mailings.create_mailing(
            session=session,
            mailing_in=MailingCreate(text=text, start_at=now, end_at=now + timedelta(hours=1)),
        )
    assert caught.value.field == "text"


def test_filter_codes_are_checked_and_deduplicated(session):
    mailing = add_mailing(session, operator_codes=["916", "916", "903"], tags=["b", "a"])
    assert (mailing.operator_codes, mailing.tags) == (["903", "916"], ["a", "b"])
    with pytest.raises(InvalidInput):
        add_mailing(session, operator_codes=["91"])


HUNDRED_TAGS = [f"tag-{n:03d}-" + "x" * 56 for n in range(100)]  # each 64 characters


@pytest.mark.parametrize(
    ("operator_codes", "tags", "field"),
    [
        ([], [*HUNDRED_TAGS, "one-more"], "filter.tags"),
        ([], ["x" * 65], "filter.tags"),
        ([], ["vip"] * 101, "filter.tags"),  # repeats count: the list is what costs
        (["916"] * 101, [], "filter.operator_codes"),
        (["9" * 65], [], "filter.operator_codes"),
        ([], ["vip"] * 100_000, "filter.tags"),
    ],
    ids=["101-tags", "long-tag", "101-repeats", "101-codes", "long-code", "100000-tags"],
)
def test_filter_lists_are_bounded_naming_the_list(session, operator_codes, tags, field):
    with pytest.raises(InvalidInput) as caught:
        add_mailing(session, operator_codes=operator_codes, tags=tags)
    assert caught.value.field == field
    assert len(str(caught.value)) < 200, "the refusal quotes none of the values"
    session.rollback()
    assert mailings.list_mailings(session=session).total == 0


def test_a_filter_of_100_values_of_64_characters_is_accepted_and_logged_briefly(session):
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}")
    try:
        mailing = add_mailing(session, operator_codes=["916"] * 100, tags=HUNDRED_TAGS)
    finally:
        logger.remove(sink)
    assert mailing.tags == sorted(HUNDRED_TAGS)
    (created,) = [line for line in lines if line.startswith("mailing created")]
    assert "… 90 more]" in created
    assert len(created) < 1_200


def test_update_refuses_an_unbounded_filter_and_keeps_the_old_one(session):
    mailing = add_mailing(session, tags=["vip"])
    with pytest.raises(InvalidInput) as caught:
        mailings.update_mailing(
            session=session,
            mailing_id=mailing.id,
            mailing_in=MailingUpdate(filter=MailingFilter(tags=[*HUNDRED_TAGS, "x"])),
        )
    assert caught.value.field == "filter.tags"
    session.rollback()
    assert mailings.get_mailing(session=session, mailing_id=mailing.id).tags == ["vip"]


def test_state_follows_the_clock_and_the_user(session):
    later = add_mailing(session, starts_in=timedelta(hours=1))
    assert mailings.mailing_state(later) is MailingState.scheduled
    assert mailings.mailing_state(later, now=later.end_at) is MailingState.finished
    now = add_mailing(session)
    assert mailings.mailing_state(now) is MailingState.running
    mailings.pause_mailing(session=session, mailing_id=now.id)
    assert mailings.mailing_state(now) is MailingState.paused
    mailings.resume_mailing(session=session, mailing_id=now.id)
    assert mailings.mailing_state(now) is MailingState.running
    mailings.cancel_mailing(session=session, mailing_id=now.id)
    assert mailings.mailing_state(now) is MailingState.cancelled


def test_pausing_twice_resuming_unpaused_and_changing_cancelled_are_conflicts(session):
    mailing = add_mailing(session)
    mailings.pause_mailing(session=session, mailing_id=mailing.id)
    with pytest.raises(Conflict):
        mailings.pause_mailing(session=session, mailing_id=mailing.id)
    mailings.resume_mailing(session=session, mailing_id=mailing.id)
    with pytest.raises(Conflict):
        mailings.resume_mailing(session=session, mailing_id=mailing.id)
    mailings.cancel_mailing(session=session, mailing_id=mailing.id)
    with pytest.raises(Conflict, match="cancelled"):
        mailings.update_mailing(
            session=session, mailing_id=mailing.id, mailing_in=MailingUpdate(text="new")
        )


def test_audience_materialises_once_per_client(session):
    add_clients(session, 3, tag="vip")
    add_clients(session, 2, tag="other", operator="903")
    mailing = add_mailing(session, tags=["vip"])
    assert audience.materialise(session=session, mailing=mailing) == 3
    assert audience.materialise(session=session, mailing=mailing) == 0
    assert audience.count_audience(session=session, operator_codes=["903"], tags=[]) == 2
    assert audience.count_audience(session=session, operator_codes=[], tags=[]) == 5


def test_cancel_turns_pending_messages_cancelled_and_keeps_sent(session):
    add_clients(session, 3)
    mailing = add_mailing(session)
    audience.materialise(session=session, mailing=mailing)
    first = (
        session.execute(sa.select(Message).where(Message.mailing_id == mailing.id))
        .scalars()
        .first()
    )
    first.status = MessageStatus.sent
    session.commit()
    mailings.cancel_mailing(session=session, mailing_id=mailing.id)
    session.commit()
    assert statuses(session, mailing.id) == ["sent", "cancelled", "cancelled"]


def test_new_filter_on_an_activated_mailing_adds_and_drops_clients(session):
    add_clients(session, 2, tag="a")
    add_clients(session, 1, tag="b", operator="903")
    mailing = add_mailing(session, tags=["a"])
    audience.materialise(session=session, mailing=mailing)
    mailing.activated_at = utcnow()
    session.commit()
    mailings.update_mailing(
        session=session,
        mailing_id=mailing.id,
        mailing_in=MailingUpdate(filter=MailingFilter(tags=["b"])),
    )
    session.commit()
    assert statuses(session, mailing.id) == ["cancelled", "cancelled", "pending"]


def test_update_validates_the_merged_times_and_window(session):
    mailing = add_mailing(session, starts_in=timedelta(hours=1))
    with pytest.raises(InvalidInput, match="later than the start"):
        mailings.update_mailing(
            session=session,
            mailing_id=mailing.id,
            mailing_in=MailingUpdate(end_at=mailing.start_at - timedelta(minutes=1)),
        )
    session.rollback()
    updated = mailings.update_mailing(
        session=session,
        mailing_id=mailing.id,
        mailing_in=MailingUpdate(send_window=SendWindow(start="9:00", end="21:00")),
    )
    assert (updated.window_start, updated.window_end) == ("09:00", "21:00")
    updated = mailings.update_mailing(
        session=session, mailing_id=mailing.id, mailing_in=MailingUpdate(clear_window=True)
    )
    assert updated.window_start is None


def test_retry_requeues_failed_messages_only(session):
    add_clients(session, 2)
    mailing = add_mailing(session)
    audience.materialise(session=session, mailing=mailing)
    session.execute(
        sa.update(Message).where(Message.mailing_id == mailing.id).values(status="failed")
    )
    session.commit()
    assert mailings.retry_failed(session=session, mailing_id=mailing.id) == 2
    session.commit()
    assert statuses(session, mailing.id) == ["pending", "pending"]


def test_retry_works_after_completion_until_the_end(session):
    add_clients(session, 1)
    mailing = add_mailing(session)
    audience.materialise(session=session, mailing=mailing)
    session.execute(sa.update(Message).values(status="failed"))
    mailing.completed_at = utcnow()
    session.commit()
    assert mailings.mailing_state(mailing) is MailingState.finished

    assert mailings.retry_failed(session=session, mailing_id=mailing.id) == 1
    assert mailings.mailing_state(mailing) is MailingState.running

    mailing.end_at = utcnow() - timedelta(seconds=1)
    session.commit()
    with pytest.raises(Conflict):
        mailings.retry_failed(session=session, mailing_id=mailing.id)


def test_delete_removes_the_mailing_and_its_messages(session):
    add_clients(session, 2)
    mailing = add_mailing(session)
    audience.materialise(session=session, mailing=mailing)
    session.commit()
    mailings.delete_mailing(session=session, mailing_id=mailing.id)
    session.commit()
    assert statuses(session, mailing.id) == []
    with pytest.raises(NotFound):
        mailings.get_mailing(session=session, mailing_id=mailing.id)


def test_list_is_newest_first_and_paged(session):
    ids = [add_mailing(session).id for _ in range(3)]
    page = mailings.list_mailings(session=session, limit=2)
    assert (page.total, [m.id for m in page.items]) == (3, ids[::-1][:2])


def test_the_global_rate_limit_never_pays_out_one_interval_twice(session):
    """A daemon that read the clock before waiting for the bucket's lock comes in late."""
    from datetime import timedelta

    from notifyctl.services.delivery import take_permits
    from notifyctl.timeutil import utcnow

    start = utcnow()
    rate = 100.0
    granted = take_permits(session=session, want=1000, rate=rate, now=start)  # the full bucket
    for step in range(1, 11):  # one second in tenths, each followed by a late-comer
        now = start + timedelta(seconds=step / 10)
        granted += take_permits(session=session, want=1000, rate=rate, now=now)
        stale = now - timedelta(seconds=0.09)
        granted += take_permits(session=session, want=1000, rate=rate, now=stale)
    assert granted <= rate * 0.2 + rate * 1  # the burst, plus one second's worth
