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
