"""An admin UI for browser tests that need no daemon: a database holding a mailing in
every state, with messages in every status, served by uvicorn; signed in by login link.

Mailings: 1 running (messages in every status, attempts, long errors; test sends, one
refused), 2 scheduled (a long text with an unbroken address), 3 paused, 4 cancelled,
5 finished. Client 1 opted out (its messages: mailings 1 and 5); client 2 did not. The
changes were made by an operator (``OPERATOR``), so the audit log has entries by them and
by the opt-out, with values long enough to be cut.
"""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from playwright.sync_api import Browser, BrowserContext, Page
from sqlalchemy.engine import Engine
from sqlmodel import Session

from notifyctl.config import Settings
from notifyctl.db import ACTOR, make_engine, session_scope
from notifyctl.models import Attempt, Client, Message, MessageStatus
from notifyctl.services import audience, mailings, optout, test_sends
from notifyctl.services.delivery import AttemptRecord
from notifyctl.timeutil import utcnow
from tests.factories import add_mailing
from tests.servers import running
from web.app import create_app

LOGIN = "nfy_ui-browser-login-token"
OPERATOR = "oidc:ops@example.com"  #: who made the seeded changes, as the audit log says
OPTED_OUT = 1  #: the client who opted out
CLIENTS = 60
LONG_ERROR = (
    "HTTP 503 from the sending API after 5 attempts: upstream connect error or disconnect/"
    "reset before headers. reset reason: connection failure, transport failure reason: "
    "delayed connect error: 111"
)
LONG_TEXT = (
    "Black Friday at our stores: -30% on everything today only, and free delivery over "
    "3000 roubles. Details and the list of stores: "
    "https://shop.example.com/promotions/black-friday/2026/terms-and-conditions?utm_source=sms"
)
# Statuses given to mailing 1's messages, in client order (the rest stay pending).
SPREAD = [
    *[MessageStatus.sent] * 25,
    *[MessageStatus.failed] * 6,
    *[MessageStatus.expired] * 4,
    *[MessageStatus.cancelled] * 3,
    *[MessageStatus.sending] * 2,
]


def seed(url: str) -> None:
    """Clients with every timezone shape, and mailings 1-5 (see the module docstring)."""
    engine = make_engine(url)
    now = utcnow()
    zones = ["Europe/Moscow", "Asia/Vladivostok", "America/Argentina/Buenos_Aires", "UTC"]
    with Session(engine, info={ACTOR: OPERATOR}) as session:
        session.add_all(
            Client(
                phone=f"79{n:09d}",
                operator_code=f"9{n % 3}0",
                tag="vip" if n % 2 else "loyal-customers-of-the-northern-region",
                timezone=zones[n % len(zones)],
            )
            for n in range(CLIENTS)
        )
        session.commit()
        running_one = add_mailing(session, text="Black Friday: -30% today only")
        audience.materialise(session=session, mailing=running_one)
        session.commit()
        running_id = running_one.id
        messages = session.execute(
            sa.select(Message.id).where(Message.mailing_id == running_one.id).order_by(Message.id)
        ).scalars()
        for message_id, status in zip(messages, SPREAD, strict=False):
            values: dict = {"status": status, "attempts": 1}
            if status is MessageStatus.sent:
                values["sent_at"] = now - timedelta(seconds=message_id)
            if status in (MessageStatus.failed, MessageStatus.expired):
                values |= {"last_error": LONG_ERROR, "attempts": 5}
            session.execute(sa.update(Message).where(Message.id == message_id).values(**values))
            session.add(
                Attempt(
                    message_id=message_id,
                    mailing_id=running_one.id,
                    started_at=now - timedelta(seconds=message_id),
                    duration_ms=42.5,
                    http_status=200 if status is MessageStatus.sent else 503,
                    response_excerpt='{"code": 0, "message": "OK"}'
                    if status is MessageStatus.sent
                    else LONG_ERROR,
                    error=None if status is MessageStatus.sent else LONG_ERROR,
                )
            )
        session.commit()
        add_mailing(session, text=LONG_TEXT, starts_in=timedelta(days=1), tags=["vip"])
        paused = add_mailing(
            session, text="Paused until the stores open", window=("09:00", "21:00")
        )
        mailings.pause_mailing(session=session, mailing_id=paused.id)
        cancelled = add_mailing(session, text="Cyber Monday", starts_in=timedelta(days=2))
        mailings.cancel_mailing(session=session, mailing_id=cancelled.id)
        session.commit()
        earlier = now - timedelta(days=1)
        finished = add_mailing(
            session, text="Yesterday's news", now=earlier, operator_codes=["900"]
        )
        audience.materialise(session=session, mailing=finished, now=earlier)
        session.execute(
            sa.update(Message)
            .where(Message.mailing_id == finished.id)
            .values(status=MessageStatus.sent, sent_at=earlier + timedelta(minutes=1), attempts=1)
        )
        session.commit()
        optout.opt_out(session=session, client_id=OPTED_OUT)
        session.commit()
    answers = {
        "79161234567": AttemptRecord(
            started_at=now, duration_ms=38.2, http_status=200, response_excerpt='{"code": 0}'
        ),
        "79161234568": AttemptRecord(
            started_at=now + timedelta(seconds=5),
            duration_ms=1012.7,
            http_status=503,
            response_excerpt=LONG_ERROR,
            error="HTTP 503",
        ),
    }
    for phone, answer in answers.items():  # as send_test stores one: before, then after
        with session_scope(engine, actor=OPERATOR) as session:
            test, _text = test_sends.start_test_send(
                session=session, mailing_id=running_id, phone=phone
            )
        with session_scope(engine, actor=OPERATOR) as session:
            test_sends.record_test_send(session=session, test_send=test, attempt=answer)
    engine.dispose()


@dataclass
class Site:
    url: str  #: where the admin UI answers
    engine: Engine  #: its database, for a test to change behind the UI's back


@contextmanager
def serving(directory: Path, sqlite_template: Path) -> Iterator[Site]:
    """The seeded admin UI on a loopback port, with no sign-in provider (``signed_in``)."""
    path = directory / "ui.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    seed(url)
    engine = make_engine(url)
    app = create_app(settings=Settings(database_url=url), engine=engine, login_token=LOGIN)
    import uvicorn

    try:
        with running(uvicorn.Config(app, log_level="warning")) as site:
            yield Site(url=site, engine=engine)
    finally:
        engine.dispose()


def signed_in(browser: Browser, site: str, **context_options) -> tuple[BrowserContext, Page]:
    """A new browser context (``context_options`` as Playwright takes them), signed in."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{site}/admin/login?token={LOGIN}")
    assert page.url == f"{site}/admin/", page.url
    return context, page
