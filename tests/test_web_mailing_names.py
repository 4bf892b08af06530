"""A mailing's name and transactional flag through the REST API and the admin UI, and the
dashboard's totals (issue 17), on SQLite and PostgreSQL."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from notifyctl.config import Settings
from notifyctl.models import Attempt, Client, Mailing, Message, MessageStatus
from notifyctl.services import audience, delivery
from notifyctl.timeutil import utcnow
from tests.factories import add_clients, add_mailing
from web.app import create_app

LOGIN = "nfy_names-login-token"
AUTH = {"Authorization": f"Bearer {LOGIN}"}


@pytest.fixture
def app(db_url, engine):
    return create_app(settings=Settings(database_url=db_url), engine=engine, login_token=LOGIN)


@pytest.fixture
def api(app):
    with TestClient(app, headers=AUTH, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def browser(app):
    """A signed-in admin; ``browser.csrf`` is the session's CSRF token."""
    with TestClient(app, raise_server_exceptions=False) as client:
        page = client.get(f"/admin/login?token={LOGIN}")
        assert page.status_code == 200
        client.csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        yield client


def iso(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def body(**fields) -> dict:
    return {"text": "Sale", "start_at": iso(), "end_at": iso(timedelta(hours=1))} | fields


def field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<small class="error" id="([\w]+)-error">([^<]+)</small>', html))


# --- REST ----------------------------------------------------------------------------


def test_rest_create_get_and_list_carry_name_and_flag(api):
    created = api.post("/api/v1/mailings", json=body(name=" Codes ", transactional=True))
    assert created.status_code == 201, created.text
    item = created.json()
    assert (item["name"], item["transactional"]) == ("Codes", True)
    assert api.get(f"/api/v1/mailings/{item['id']}").json() == item
    plain = api.post("/api/v1/mailings", json=body()).json()
    assert (plain["name"], plain["transactional"]) == (None, False)
    assert [m["name"] for m in api.get("/api/v1/mailings").json()["items"]] == [None, "Codes"]


def test_rest_patch_renames_keeps_or_removes_the_name(api):
    mailing_id = api.post("/api/v1/mailings", json=body(name="Draft")).json()["id"]
    path = f"/api/v1/mailings/{mailing_id}"
    assert api.patch(path, json={"name": "Final"}).json()["name"] == "Final"
    assert api.patch(path, json={"text": "Other"}).json()["name"] == "Final"
    assert api.patch(path, json={"name": None}).json()["name"] is None
    assert api.patch(path, json={"name": "Again"}).json()["name"] == "Again"
    assert api.patch(path, json={"name": ""}).json()["name"] is None


HOSTILE_NAMES = [
    ("x" * 201, "201 characters"),
    ("a\x00b", "NUL"),
    ("a\ud800b", "no character"),
    ("two\nlines", "U+000A"),
    ("\x1b[31mred", "U+001B"),
    ("rtl\u202eoverride", "U+202E"),
    (123, "string"),
    (["Sale"], "string"),
    ({"name": "x"}, "string"),
    (True, "string"),
]


@pytest.mark.parametrize(("name", "says"), HOSTILE_NAMES)
def test_a_hostile_name_is_422_naming_the_field_and_changes_nothing(api, name, says):
    # (sent with \\u escapes: a lone surrogate can travel in JSON, as any caller's may)
    send = {"headers": {"Content-Type": "application/json"}}
    created = api.post("/api/v1/mailings", content=json.dumps(body(name=name)), **send)
    assert (created.status_code, created.json()["field"]) == (422, "name"), created.text
    assert says in created.json()["detail"]
    stored = api.post("/api/v1/mailings", json=body(name="Kept")).json()
    path = f"/api/v1/mailings/{stored['id']}"
    changed = api.patch(path, content=json.dumps({"name": name, "text": "changed"}), **send)
    assert (changed.status_code, changed.json()["field"]) == (422, "name"), changed.text
    assert api.get(path).json() == stored
    assert api.get("/api/v1/mailings").json()["total"] == 1


@pytest.mark.parametrize("flag", ["yes", "true", 1, 0, None, [], {}])
def test_transactional_is_true_or_false_only(api, flag):
    created = api.post("/api/v1/mailings", json=body(transactional=flag))
    assert (created.status_code, created.json()["field"]) == (422, "transactional"), created.text
    assert api.get("/api/v1/mailings").json()["total"] == 0


def test_rest_the_flag_changes_until_the_mailing_starts_then_409(api, session):
    later = api.post(
        "/api/v1/mailings",
        json=body(start_at=iso(timedelta(hours=1)), end_at=iso(timedelta(hours=2))),
    ).json()
    path = f"/api/v1/mailings/{later['id']}"
    assert api.patch(path, json={"transactional": True}).json()["transactional"] is True
    assert api.patch(path, json={"transactional": None}).json()["transactional"] is True

    started = api.post("/api/v1/mailings", json=body(transactional=True)).json()
    mailing = session.get(Mailing, started["id"])
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.commit()
    path = f"/api/v1/mailings/{started['id']}"
    refused = api.patch(path, json={"transactional": False, "name": "Other"})
    assert (refused.status_code, refused.json()["field"]) == (409, "transactional")
    after = api.get(path).json()
    assert (after["transactional"], after["name"]) == (True, None)
    assert api.patch(path, json={"transactional": True}).status_code == 200


# --- admin UI: forms and pages ---------------------------------------------------------


def form(csrf: str, **fields) -> dict:
    start = datetime.now(UTC).replace(microsecond=0)
    return {
        "csrf_token": csrf,
        "text": "Sale",
        "start_at": start.strftime("%Y-%m-%dT%H:%M:%S"),
        "end_at": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        "zone": "UTC",
        "transactional_shown": "1",
    } | fields


def test_ui_create_with_name_and_checkbox_then_pages_show_them(browser, session):
    page = browser.get("/admin/mailings/new")
    assert 'id="name" name="name"' in page.text
    assert 'id="transactional" name="transactional" type="checkbox"' in page.text
    created = browser.post(
        "/admin/mailings/new",
        data=form(browser.csrf, name=" Black <b>Friday</b> ", transactional="true"),
    )
    assert created.status_code == 200
    mailing = session.exec(select(Mailing)).one()
    assert (mailing.name, mailing.transactional) == ("Black <b>Friday</b>", True)
    assert created.url.path == f"/admin/mailings/{mailing.id}"
    heading = re.search(r"<h1>(.*?)</h1>", created.text, re.S).group(1)
    assert heading.startswith('<span class="name">Black &lt;b&gt;Friday&lt;/b&gt;</span>')
    assert re.search(r'<dd id="transactional">yes', created.text)
    rows = browser.get("/admin/", headers={"HX-Request": "true"}).text
    first_cell = re.search(r"<tr data-mailing[^>]*>\s*<td([^>]*)>(.*?)</td>", rows, re.S)
    assert 'data-label="Name"' in first_cell.group(1)
    assert "Black &lt;b&gt;Friday&lt;/b&gt;" in first_cell.group(2)


def test_ui_without_name_or_tick_is_unnamed_and_not_transactional(browser, session):
    browser.post("/admin/mailings/new", data=form(browser.csrf))
    mailing = session.exec(select(Mailing)).one()
    assert (mailing.name, mailing.transactional) == (None, False)
    page = browser.get(f"/admin/mailings/{mailing.id}").text
    assert f"<h1>Mailing {mailing.id} " in page
    assert re.search(r'<dd id="transactional">no', page)


@pytest.mark.parametrize(
    ("name", "says"), [pair for pair in HOSTILE_NAMES[:6] if "\ud800" not in pair[0]]
)
def test_ui_a_hostile_name_is_shown_next_to_the_field_and_creates_nothing(
    browser, session, name, says
):
    answer = browser.post("/admin/mailings/new", data=form(browser.csrf, name=name))
    assert answer.status_code == 422, answer.text[:300]
    assert says in field_errors(answer.text)["name"]
    assert session.exec(select(Mailing)).all() == []


def test_ui_edit_renames_clears_and_offers_the_flag_only_before_the_start(browser, session):
    later = add_mailing(session, starts_in=timedelta(hours=1))
    edit = browser.get(f"/admin/mailings/{later.id}/edit").text
    assert 'name="transactional"' in edit
    browser.post(
        f"/admin/mailings/{later.id}/edit",
        data=form(
            browser.csrf,
            name="Renamed",
            transactional="true",
            start_at=(later.start_at).strftime("%Y-%m-%dT%H:%M:%S"),
            end_at=(later.end_at).strftime("%Y-%m-%dT%H:%M:%S"),
        ),
    )
    session.expire_all()
    assert (session.get(Mailing, later.id).name, session.get(Mailing, later.id).transactional) == (
        "Renamed",
        True,
    )

    started = add_mailing(session)
    delivery.activate(session=session, mailing=started, now=utcnow())
    session.commit()
    edit = browser.get(f"/admin/mailings/{started.id}/edit").text
    assert 'name="transactional"' not in edit
    assert "Transactional: no (settled when the mailing started)" in edit
    fields = form(
        browser.csrf,
        name="",
        start_at=started.start_at.strftime("%Y-%m-%dT%H:%M:%S"),
        end_at=started.end_at.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    del fields["transactional_shown"]  # (the page offered no checkbox)
    saved = browser.post(f"/admin/mailings/{started.id}/edit", data=fields)
    assert saved.url.path == f"/admin/mailings/{started.id}", saved.text[:300]
    # A page loaded before the start, posted after it: the change is refused at the field.
    offered = {"transactional_shown": "1", "transactional": "true"}
    stale = browser.post(f"/admin/mailings/{started.id}/edit", data=fields | offered)
    assert stale.status_code == 422
    assert "has started" in field_errors(stale.text)["transactional"]
    session.expire_all()
    assert session.get(Mailing, started.id).transactional is False


def test_confirmations_and_message_pages_name_the_mailing(browser, session):
    add_clients(session, 1)
    mailing = add_mailing(session, text="Hello")
    mailing.name = "Spring sale"
    session.add(mailing)
    session.commit()
    audience.materialise(session=session, mailing=mailing)
    session.commit()
    message = session.exec(select(Message)).one()
    assert "Delete mailing 1 (Spring sale)?" in browser.get("/admin/mailings/1/delete").text
    assert "Cancel mailing 1 (Spring sale)?" in browser.get("/admin/mailings/1/cancel").text
    page = browser.get(f"/admin/mailings/1/messages/{message.id}").text
    assert ">Spring sale (1)</a>" in page


# --- admin UI: the dashboard's totals --------------------------------------------------


@pytest.mark.clock  # (the last 24 hours of the real clock)
def test_the_dashboard_opens_with_the_totals(browser, session):
    add_clients(session, 3)
    session.add(
        Client(phone="79169999999", operator_code="916", timezone="UTC", opted_out_at=utcnow())
    )
    mailing = add_mailing(session)  # running
    add_mailing(session, starts_in=timedelta(hours=1))  # scheduled
    audience.materialise(session=session, mailing=mailing)
    session.commit()
    first, second, *_ = session.exec(select(Message).order_by(Message.id)).all()
    first.status, first.sent_at = MessageStatus.sent, utcnow() - timedelta(minutes=5)
    second.status = MessageStatus.failed
    session.add_all([first, second])
    session.commit()
    session.add(
        Attempt(
            message_id=second.id, mailing_id=mailing.id, started_at=utcnow() - timedelta(minutes=3)
        )
    )
    session.commit()

    page = browser.get("/admin/").text
    figures = dict(re.findall(r'data-figure="(\w+)">([\d,]+)<', page))
    assert figures == {"clients": "4", "opted_out": "1", "sent": "1", "failed": "1", "running": "1"}
    assert page.index('id="totals"') < page.index('id="dashboard-rows"')
    bars = re.findall(r'data-hour="(\d+)" data-sent="(\d+)" data-failed="(\d+)"', page)
    assert len(bars) == 24
    assert bars[-1] == ("23", "1", "1")
    assert '<svg class="chart day"' in page
    assert "<script" not in page.split('id="totals"')[1].split("</section>")[0]
    fragment = browser.get("/admin/?section=totals", headers={"HX-Request": "true"})
    assert fragment.text.strip().startswith('<section id="totals"')
    assert 'data-figure="clients">4<' in fragment.text


def test_the_audience_preview_counts_opted_out_clients_for_a_transactional_mailing(
    browser, session
):
    """The preview counts whom the mailing will reach: a transactional one reaches
    opted-out clients too (as a dry run and the daemon's activation count them)."""
    clients = add_clients(session, 3)
    clients[0].opted_out_at = utcnow()
    session.commit()
    headers = {"X-CSRF-Token": browser.csrf, "HX-Request": "true"}
    ordinary = browser.post("/admin/mailings/audience", data={}, headers=headers)
    assert 'data-audience="2"' in ordinary.text
    ticked = browser.post(
        "/admin/mailings/audience", data={"transactional": "true"}, headers=headers
    )
    assert 'data-audience="3"' in ticked.text
    form = browser.get("/admin/mailings/new").text
    assert re.search(r'hx-include="[^"]*#transactional', form)  # the checkbox is sent along
