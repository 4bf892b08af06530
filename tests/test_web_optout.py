"""Opt-out through the REST API and the admin UI (a client's page with its messages and the
opt-out toggle), in-process, on SQLite and PostgreSQL."""

import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from notifyctl.config import Settings
from notifyctl.models import Client, Message
from notifyctl.services import delivery, optout
from notifyctl.timeutil import utcnow
from tests.factories import add_clients, add_mailing
from tests.test_web_ui import LOGIN, csrf_of, sign_in
from web.app import create_app

AUTH = {"Authorization": f"Bearer {LOGIN}"}  # (the login token is a bearer token too)


@pytest.fixture
def app(db_url, engine):
    return create_app(settings=Settings(database_url=db_url), engine=engine, login_token=LOGIN)


@pytest.fixture
def api(app):
    with TestClient(app, headers=AUTH) as client:
        yield client


@pytest.fixture
def browser(app):
    with TestClient(app) as client:
        yield client


def opted_out_at(session, client_id: int):
    session.expire_all()
    return session.execute(
        sa.select(Client.opted_out_at).where(Client.id == client_id)
    ).scalar_one()


# --- REST ------------------------------------------------------------------------------------


def test_opt_out_and_in_are_idempotent_and_show_everywhere(api, session):
    created = api.post("/api/v1/clients", json={"phone": "79161234567"}).json()
    assert created["opted_out_at"] is None

    out = api.post(f"/api/v1/clients/{created['id']}/opt-out")
    assert out.status_code == 200
    when = out.json()["opted_out_at"]
    assert when is not None
    assert api.post(f"/api/v1/clients/{created['id']}/opt-out").json()["opted_out_at"] == when
    assert api.get(f"/api/v1/clients/{created['id']}").json()["opted_out_at"] == when
    assert api.get("/api/v1/clients").json()["items"][0]["opted_out_at"] == when

    back = api.post(f"/api/v1/clients/{created['id']}/opt-in")
    assert (back.status_code, back.json()["opted_out_at"]) == (200, None)
    assert api.post(f"/api/v1/clients/{created['id']}/opt-in").json()["opted_out_at"] is None
    assert opted_out_at(session, created["id"]) is None


def test_opting_out_through_the_api_cancels_pending_messages(api, session):
    [client] = add_clients(session, 1)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.commit()
    assert api.post(f"/api/v1/clients/{client.id}/opt-out").status_code == 200
    messages = api.get(f"/api/v1/mailings/{mailing.id}/messages").json()["items"]
    assert [(m["status"], m["last_error"]) for m in messages] == [("cancelled", "opted out")]


@pytest.mark.parametrize("verb", ["opt-out", "opt-in"])
@pytest.mark.parametrize(
    ("client_id", "status"), [("99", 404), (str(2**70), 404), ("0", 404), ("abc", 422)]
)
def test_a_bad_id_is_a_4xx_naming_it_and_changes_nothing(api, session, verb, client_id, status):
    [client] = add_clients(session, 1)
    answer = api.post(f"/api/v1/clients/{client_id}/{verb}", json={"opted_out_at": "now"})
    assert answer.status_code == status
    assert answer.json()["field"] == ("client_id" if status == 422 else "id")
    assert opted_out_at(session, client.id) is None


def test_anonymous_callers_cannot_opt_anyone_out(app, session):
    [client] = add_clients(session, 1)
    with TestClient(app) as anonymous:
        assert anonymous.post(f"/api/v1/clients/{client.id}/opt-out").status_code == 401
    assert opted_out_at(session, client.id) is None


# --- the admin UI ----------------------------------------------------------------------------


