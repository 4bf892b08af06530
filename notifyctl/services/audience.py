"""A mailing's audience: which clients its filter matches, materialised as messages.

Clients who opted out are no part of it, unless the mailing is transactional.
"""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from notifyctl.db import upsert_insert
from notifyctl.models import Client, Mailing, Message, MessageStatus
from notifyctl.services import partitions
from notifyctl.timeutil import utcnow


def audience_conditions(
    *, operator_codes: list[str], tags: list[str], transactional: bool = False
) -> list[sa.ColumnElement]:
    """SQL conditions on ``client``: each non-empty list must contain the client's value,
    and the client must not have opted out (unless ``transactional``)."""
    conditions: list[sa.ColumnElement] = [sa.true()]
    if not transactional:
        conditions.append(Client.opted_out_at.is_(None))
    if operator_codes:
        conditions.append(Client.operator_code.in_(operator_codes))
    if tags:
        conditions.append(Client.tag.in_(tags))
    return conditions


def count_audience(
    *, session: Session, operator_codes: list[str], tags: list[str], transactional: bool = False
) -> int:
    """How many clients a filter matches now (the audience preview): opted-out clients
    count only for a transactional mailing."""
    conditions = audience_conditions(
        operator_codes=operator_codes, tags=tags, transactional=transactional
    )
    query = sa.select(sa.func.count()).select_from(Client).where(*conditions)
    return session.execute(query).scalar_one()


def materialise(*, session: Session, mailing: Mailing, now: datetime | None = None) -> int:
    """Create a pending message for every matching client that has none yet.

    One set-based ``INSERT … SELECT … ON CONFLICT DO NOTHING``: idempotent, and no
    client is loaded into memory. Returns the number of messages created.
    """
    now = now or utcnow()
    # (made when the mailing was; a database restored without them gets them here)
    partitions.ensure_for(session=session, mailing_id=mailing.id)
    conditions = audience_conditions(
        operator_codes=mailing.operator_codes,
        tags=mailing.tags,
        transactional=bool(mailing.transactional),
    )
    first_try = max(mailing.start_at, now)
    audience = sa.select(
        sa.literal(mailing.id),
        Client.id,
        sa.literal(now, Message.__table__.c.created_at.type),
        sa.literal(MessageStatus.pending.value),
        sa.literal(0),
        sa.literal(first_try, Message.__table__.c.next_attempt_at.type),
    ).where(*conditions)
    statement = (
        upsert_insert(session, Message.__table__)
        .from_select(
            ["mailing_id", "client_id", "created_at", "status", "attempts", "next_attempt_at"],
            audience,
        )
        .on_conflict_do_nothing(index_elements=["mailing_id", "client_id"])
    )
    # SQLAlchemy reports -1 for INSERT rowcounts unless asked to keep the driver's count.
    result = session.execute(statement, execution_options={"preserve_rowcount": True})
    return result.rowcount


def drop_unmatched(*, session: Session, mailing: Mailing) -> int:
    """Cancel pending messages whose client no longer matches the mailing's filter.

    (A client who opted out is not dropped here: its messages were cancelled, with their
    reason, when it did.)
    """
    conditions = audience_conditions(
        operator_codes=mailing.operator_codes, tags=mailing.tags, transactional=True
    )
    matching = sa.select(Client.id).where(*conditions)
    statement = (
        sa.update(Message)
        .where(
            Message.mailing_id == mailing.id,
            Message.status == MessageStatus.pending,
            Message.client_id.not_in(matching),
        )
        .values(status=MessageStatus.cancelled, next_attempt_at=None)
    )
    return session.execute(statement).rowcount
