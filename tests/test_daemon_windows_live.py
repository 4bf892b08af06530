"""A day of send windows in seconds: the daemon on a fast clock, against the real mock."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from daemon.clock import ScaledClock
from mock import server
from notifyctl.db import make_engine
from notifyctl.models import Client, MailingCreate, Message, SendWindow
from notifyctl.services.mailings import create_mailing
from tests.daemon_helpers import MockApi, run_worker, settings_for, statuses
from tests.servers import running

SPEED = 3600.0  # one simulated hour per real second


@pytest.fixture
def mock_api():
    with running(server.config()) as url:
        yield MockApi(url)


@pytest.mark.clock
def test_windows_follow_each_clients_clock_across_a_dst_change(db_url, session, mock_api):
    zones = ["Europe/Moscow", "America/New_York", "Asia/Vladivostok"]
    for n, zone in enumerate(zones * 2):
        session.add(Client(phone=f"7916000000{n}", operator_code="916", timezone=zone))
    session.commit()
    # New York moves to summer time at 02:00 local on 2027-03-14.
    mailing = create_mailing(
        session=session,
        mailing_in=MailingCreate(
            text="Good morning",
            start_at=datetime(2027, 3, 14, 5, 56, tzinfo=UTC),
            end_at=datetime(2027, 3, 14, 16, 0, tzinfo=UTC),
            send_window=SendWindow(start="09:00", end="11:00"),
        ),
        now=datetime(2027, 3, 14, 5, 55, tzinfo=UTC),  # the test's clock, not the wall's
    )
    session.commit()
    clock = ScaledClock(datetime(2027, 3, 14, 5, 55, tzinfo=UTC), speed=SPEED, wait_scale=0.0)

    run_worker(
        settings_for(db_url, mock_api),
        burst=False,
        clock=clock,
        until=lambda: statuses(db_url, mailing.id) == {"sent": 4, "expired": 2},
        timeout=40,
    )

    engine = make_engine(db_url)
    with Session(engine) as check:
        rows = check.execute(
            sa.select(Client.timezone, Message.status, Message.sent_at).join(
                Client, Client.id == Message.client_id
            )
        ).all()
    engine.dispose()
    for zone, status, sent_at in rows:
        if zone == "Asia/Vladivostok":  # 09:00 there is 23:00 UTC: after the end
            assert status == "expired"
            continue
        local = sent_at.astimezone(ZoneInfo(zone))
        assert status == "sent"
        assert 9 <= local.hour < 11, (zone, local)
        if zone == "America/New_York":
            # 09:00 EDT is 13:00 UTC; a clock that missed the DST change would say 14:00.
            assert sent_at.hour == 13, sent_at
    assert len(mock_api.received()) == 4