def test_client_rows_link_to_the_client_page_which_toggles_the_opt_out(browser, session):
    csrf = sign_in(browser)
    [client] = add_clients(session, 1, tag="<script>alert(1)</script>")
    listing = browser.get("/admin/clients")
    assert f'href="/admin/clients/{client.id}"' in listing.text

    page = browser.get(f"/admin/clients/{client.id}")
    assert page.status_code == 200
    assert "79160000000" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # escaped, never run
    assert "<script>alert(1)" not in page.text
    assert f'action="/admin/clients/{client.id}/opt-out"' in page.text
    assert "receives mailings" in page.text

    opted = browser.post(f"/admin/clients/{client.id}/opt-out", data={"csrf_token": csrf})
    assert opted.url.path == f"/admin/clients/{client.id}"
    assert opted_out_at(session, client.id) is not None
    assert 'id="opt-state">opted out' in opted.text
    assert f'action="/admin/clients/{client.id}/opt-in"' in opted.text
    assert "opted out" in browser.get("/admin/clients").text

    back = browser.post(
        f"/admin/clients/{client.id}/opt-in", data={"csrf_token": csrf_of(opted.text)}
    )
    assert back.url.path == f"/admin/clients/{client.id}"
    assert opted_out_at(session, client.id) is None


@pytest.mark.parametrize("verb", ["opt-out", "opt-in"])
def test_the_toggle_without_a_valid_csrf_token_changes_nothing(browser, session, verb):
    sign_in(browser)
    [client] = add_clients(session, 1)
    if verb == "opt-in":
        optout.opt_out(session=session, client_id=client.id)
        session.commit()
    before = opted_out_at(session, client.id)
    for data in ({}, {"csrf_token": "forged"}):
        answer = browser.post(f"/admin/clients/{client.id}/{verb}", data=data)
        assert answer.status_code == 403
    assert opted_out_at(session, client.id) == before


def test_the_client_page_lists_its_messages_newest_first_in_pages(browser, session, monkeypatch):
    from web.ui import clients as pages

    monkeypatch.setattr(pages, "MESSAGES_PER_PAGE", 2)
    sign_in(browser)
    client, _other = add_clients(session, 2)  # (the other's messages are not shown)
    made = [add_mailing(session, text=f"mailing number {n}") for n in range(3)]
    for mailing in made:
        delivery.activate(session=session, mailing=mailing, now=utcnow())
    optout.opt_out(session=session, client_id=client.id)
    session.commit()
    ids = session.execute(
        sa.select(Message.id, Message.mailing_id)
        .where(Message.client_id == client.id)
        .order_by(Message.id.desc())
    ).all()

    first = browser.get(f"/admin/clients/{client.id}")
    second = browser.get(f"/admin/clients/{client.id}?offset=2")

    def shown(page) -> list[tuple[int, int]]:
        links = re.findall(r'href="/admin/mailings/(\d+)/messages/(\d+)"', page.text)
        return [(int(message), int(mailing)) for mailing, message in links]

    assert shown(first) + shown(second) == [tuple(row) for row in ids]
    assert len(shown(first)) == 2
    assert f'href="/admin/mailings/{made[2].id}"' in first.text
    assert "mailing number 2" in first.text
    assert "opted out" in first.text  # each cancelled message's reason
    assert "3 messages, newest first" in first.text
    assert 'rel="next"' in first.text


@pytest.mark.parametrize(
    "path",
    [
        "/admin/clients/99",
        "/admin/clients/abc",
        f"/admin/clients/{2**70}",
        "/admin/clients/1?offset=-5",
        f"/admin/clients/1?offset={2**70}",
    ],
)
def test_bad_client_addresses_get_an_error_page_not_a_server_error(browser, session, path):
    sign_in(browser)
    add_clients(session, 1)
    answer = browser.get(path)
    assert 400 <= answer.status_code < 500 or (answer.status_code == 200 and "offset=-5" in path)
    assert "<html" in answer.text


def test_toggling_an_unknown_client_is_a_404_page(browser, session):
    csrf = sign_in(browser)
    answer = browser.post("/admin/clients/99/opt-out", data={"csrf_token": csrf})
    assert answer.status_code == 404
    assert "<html" in answer.text
