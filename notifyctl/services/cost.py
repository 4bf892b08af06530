"""What a mailing costs at ``NOTIFY_SEGMENT_PRICE``: recipients x segments x price.

- **estimated**: its audience x its text's segments x the price. Once it has started,
  the audience is its messages that were not cancelled (whether sent, failed, expired
  or still to go: what it set out to send); before, the clients its filter matches now
  (what a dry run counts).
- **spent**: its ``sent`` messages x segments x the price. The segments are those of the
  text now: a text changed while the mailing runs is priced as it reads now.

Amounts are exact ``Decimal`` products, rounded half up to 2 decimal places (cents) for
every front end. No price set: no cost at all (``None``), never a zero that looks real.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlmodel import Session

from notifyctl.models import MailingCreate, MessageStatus
from notifyctl.services.counts import MailingStats
from notifyctl.services.mailings import dry_run_mailing, get_mailing, mailing_audience
from notifyctl.services.segments import SegmentCount, count_segments

#: Amounts are shown to this step (the cents of most currencies).
CENTS = Decimal("0.01")


def amount(recipients: int, segments: int, price: Decimal) -> Decimal:
    """``recipients x segments x price``, rounded half up to cents."""
    return (recipients * segments * price).quantize(CENTS, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a dry run reports: the audience now, the text's segments, the estimated cost
    (``None`` without a price)."""

    audience: int
    segments: SegmentCount
    price: Decimal | None
    estimated: Decimal | None


@dataclass(frozen=True, slots=True)
class MailingCost:
    """One mailing's estimated and spent cost, with what they are made of."""

    price: Decimal
    segments: int
    audience: int
    estimated: Decimal
    spent: Decimal


def plan_mailing(
    *,
    session: Session,
    mailing_in: MailingCreate,
    price: Decimal | None,
    now: datetime | None = None,
) -> Plan:
    """Check a new mailing as ``create_mailing`` would; return its audience, segments and
    estimated cost. Nothing is stored."""
    audience = dry_run_mailing(session=session, mailing_in=mailing_in, now=now)
    segments = count_segments(mailing_in.text)
    estimated = None if price is None else amount(audience, segments.segments, price)
    return Plan(audience, segments, price, estimated)


def mailing_cost(
    *, session: Session, stats: MailingStats, price: Decimal | None
) -> MailingCost | None:
    """The estimated and spent cost of the mailing whose counts are ``stats``
    (``stats.mailing_stats``); None without a price."""
    if price is None:
        return None
    mailing = get_mailing(session=session, mailing_id=stats.mailing_id)
    segments = count_segments(mailing.text).segments
    if mailing.activated_at is not None:
        audience = stats.total - stats.by_status.get(MessageStatus.cancelled.value, 0)
    else:
        audience = mailing_audience(session=session, mailing=mailing)
    sent = stats.by_status.get(MessageStatus.sent.value, 0)
    return MailingCost(
        price=price,
        segments=segments,
        audience=audience,
        estimated=amount(audience, segments, price),
        spent=amount(sent, segments, price),
    )
