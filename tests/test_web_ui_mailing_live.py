"""A mailing's page in a real browser: its message list follows the mailing while it may
still send, and stops asking once it is over; cancelling asks for confirmation first.

No daemon runs: the test does its work in the database (activation, outcomes, the end),
and the page must show it without being reloaded.
"""

from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect
from sqlmodel import Session

from notifyctl.models import Mailing, Message, MessageStatus
from notifyctl.services import audience
from notifyctl.timeutil import utcnow
from tests.factories import add_mailing
from tests.test_web_ui_browser import chromium, watch_csp  # noqa: F401 (a fixture)
from tests.ui_site import CLIENTS, serving, signed_in

pytestmark = pytest.mark.slow
VIP = CLIENTS // 2  # tests/ui_site.py tags every other client "vip"


@pytest.fixture(scope="module")
def site(tmp_path_factory, sqlite_template):
    with serving(tmp_path_factory.mktemp("live"), sqlite_template) as served:
        yield served


@pytest.fixture
def page(chromium, site):  # noqa: F811
    context, page = signed_in(chromium, site.url, viewport={"width": 1280, "height": 900})
    yield page
    context.close()


def new_mailing(site, **options) -> int:
    with Session(site.engine) as session:
        return add_mailing(session, **options).id


def test_the_message_list_follows_a_running_mailing_until_it_ends(page, site):
    mailing_id = new_mailing(site, text="Live", tags=["vip"])
    violations = watch_csp(page)
    page.goto(f"{site.url}/admin/mailings/{mailing_id}")
    rows = page.locator("#messages tbody tr")
    expect(rows).to_have_text(["No messages."])

    # The daemon activates it: the list fills in, without a reload.
    with Session(site.engine) as session:
        audience.materialise(session=session, mailing=session.get(Mailing, mailing_id))
        session.commit()
    expect(rows).to_have_count(VIP)
    expect(page.locator("#messages")).to_contain_text("pending")

    # A status chosen in the filter holds across the refreshes.
    page.get_by_label("Status", exact=True).select_option("pending")
    expect(rows).to_have_count(VIP)
    first_five = (
        sa.select(Message.id)
        .where(Message.mailing_id == mailing_id)
        .order_by(Message.id)
        .limit(5)
        .scalar_subquery()
    )
    with Session(site.engine) as session:
        session.execute(
            sa.update(Message)
            .where(Message.id.in_(first_five))
            .values(status=MessageStatus.sent, sent_at=utcnow(), attempts=1)
        )
        session.commit()
    expect(rows).to_have_count(VIP - 5)

    # It ends: the list shows the end, and asks no more.
    with Session(site.engine) as session:
        session.execute(
            sa.update(Message)
            .where(Message.mailing_id == mailing_id, Message.status == MessageStatus.pending)
            .values(status=MessageStatus.expired)
        )
        session.execute(
            sa.update(Mailing).where(Mailing.id == mailing_id).values(completed_at=utcnow())
        )
        session.commit()
    expect(rows).to_have_text(["No messages with status pending."])
    assert page.locator("#messages").get_attribute("hx-trigger") is None
    assert page.locator("[hx-trigger*=every]").count() == 0  # the progress stopped too
    assert violations == []


def test_cancelling_a_mailing_asks_first(page, site):
    mailing_id = new_mailing(site, text="Tomorrow", starts_in=timedelta(days=1))
    url = f"{site.url}/admin/mailings/{mailing_id}"
    page.goto(url)
    page.get_by_role("button", name="Cancel mailing").click()
    expect(page).to_have_url(f"{url}/cancel")
    expect(page.get_by_role("heading", name=f"Cancel mailing {mailing_id}?")).to_be_visible()
    page.get_by_role("link", name="Keep it").click()
    expect(page).to_have_url(url)
    expect(page.locator("#state")).to_have_text("scheduled")  # nothing happened meanwhile

    page.get_by_role("button", name="Cancel mailing").click()
    page.get_by_role("button", name=f"Yes, cancel mailing {mailing_id}").click()
    expect(page).to_have_url(url)
    expect(page.locator("#state")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel mailing")).to_have_count(0)

    # There is nothing left to cancel: the confirmation page says so.
    page.goto(f"{url}/cancel")
    expect(page.get_by_role("heading", name="Not possible now")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("cancelled")
