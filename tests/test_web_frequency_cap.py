"""The frequency cap in the admin UI and the REST API: the dashboard names it, and a
message held back by it says why on the mailing's page and in its JSON."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from notifyctl.config import Settings
from notifyctl.models import Message
from notifyctl.services import delivery
from notifyctl.timeutil import utcnow
from tests.factories import add_clients, add_mailing
from web.app import create_app

LOGIN = "nfy_cap-login-token"


def signed_in(db_url, engine, **settings):
    app = create_app(
        settings=Settings(database_url=db_url, **settings), engine=engine, login_token=LOGIN
    )
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get(f"/admin/login?token={LOGIN}").status_code == 200
    return client


@pytest.mark.parametrize(("cap", "shown"), [("3/24h", "3 per 24h"), ("", None)])
def test_the_dashboard_names_the_cap_when_there_is_one(db_url, engine, cap, shown):
    with signed_in(db_url, engine, frequency_cap=cap) as browser:
        page = browser.get("/admin/").text
        fragment = browser.get("/admin/?section=totals", headers={"HX-Request": "true"}).text
    for html in (page, fragment):
        found = re.findall(r'data-figure="frequency_cap">([^<]+)<', html)
        assert found == ([shown] if shown else [])


def test_a_held_message_says_why_on_the_page_and_in_json(db_url, engine, session):
    [client] = add_clients(session, 1)
    made = [add_mailing(session, text=f"offer {n}") for n in range(2)]
    for mailing in made:
        delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.commit()
    now = utcnow()
    delivery.claim(
        session=session,
        owner="me",
        mailing_ids=[m.id for m in made],
        now=now,
        lease_until=now + timedelta(seconds=30),
        limit=10,
        cap=Settings(frequency_cap="1/1h").frequency_cap,
    )
    session.commit()
    held = session.execute(
        sa.select(Message.mailing_id).where(Message.status == "pending")
    ).scalar_one()

    with signed_in(db_url, engine) as browser:
        page = browser.get(f"/admin/mailings/{held}").text
        api = browser.get(
            f"/api/v1/mailings/{held}/stats", headers={"Authorization": f"Bearer {LOGIN}"}
        ).json()
    assert "frequency cap 1/1h" in page
    [message] = api["messages"]
    assert (message["status"], message["last_error"]) == ("pending", "frequency cap 1/1h")
    assert message["client_id"] == client.id
