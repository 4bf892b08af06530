"""What a mailing costs at NOTIFY_SEGMENT_PRICE, on SQLite and PostgreSQL; the setting."""

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from notifyctl.config import Settings
from notifyctl.models import MailingCreate, MailingFilter, Message, MessageStatus
from notifyctl.services import cost, delivery, stats
from notifyctl.services.segments import Encoding, SegmentCount
from notifyctl.timeutil import utcnow
from tests.factories import add_clients, add_mailing

TWO_SEGMENTS = "a" * 161


def new_mailing(text: str = TWO_SEGMENTS, tags: list[str] | None = None) -> MailingCreate:
    now = utcnow()
    return MailingCreate(
        text=text,
        start_at=now,
        end_at=now + timedelta(hours=1),
        filter=MailingFilter(tags=tags or []),
    )


def test_a_plan_prices_audience_times_segments(session):
    add_clients(session, 3, tag="vip")
    add_clients(session, 2, tag="new", operator="903")
    plan = cost.plan_mailing(
        session=session, mailing_in=new_mailing(tags=["vip"]), price=Decimal("0.05")
    )
    assert (plan.audience, plan.segments) == (3, SegmentCount(Encoding.gsm7, 161, 2))
    assert plan.estimated == Decimal("0.30")


def test_a_plan_without_a_price_has_no_cost(session):
    add_clients(session, 3)
    plan = cost.plan_mailing(session=session, mailing_in=new_mailing(), price=None)
    assert (plan.audience, plan.segments.segments, plan.estimated) == (3, 2, None)


def test_amounts_are_rounded_half_up_to_cents():
    assert cost.amount(1, 1, Decimal("0.005")) == Decimal("0.01")
    assert cost.amount(3, 1, Decimal("0.0033")) == Decimal("0.01")
    assert cost.amount(1000, 3, Decimal("0.0125")) == Decimal("37.50")
    assert str(cost.amount(0, 2, Decimal("1"))) == "0.00"


def mailing_cost(session, mailing_id: int, price: str | None):
    counts = stats.mailing_stats(session=session, mailing_id=mailing_id)
    return cost.mailing_cost(session=session, stats=counts, price=Decimal(price) if price else None)


def test_before_it_starts_a_mailing_is_estimated_on_the_clients_its_filter_matches(session):
    add_clients(session, 4, tag="vip")
    mailing = add_mailing(session, text=TWO_SEGMENTS, tags=["vip"], starts_in=timedelta(hours=1))
    found = mailing_cost(session, mailing.id, "0.10")
    assert (found.audience, found.segments, found.estimated, found.spent) == (
        4,
        2,
        Decimal("0.80"),
        Decimal("0.00"),
    )
    assert mailing_cost(session, mailing.id, None) is None


def test_once_started_the_estimate_counts_its_messages_not_cancelled_and_spent_its_sent(session):
    add_clients(session, 5)
    mailing = add_mailing(session, text=TWO_SEGMENTS)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    ids = (
        session.execute(
            sa.select(Message.id).where(Message.mailing_id == mailing.id).order_by(Message.id)
        )
        .scalars()
        .all()
    )
    sent, failed, cancelled = MessageStatus.sent, MessageStatus.failed, MessageStatus.cancelled
    for message_id, status in zip(ids, [sent, sent, failed, cancelled, None], strict=True):
        if status is None:
            continue  # the fifth stays pending
        session.execute(sa.update(Message).where(Message.id == message_id).values(status=status))
    add_clients(session, 3, operator="903")  # joined after the start: not in its audience
    session.expire_all()
    found = mailing_cost(session, mailing.id, "0.25")
    assert (found.audience, found.estimated, found.spent) == (4, Decimal("2.00"), Decimal("1.00"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0.05", Decimal("0.05")), ("3", Decimal("3")), (" 0.5 ", Decimal("0.5")), ("", None)],
)
def test_the_segment_price_setting_reads_plain_decimals(monkeypatch, raw, expected):
    monkeypatch.setenv("NOTIFY_SEGMENT_PRICE", raw)
    assert Settings().segment_price == expected


@pytest.mark.parametrize("raw", ["-0.05", "abc", "1e3", "NaN", "Infinity", "0,05", "0.05 EUR"])
def test_a_segment_price_that_is_no_plain_non_negative_decimal_is_refused(monkeypatch, raw):
    monkeypatch.setenv("NOTIFY_SEGMENT_PRICE", raw)
    with pytest.raises(ValidationError) as caught:
        Settings()
    ((location, message),) = [(e["loc"], e["msg"]) for e in caught.value.errors()]
    assert location == ("segment_price",)
    assert "0.05" in message
