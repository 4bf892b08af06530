"""Sample data for a first run (``notifyctl up --demo``): clients across timezones, two mailings."""

from datetime import datetime, timedelta

from sqlmodel import Session

from notifyctl.db import upsert_insert
from notifyctl.models import Client, Mailing, MailingCreate, MailingFilter, SendWindow
from notifyctl.services.mailings import create_mailing

DEMO_ZONES = (
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Asia/Yekaterinburg",
    "Asia/Novosibirsk",
    "Asia/Vladivostok",
    "America/New_York",
)
DEMO_OPERATORS = ("916", "926", "903", "999")
DEMO_TAGS = ("vip", "new", "regular")
PHONE_BASE = 79_990_000_000  # demo phones: 7999 000 xxxx


def seed_demo(*, session: Session, now: datetime, clients: int = 300) -> list[Mailing]:
    """Add ``clients`` demo clients (phones already taken are skipped) and two mailings.

    One mailing starts in 5 seconds and reaches everyone; the other only reaches "vip"
    clients between 09:00 and 21:00 of their own clock, so some of them wait.
    """
    rows = [
        {
            "phone": str(PHONE_BASE + n),
            "operator_code": DEMO_OPERATORS[n % len(DEMO_OPERATORS)],
            "tag": DEMO_TAGS[(n // len(DEMO_ZONES)) % len(DEMO_TAGS)],  # every tag in every zone
            "timezone": DEMO_ZONES[n % len(DEMO_ZONES)],
            "created_at": now,
            "updated_at": now,
        }
        for n in range(clients)
    ]
    session.execute(
        upsert_insert(session, Client).on_conflict_do_nothing(index_elements=["phone"]), rows
    )
    start = now + timedelta(seconds=5)
    everyone = create_mailing(
        session=session,
        mailing_in=MailingCreate(
            text="Hello from notifyctl: this is the demo mailing to every client.",
            start_at=start,
            end_at=start + timedelta(minutes=15),
        ),
    )
    vip_daytime = create_mailing(
        session=session,
        mailing_in=MailingCreate(
            text="VIP offer, sent only between 09:00 and 21:00 of your own clock.",
            start_at=start,
            end_at=start + timedelta(hours=24),
            filter=MailingFilter(tags=["vip"]),
            send_window=SendWindow(start="09:00", end="21:00"),
        ),
    )
    return [everyone, vip_daytime]
