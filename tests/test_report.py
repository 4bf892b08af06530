"""The daily statistics email: content, once a day across daemons, SMTP trouble survived."""

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select

from daemon.worker import Worker
from notifyctl.config import Settings, get_settings
from notifyctl.models import Message, MessageStatus, ReportRun
from notifyctl.services import delivery
from notifyctl.services.report import build_report, render_text
from notifyctl.timeutil import utcnow
from tests.factories import add_clients, add_mailing
from tests.servers import free_port

pytestmark = pytest.mark.clock

RECIPIENTS = ["ops@example.com", "boss@example.com"]
#: The day the daemon's report tests live on, whatever the wall clock says (midnight UTC).
DAY = datetime(2026, 12, 1, tzinfo=UTC)


class Inbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


class FixedClock:
    """A clock that says what the test tells it; retries do not wait."""

    speed = 1.0
    wait_scale = 0.0

    def __init__(self, now: datetime) -> None:
        self.now_value = now

    def now(self) -> datetime:
        return self.now_value


def report_settings(db_url: str, port: int, **extra) -> Settings:
    return Settings(
        database_url=db_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        report_to=RECIPIENTS,
        report_time="08:00",
        report_timezone="Europe/Moscow",
        **extra,
    )


def daemon(engine, settings, clock) -> Worker:
    return Worker(engine=engine, settings=settings, clock=clock)


def finished_mailing(session, *, sent: int, failed: int, text: str = "Sale", at=None):
    """A mailing that ran from an hour before ``at`` (the test's clock) and is all final.

    Without ``at`` it is the real now: for the CLI, which reads the wall clock itself."""
    at = at or utcnow()
    add_clients(session, sent + failed, operator=f"9{len(text):02d}")
    started = at - timedelta(hours=1)
    mailing = add_mailing(
        session,
        text=text,
        operator_codes=[f"9{len(text):02d}"],
        lasts=timedelta(hours=2),
        now=started,
    )
    delivery.activate(session=session, mailing=mailing, now=started)
    rows = session.exec(select(Message).where(Message.mailing_id == mailing.id)).all()
    for index, message in enumerate(rows):
        message.status = MessageStatus.sent if index < sent else MessageStatus.failed
    session.commit()
    return mailing


def test_the_report_counts_each_mailing_of_the_last_day(session):
    noon = DAY + timedelta(hours=12)
    first = finished_mailing(session, sent=8, failed=2, text="Sale", at=noon)
    second = finished_mailing(session, sent=3, failed=0, text="Black Friday", at=noon)
    report = build_report(session=session, now=noon)
    rows = {row.mailing_id: row for row in report.rows}
    assert set(rows) == {first.id, second.id}
    assert (rows[first.id].total, rows[first.id].by_status["failed"]) == (10, 2)
    assert rows[first.id].delivery_rate == 0.8
    assert report.totals["sent"] == 11
    text = render_text(report, tz="UTC")
    assert "delivered 80.0%" in text
    assert "delivered 100.0%" in text


def test_a_mailing_over_before_the_last_day_is_not_in_the_report(session):
    mailing = finished_mailing(session, sent=1, failed=0, at=DAY)
    later = mailing.end_at + timedelta(days=2)
    assert build_report(session=session, now=later).rows == []


def test_the_daily_job_sends_once_at_the_configured_local_time(db_url, engine, session, smtp):
    controller, inbox = smtp
    settings = report_settings(db_url, controller.port)
    # 07:59 in Moscow (UTC+3) is 04:59 UTC: not yet; 08:00 is the moment.
    clock = FixedClock(DAY + timedelta(hours=4, minutes=59))
    finished_mailing(session, sent=8, failed=2, at=clock.now_value)
    first, second = daemon(engine, settings, clock), daemon(engine, settings, clock)
    assert first.job_report() is False
    assert inbox.messages == []
    clock.now_value += timedelta(minutes=1)
    assert first.job_report() is True
    assert second.job_report() is False  # another daemon: already sent today
    restarted = daemon(engine, settings, clock)
    assert restarted.job_report() is False  # a restart: still sent today
    clock.now_value += timedelta(hours=20)  # the next local day, 04:00: not yet
    assert second.job_report() is False
    clock.now_value += timedelta(hours=4)
    assert second.job_report() is True
    assert len(inbox.messages) == 2

    email = inbox.messages[0]
    assert email["To"] == ", ".join(RECIPIENTS)
    plain = email.get_body(("plain",)).get_content()
    html = email.get_body(("html",)).get_content()
    assert "delivered 80.0%" in plain
    assert "sent 8, failed 2" in plain
    assert '<td align="right">80.0%</td>' in html


def test_smtp_down_is_retried_logged_and_sent_when_it_is_back(db_url, engine, session, smtp):
    controller, inbox = smtp
    down = report_settings(db_url, free_port())  # nobody listens there
    clock = FixedClock(DAY + timedelta(hours=12))
    finished_mailing(session, sent=1, failed=0, at=clock.now_value)
    assert daemon(engine, down, clock).job_report() is False
    assert session.exec(select(ReportRun)).all() == []  # the day was given back
    back = report_settings(db_url, controller.port)
    assert daemon(engine, back, clock).job_report() is True
    assert len(inbox.messages) == 1
    session.expire_all()
    assert session.exec(select(ReportRun)).one().sent_at is not None


def test_a_claim_left_by_a_dead_daemon_is_taken_over_when_stale(db_url, engine, session, smtp):
    controller, inbox = smtp
    clock = FixedClock(DAY + timedelta(hours=12))
    day = clock.now_value.astimezone(ZoneInfo("Europe/Moscow")).date()
    session.add(ReportRun(day=day.isoformat(), owner="dead", claimed_at=clock.now_value))
    session.commit()
    settings = report_settings(db_url, controller.port)
    assert daemon(engine, settings, clock).job_report() is False
    clock.now_value += timedelta(minutes=11)
    assert daemon(engine, settings, clock).job_report() is True
    assert len(inbox.messages) == 1


def test_report_show_and_send_from_the_cli(cli, session, smtp, monkeypatch):
    controller, inbox = smtp
    finished_mailing(session, sent=8, failed=2)
    shown = cli("report", "show", "--json")
    assert shown.exit_code == 0, shown.output
    import json

    data = json.loads(shown.output)
    assert data["mailings"][0]["delivery_rate"] == 0.8
    assert cli("report", "show").exit_code == 0
    for name, value in {
        "NOTIFY_SMTP_HOST": "127.0.0.1",
        "NOTIFY_SMTP_PORT": str(controller.port),
        "NOTIFY_SMTP_SECURITY": "none",
        "NOTIFY_REPORT_TO": '["ops@example.com"]',
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    sent = cli("report", "send")
    assert sent.exit_code == 0, sent.output
    assert len(inbox.messages) == 1


def test_report_send_without_smtp_is_exit_2_naming_the_setting(cli):
    """A setting missing is the caller's to fix (2); 6 is for an SMTP server that fails."""
    answer = cli("report", "send")
    assert answer.exit_code == 2
    assert answer.stderr == (
        "error: NOTIFY_SMTP_HOST: is not set; the report needs NOTIFY_SMTP_HOST and "
        "NOTIFY_REPORT_TO\n"
    )
