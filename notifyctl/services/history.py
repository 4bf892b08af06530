"""A client's history: every message made for it, across mailings (the client's page)."""

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from notifyctl.models import Mailing, Message, Page
from notifyctl.services import validation
from notifyctl.services.clients import get_client


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """One message of a client with what names its mailing."""

    message: Message
    mailing_name: str | None
    mailing_text: str


def client_messages(
    *, session: Session, client_id: int, limit: int = 50, offset: int = 0
) -> Page[ClientMessage]:
    """One page of a client's messages of every mailing, newest first."""
    get_client(session=session, client_id=client_id)
    limit, offset = validation.page_bounds(limit, offset)
    mine = Message.client_id == client_id
    total = session.execute(
        sa.select(sa.func.count()).select_from(Message).where(mine)
    ).scalar_one()
    rows = session.execute(
        sa.select(Message, Mailing.name, Mailing.text)
        .join(Mailing, Mailing.id == Message.mailing_id)
        .where(mine)
        .order_by(Message.id.desc())
        .limit(limit)
        .offset(offset)
    )
    items = [ClientMessage(message, name, text) for message, name, text in rows]
    return Page(total=total, limit=limit, offset=offset, items=items)
