"""Opt-out: a client who asked for no more messages gets none but transactional ones.

What opting out means, wherever it is looked at:

- a mailing's audience leaves opted-out clients out, unless the mailing is transactional
  (``services.audience``);
- opting out cancels the client's pending messages of non-transactional mailings at once,
  with the reason ``opted out`` (``message.last_error``);
- a message a daemon holds (claimed: ``sending``) is that daemon's to settle: its claim
  cancelled it had the client opted out by then (``delivery.claim``), and the daemon looks
  the clients of the messages it holds up again and again (``opted_out_among``), cancelling
  those that opted out since, before any request (``daemon.optouts``);
- opting in again brings back nothing that was cancelled: it applies to what comes next.
"""

from datetime import datetime

import sqlalchemy as sa
from loguru import logger
from sqlmodel import Session

from notifyctl.db import locked
from notifyctl.models import Client, Mailing, Message, MessageStatus
from notifyctl.services import audit
from notifyctl.services.clients import get_client
from notifyctl.timeutil import utcnow

#: the reason (``message.last_error``) of a message cancelled because its client opted out
OPTED_OUT = "opted out"
LOOKUP_CHUNK = 500  # client ids per look-up statement


def opted_out() -> sa.ColumnElement[bool]:
    """The condition on ``client`` of a client who opted out."""
    return Client.opted_out_at.is_not(None)


def opt_out(*, session: Session, client_id: int, now: datetime | None = None) -> tuple[Client, int]:
    """Opt a client out and cancel its pending messages of non-transactional mailings.

    Idempotent: a client already opted out keeps the time it first did (anything left
    pending meanwhile is cancelled all the same). Returns the client and how many of its
    messages were cancelled.
    """
    client = _locked_client(session, client_id)
    if client.opted_out_at is None:
        before = audit.snapshot(client)
        client.opted_out_at = client.updated_at = now or utcnow()
        session.add(client)
        session.flush()
        _record(session, "opted_out", client, before)
    cancelled = cancel_pending(session=session, of_clients=Message.client_id == client.id)
    logger.bind(client_id=client.id).info(
        "client opted out: {cancelled} pending messages of non-transactional mailings cancelled",
        cancelled=cancelled,
    )
    return client, cancelled


def opt_in(*, session: Session, client_id: int, now: datetime | None = None) -> Client:
    """Let a client receive every mailing again; what an opt-out cancelled stays cancelled.

    Idempotent: a client not opted out is left as it is.
    """
    client = _locked_client(session, client_id)
    if client.opted_out_at is not None:
        before = audit.snapshot(client)
        client.opted_out_at = None
        client.updated_at = now or utcnow()
        session.add(client)
        session.flush()
        _record(session, "opted_in", client, before)
        logger.bind(client_id=client.id).info("client opted in")
    return client


def _locked_client(session: Session, client_id: int) -> Client:
    """The client as stored now, its row locked until the transaction ends (PostgreSQL):
    of two opt-outs at once, the second sees the first's and changes nothing (the first
    time stays, one audit entry). SQLite has one writer at a time."""
    get_client(session=session, client_id=client_id)
    query = sa.select(Client).where(Client.id == client_id)
    query = query.execution_options(populate_existing=True)
    return session.execute(locked(query, session, skip_locked=False)).scalar_one()


def _record(session: Session, action: str, client: Client, before: dict) -> None:
    """The audit log's entry of an opt-out or opt-in (``opted_out_at``: [old, new])."""
    audit.record(
        session=session,
        action=action,
        object_type="client",
        object_id=client.id,
        changes=audit.diff(before, audit.snapshot(client)),
    )


def cancel_pending(*, session: Session, of_clients: sa.ColumnElement[bool]) -> int:
    """Cancel the pending messages of non-transactional mailings whose client meets
    ``of_clients`` (a condition on ``message.client_id``), with the reason ``opted out``."""
    ordinary = sa.select(Mailing.id).where(Mailing.transactional.is_(False))
    return session.execute(
        sa.update(Message)
        .where(
            of_clients,
            Message.status == MessageStatus.pending,
            Message.mailing_id.in_(ordinary.scalar_subquery()),
        )
        .values(status=MessageStatus.cancelled, next_attempt_at=None, last_error=OPTED_OUT)
        .execution_options(synchronize_session=False)
    ).rowcount


def opted_out_among(*, session: Session, client_ids: list[int]) -> set[int]:
    """Which of these clients have opted out (looked up by primary key: the daemon asks
    about the few hundred clients of the messages it holds, several times a second)."""
    found: set[int] = set()
    for start in range(0, len(client_ids), LOOKUP_CHUNK):
        chunk = client_ids[start : start + LOOKUP_CHUNK]
        found.update(
            session.execute(sa.select(Client.id).where(Client.id.in_(chunk), opted_out())).scalars()
        )
    return found
