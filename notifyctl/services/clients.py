"""Clients: the directory that mailings are sent to."""

from loguru import logger
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from notifyctl.errors import Conflict, NotFound
from notifyctl.models import Client, ClientCreate, ClientUpdate, Message, MessageStatus, Page
from notifyctl.services import audit, validation
from notifyctl.timeutil import utcnow


def get_client(*, session: Session, client_id: int) -> Client:
    client = session.get(Client, client_id) if validation.storable_id(client_id) else None
    if client is None:
        raise NotFound(f"no client with id {client_id}", field="id")
    return client


def _ensure_phone_free(session: Session, phone: str, *, except_id: int | None = None) -> None:
    query = select(Client.id).where(Client.phone == phone)
    existing = session.execute(query).scalar()
    if existing is not None and existing != except_id:
        raise Conflict(f"{phone} already belongs to client {existing}", field="phone")


def create_client(*, session: Session, client_in: ClientCreate, default_timezone: str) -> Client:
    """Validate and store a new client; the phone must be new."""
    phone = validation.normalise_phone(client_in.phone)
    client = Client(
        phone=phone,
        operator_code=validation.operator_code(client_in.operator_code, phone=phone),
        tag=validation.tag(client_in.tag),
        timezone=validation.timezone(client_in.timezone or default_timezone),
    )
    _ensure_phone_free(session, phone)
    session.add(client)
    _flush_unique(session, phone)
    _record(session, "created", client.id, audit.diff({}, audit.snapshot(client)))
    logger.bind(client_id=client.id).info(
        "client created: operator {operator_code}, tag {tag!r}, timezone {timezone}",
        operator_code=client.operator_code,
        tag=client.tag,
        timezone=client.timezone,
    )
    return client


def update_client(*, session: Session, client_id: int, client_in: ClientUpdate) -> Client:
    """Change the given fields; a new phone without an operator re-derives the operator."""
    client = get_client(session=session, client_id=client_id)
    before = audit.snapshot(client)
    if client_in.phone is not None:
        phone = validation.normalise_phone(client_in.phone)
        if phone != client.phone:
            _ensure_phone_free(session, phone, except_id=client.id)
            client.phone = phone
            if client_in.operator_code is None:
                client.operator_code = validation.operator_code(None, phone=phone)
    if client_in.operator_code is not None:
        client.operator_code = validation.operator_code(client_in.operator_code, phone=client.phone)
    if client_in.tag is not None:
        client.tag = validation.tag(client_in.tag)
    if client_in.timezone is not None:
        client.timezone = validation.timezone(client_in.timezone)
    client.updated_at = utcnow()
    session.add(client)
    _flush_unique(session, client.phone)
    if changes := audit.diff(before, audit.snapshot(client)):
        _record(session, "updated", client.id, changes)
    changed = sorted(client_in.model_dump(exclude_none=True))
    logger.bind(client_id=client.id).info("client updated: {fields}", fields=", ".join(changed))
    return client


def delete_client(*, session: Session, client_id: int) -> int:
    """Delete a client and cancel its unsent messages; sent ones stay in the statistics.

    Returns how many messages were cancelled.
    """
    client = get_client(session=session, client_id=client_id)
    cancelled = session.execute(
        update(Message)
        .where(Message.client_id == client_id, Message.status == MessageStatus.pending)
        .values(status=MessageStatus.cancelled, next_attempt_at=None)
    ).rowcount
    before = audit.snapshot(client)
    session.delete(client)
    session.flush()
    _record(session, "deleted", client_id, audit.diff(before, {}))
    logger.bind(client_id=client_id).info(
        "client deleted: {cancelled} of its pending messages cancelled", cancelled=cancelled
    )
    return cancelled


def list_clients(
    *,
    session: Session,
    tag: str | None = None,
    operator_code: str | None = None,
    phone: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[Client]:
    """One page of clients in id order, filtered by exact tag, operator code or phone prefix."""
    conditions = []
    if tag is not None:
        conditions.append(Client.tag == validation.storable(tag, field="tag"))
    if operator_code is not None:
        code = validation.storable(operator_code, field="operator_code")
        conditions.append(Client.operator_code == code)
    if phone:
        conditions.append(Client.phone.startswith(validation.phone_prefix(phone)))
    limit, offset = validation.page_bounds(limit, offset)
    total = session.execute(
        select(func.count()).select_from(Client).where(*conditions)
    ).scalar_one()
    rows = session.execute(
        select(Client).where(*conditions).order_by(Client.id).limit(limit).offset(offset)
    ).scalars()
    return Page(total=total, limit=limit, offset=offset, items=list(rows))


def _record(session: Session, action: str, client_id: int | None, changes: dict) -> None:
    audit.record(
        session=session, action=action, object_type="client", object_id=client_id, changes=changes
    )


def _flush_unique(session: Session, phone: str) -> None:
    # Another writer may take the phone between our check and the insert.
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"{phone} already belongs to another client", field="phone") from None
