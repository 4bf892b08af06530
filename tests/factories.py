"""Small builders for test data."""

from datetime import datetime, timedelta

from notifyctl.models import Client, Mailing, MailingCreate, MailingFilter, SendWindow
from notifyctl.services.mailings import create_mailing
from notifyctl.timeutil import utcnow


def add_mailing(
    session,
    *,
    text: str = "Hello",
    starts_in: timedelta = timedelta(0),
    lasts: timedelta = timedelta(hours=1),
    operator_codes: list[str] | None = None,
    tags: list[str] | None = None,
    window: tuple[str, str] | None = None,
    now: datetime | None = None,
) -> Mailing:
    """A mailing starting ``starts_in`` after ``now`` (the real time unless a test's clock)."""
    now = now or utcnow()
    start = now + starts_in
    mailing = create_mailing(
        session=session,
        now=now,
        mailing_in=MailingCreate(
            text=text,
            start_at=start,
            end_at=start + lasts,
            filter=MailingFilter(operator_codes=operator_codes or [], tags=tags or []),
            send_window=SendWindow(start=window[0], end=window[1]) if window else None,
        ),
    )
    session.commit()
    return mailing


def add_clients(session, count: int, *, tag: str = "", operator: str = "916", tz: str = "UTC"):
    rows = [
        Client(phone=f"7{operator}{n:07d}", operator_code=operator, tag=tag, timezone=tz)
        for n in range(count)
    ]
    session.add_all(rows)
    session.commit()
    return rows


def add_history(session, *, ended: datetime, clients: int = 7, lasts=timedelta(hours=2)):
    """A finished mailing that ended at ``ended``: its messages sent, failed, expired and
    cancelled in turn, with one or two attempts each (started when they were made)."""
    import sqlalchemy as sa

    from notifyctl.models import Attempt, Message
    from notifyctl.services import audience

    start = ended - lasts
    existing = session.execute(sa.select(sa.func.count()).select_from(Client)).scalar_one()
    if existing < clients:
        add_clients(session, clients - existing, operator="917")
    mailing = add_mailing(session, now=start, lasts=lasts)
    audience.materialise(session=session, mailing=mailing, now=start)
    messages = session.execute(
        sa.select(Message).where(Message.mailing_id == mailing.id).order_by(Message.id)
    ).scalars()
    for n, message in enumerate(messages):
        status = ("sent", "sent", "failed", "expired", "cancelled", "sent")[n % 6]
        at = start + timedelta(minutes=7 * n)
        tries = 0 if status in ("expired", "cancelled") else 1 + n % 2
        message.status, message.attempts = status, tries
        message.next_attempt_at = None
        message.sent_at = at if status == "sent" else None
        session.add_all(
            Attempt(
                message_id=message.id,
                mailing_id=message.mailing_id,
                started_at=at - timedelta(seconds=30 * t),
            )
            for t in range(tries)
        )
    mailing.activated_at, mailing.completed_at = start, ended
    session.add(mailing)
    session.commit()
    return mailing
