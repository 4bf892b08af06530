"""The admin UI in-process: sign-in, CSRF, forms and their errors, on SQLite and PostgreSQL."""

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from notifyctl.config import Settings
from notifyctl.models import Client, Mailing, Message, MessageStatus
from notifyctl.services import audience
from notifyctl.services.stats import delivery_timeline
from notifyctl.timeutil import utcnow
from tests.factories import add_clients, add_mailing
from web.app import create_app

LOGIN = "nfy_ui-login-token"
PAGES = [
    "/admin/",
    "/admin/clients",
    "/admin/clients/new",
    "/admin/clients/import",
    "/admin/clients/1",
    "/admin/mailings/new",
    "/admin/mailings/1",
    "/admin/mailings/1/edit",
    "/admin/mailings/1/cancel",
    "/admin/mailings/1/delete",
    "/admin/mailings/1/messages/1",
]


@pytest.fixture
def browser(db_url, engine):
    """A signed-out visitor of the admin UI."""
    app = create_app(settings=Settings(database_url=db_url), engine=engine, login_token=LOGIN)
    with TestClient(app) as client:
        yield client


def sign_in(browser: TestClient) -> str:
    """Open the login link; return the session's CSRF token."""
    page = browser.get(f"/admin/login?token={LOGIN}")
    assert page.status_code == 200
    assert page.url.path == "/admin/"
    return csrf_of(page.text)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def field_errors(html: str) -> dict[str, str]:
    """The messages shown next to form fields, by field."""
    return dict(re.findall(r'<small class="error" id="([\w]+)-error">([^<]+)</small>', html))


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_anonymous_visitors_to_sign_in(browser, path):
    answer = browser.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/admin/login?next={path}"


def test_anonymous_forms_change_nothing(browser, session):
    answer = browser.post(
        "/admin/clients/new", data={"phone": "79161234567"}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert session.exec(select(Client)).all() == []


def test_anonymous_htmx_requests_are_told_to_go_to_sign_in(browser):
    answer = browser.get("/admin/", headers={"HX-Request": "true"}, follow_redirects=False)
    assert (answer.status_code, answer.headers["HX-Redirect"]) == (401, "/admin/login?next=/admin/")


def test_the_login_link_signs_in_and_returns_to_the_page_asked_for(browser):
    page = browser.get(f"/admin/login?token={LOGIN}&next=/admin/clients")
    assert page.url.path == "/admin/clients"
    assert "Log out" in page.text


def test_a_wrong_login_link_is_refused(browser):
    page = browser.get("/admin/login?token=guess")
    assert page.status_code == 401
    assert "not valid" in page.text
    assert browser.get("/admin/", follow_redirects=False).status_code == 303


def test_next_never_leaves_the_admin_ui(browser):
    page = browser.get(f"/admin/login?token={LOGIN}&next=//evil.example/admin")
    assert page.url.path == "/admin/"


def test_a_forged_csrf_token_is_refused_and_changes_nothing(browser, session):
    sign_in(browser)
    answer = browser.post(
        "/admin/clients/new", data={"csrf_token": "forged", "phone": "79161234567"}
    )
    assert answer.status_code == 403
    missing = browser.post("/admin/clients/new", data={"phone": "79161234567"})
    assert missing.status_code == 403
    assert session.exec(select(Client)).all() == []


def test_logout_ends_the_session(browser):
    csrf = sign_in(browser)
    assert browser.post("/admin/logout", data={"csrf_token": csrf}).url.path == "/admin/login"
    assert browser.get("/admin/", follow_redirects=False).status_code == 303


# --- clients -------------------------------------------------------------------------


def test_client_create_edit_delete(browser, session):
    csrf = sign_in(browser)
    created = browser.post(
        "/admin/clients/new", data={"csrf_token": csrf, "phone": "+7 916 123-45-67", "tag": "vip"}
    )
    assert created.url.path == "/admin/clients"
    assert "79161234567" in created.text
    client = session.exec(select(Client)).one()
    assert (client.operator_code, client.tag, client.timezone) == ("916", "vip", "UTC")
    edited = browser.post(
        f"/admin/clients/{client.id}/edit",
        data={
            "csrf_token": csrf,
            "phone": "79161234567",
            "operator_code": "916",
            "tag": "gold",
            "timezone": "Asia/Tokyo",
        },
    )
    assert edited.status_code == 200
    session.refresh(client)
    assert (client.tag, client.timezone) == ("gold", "Asia/Tokyo")
    confirm = browser.get(f"/admin/clients/{client.id}/delete")
    assert "cannot be undone" in confirm.text
    browser.post(f"/admin/clients/{client.id}/delete", data={"csrf_token": csrf})
    session.expire_all()
    assert session.exec(select(Client)).all() == []


def test_client_errors_are_shown_next_to_their_fields(browser, session):
    csrf = sign_in(browser)
    add_clients(session, 1)
    form = {"csrf_token": csrf, "phone": "12345", "timezone": "Mars/Base"}
    answer = browser.post("/admin/clients/new", data=form)
    assert answer.status_code == 422
    assert "phone" in field_errors(answer.text)
    taken = browser.post("/admin/clients/new", data={"csrf_token": csrf, "phone": "79160000000"})
    assert "already belongs" in field_errors(taken.text)["phone"]
    bad_zone = browser.post(
        "/admin/clients/new", data={"csrf_token": csrf, "phone": "79160000001", "timezone": "Mars"}
    )
    assert "timezone" in field_errors(bad_zone.text)
    assert len(session.exec(select(Client)).all()) == 1


def test_client_list_searches_and_pages(browser, session):
    sign_in(browser)
    add_clients(session, 60, tag="a")
    add_clients(session, 3, tag="b", operator="903")
    first = browser.get("/admin/clients?tag=a")
    assert "1\u201350 of 60" in first.text
    second = browser.get("/admin/clients?tag=a&offset=50")
    assert "51\u201360 of 60" in second.text
    assert "79160000059" in second.text
    found = browser.get("/admin/clients?phone=7903", headers={"HX-Request": "true"})
    assert found.text.count("<tr>") == 1 + 3  # header + three rows; a fragment, no page
    assert "<html" not in found.text


def test_csv_import_reports_bad_rows_and_imports_nothing(browser, session):
    csrf = sign_in(browser)
    csv = b"phone,tag\n79160000001,a\nnot-a-phone,b\n79160000002,c\n"
    report = browser.post(
        "/admin/clients/import", data={"csrf_token": csrf}, files={"file": ("c.csv", csv)}
    )
    assert report.status_code == 422
    assert re.search(r">3</td><td [^>]*>phone: [^<]*not-a-phone", report.text)
    assert session.exec(select(Client)).all() == []
    skipped = browser.post(
        "/admin/clients/import",
        data={"csrf_token": csrf, "skip_invalid": "on"},
        files={"file": ("c.csv", csv)},
    )
    assert 'data-imported="2"' in skipped.text
    assert len(session.exec(select(Client)).all()) == 2


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x01", b"", b'phone\n"unclosed'])
def test_an_unreadable_csv_gets_a_message_not_a_server_error(browser, content):
    csrf = sign_in(browser)
    answer = browser.post(
        "/admin/clients/import", data={"csrf_token": csrf}, files={"file": ("c.csv", content)}
    )
    assert answer.status_code in (200, 422)
    assert 'role="alert"' in answer.text or "data-imported" in answer.text


# --- mailings ------------------------------------------------------------------------


def mailing_form(csrf: str, **fields) -> dict:
    now = utcnow()
    return {
        "csrf_token": csrf,
        "text": "Sale",
        "start_at": now.strftime("%Y-%m-%dT%H:%M:%S"),
        "end_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        "zone": "UTC",
    } | fields


@pytest.mark.clock
def test_creating_a_mailing_reads_times_in_the_chosen_zone(browser, session):
    csrf = sign_in(browser)
    form = mailing_form(
        csrf,
        start_at="2099-01-01T09:00",
        end_at="2099-01-01T21:00",
        zone="Europe/Moscow",
        tags="vip gold",
        operator_codes="916,903",
        window_start="10:00",
        window_end="20:00",
    )
    page = browser.post("/admin/mailings/new", data=form)
    assert page.url.path.startswith("/admin/mailings/")
    mailing = session.exec(select(Mailing)).one()
    assert mailing.start_at.isoformat() == "2099-01-01T06:00:00+00:00"
    assert (mailing.tags, mailing.operator_codes) == (["gold", "vip"], ["903", "916"])
    assert (mailing.window_start, mailing.window_end) == ("10:00", "20:00")


@pytest.mark.clock
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"text": ""}, "text"),
        ({"end_at": "2020-01-01T00:00"}, "end_at"),
        ({"start_at": "yesterday"}, "start_at"),
        ({"zone": "Mars/Base"}, "zone"),
        ({"operator_codes": "91"}, "operator_codes"),
        ({"operator_codes": " ".join(["916"] * 101)}, "operator_codes"),
        ({"tags": " ".join(f"t{n}" for n in range(101))}, "tags"),
        ({"tags": "x" * 65}, "tags"),
        ({"window_start": "09:00"}, "window_start"),
        ({"window_start": "25:00", "window_end": "26:00"}, "window_start"),
        ({"window_start": "09:00", "window_end": "09:00"}, "window_start"),
        ({"text": "x" * 1001}, "text"),
    ],
)
def test_mailing_errors_are_shown_next_to_their_fields(browser, session, fields, field):
    csrf = sign_in(browser)
    answer = browser.post("/admin/mailings/new", data=mailing_form(csrf, **fields))
    assert answer.status_code == 422
    assert field in field_errors(answer.text)
    assert session.exec(select(Mailing)).all() == []


def test_the_audience_preview_counts_matching_clients(browser, session):
    csrf = sign_in(browser)
    add_clients(session, 4, tag="vip")
    add_clients(session, 2, tag="new", operator="903")
    headers = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    vip = browser.post("/admin/mailings/audience", data={"tags": "vip"}, headers=headers)
    assert 'data-audience="4"' in vip.text
    everyone = browser.post("/admin/mailings/audience", data={}, headers=headers)
    assert 'data-audience="6"' in everyone.text
    bad = browser.post("/admin/mailings/audience", data={"operator_codes": "x"}, headers=headers)
    assert "operator code" in bad.text


@pytest.mark.clock
def test_editing_a_mailing_keeps_nothing_of_a_refused_change(browser, session):
    csrf = sign_in(browser)
    mailing = add_mailing(session, text="Before")
    refused = browser.post(
        f"/admin/mailings/{mailing.id}/edit",
        data=mailing_form(csrf, text="After", end_at="2020-01-01T00:00"),
    )
    assert refused.status_code == 422
    assert "end_at" in field_errors(refused.text)
    session.expire_all()
    assert session.get(Mailing, mailing.id).text == "Before"
    browser.post(f"/admin/mailings/{mailing.id}/edit", data=mailing_form(csrf, text="After"))
    session.expire_all()
    changed = session.get(Mailing, mailing.id)
    assert (changed.text, changed.window_start) == ("After", None)


@pytest.mark.clock
def test_cancel_pause_resume_and_delete_a_mailing(browser, session):
    csrf = sign_in(browser)
    add_clients(session, 3)
    mailing = add_mailing(session)
    audience.materialise(session=session, mailing=mailing)
    session.commit()
    assert (
        browser.post(f"/admin/mailings/{mailing.id}/pause", data={"csrf_token": csrf}).status_code
        == 200
    )
    again = browser.post(f"/admin/mailings/{mailing.id}/pause", data={"csrf_token": csrf})
    assert again.status_code == 409
    assert "already paused" in again.text
    browser.post(f"/admin/mailings/{mailing.id}/resume", data={"csrf_token": csrf})
    page = browser.post(f"/admin/mailings/{mailing.id}/cancel", data={"csrf_token": csrf})
    assert (
        'aria-label="cancelled" aria-valuemin="0"\n        aria-valuemax="3" aria-valuenow="3"'
        in page.text
    )
    confirm = browser.get(f"/admin/mailings/{mailing.id}/delete")
    assert "cannot be undone" in confirm.text
    assert session.get(Mailing, mailing.id) is not None
    browser.post(f"/admin/mailings/{mailing.id}/delete", data={"csrf_token": csrf})
    session.expire_all()
    assert session.exec(select(Mailing)).all() == []
    assert session.exec(select(Message)).all() == []


def test_a_mailing_page_lists_messages_by_status_and_opens_their_attempts(browser, session):
    sign_in(browser)
    add_clients(session, 5)
    mailing = add_mailing(session)
    audience.materialise(session=session, mailing=mailing)
    messages = session.exec(select(Message).order_by(Message.id)).all()
    messages[0].status, messages[0].sent_at = MessageStatus.sent, utcnow()
    messages[1].status, messages[1].last_error = MessageStatus.failed, "HTTP 400: rejected"
    session.commit()
    failed = browser.get(
        f"/admin/mailings/{mailing.id}?status=failed&section=messages",
        headers={"HX-Request": "true"},
    )
    assert "HTTP 400: rejected" in failed.text
    assert failed.text.count("<tr>") == 2
    page = browser.get(f"/admin/mailings/{mailing.id}")
    assert '<svg class="chart"' in page.text
    detail = browser.get(f"/admin/mailings/{mailing.id}/messages/{messages[1].id}")
    assert detail.status_code == 200
    assert "No request made yet" in detail.text
    elsewhere = browser.get(f"/admin/mailings/{mailing.id + 1}/messages/{messages[1].id}")
    assert elsewhere.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/admin/mailings/999",
        "/admin/mailings/abc",
        "/admin/clients/2/edit",
        "/admin/nothing",
        "/admin/mailings/1?status=bogus",
        f"/admin/mailings/{2**70}",
    ],
)
def test_bad_addresses_get_an_error_page_not_a_server_error(browser, session, path):
    sign_in(browser)
    add_mailing(session)
    answer = browser.get(path)
    assert 400 <= answer.status_code < 500
    assert "<html" in answer.text


@pytest.mark.clock
def test_the_dashboard_shows_each_mailing_with_its_progress(browser, session):
    sign_in(browser)
    add_clients(session, 4)
    mailing = add_mailing(session, text="Black Friday")
    audience.materialise(session=session, mailing=mailing)
    first = session.exec(select(Message)).first()
    first.status, first.sent_at = MessageStatus.sent, utcnow()
    session.commit()
    rows = browser.get("/admin/", headers={"HX-Request": "true"}).text
    assert "Black Friday" in rows
    assert 'hx-trigger="every 2s"' in rows
    assert re.search(r'aria-label="sent"[^>]*aria-valuemax="4" aria-valuenow="1"', rows)


@pytest.mark.clock
def test_the_delivery_timeline_counts_sent_messages_per_step(session):
    add_clients(session, 4)
    mailing = add_mailing(session)
    audience.materialise(session=session, mailing=mailing)
    start = utcnow().replace(microsecond=0)
    for message, offset in zip(session.exec(select(Message)).all(), (0, 0, 30, 119), strict=True):
        message.status, message.sent_at = MessageStatus.sent, start + timedelta(seconds=offset)
    session.commit()
    timeline = delivery_timeline(session=session, mailing_id=mailing.id, buckets=60)
    assert timeline.step == timedelta(seconds=2)
    assert (len(timeline.counts), sum(timeline.counts)) == (60, 4)
    assert (timeline.counts[0], timeline.counts[15], timeline.counts[59]) == (2, 1, 1)
    assert timeline.start == start


def test_no_timeline_before_the_first_message_is_sent(session):
    mailing = add_mailing(session)
    assert delivery_timeline(session=session, mailing_id=mailing.id) is None


def test_session_cookie_is_signed(browser):
    sign_in(browser)
    cookie = browser.cookies.get("notifyctl_session")
    browser.cookies.set("notifyctl_session", cookie[:-4] + "AAAA")
    assert browser.get("/admin/", follow_redirects=False).status_code == 303


CLIENT_FIELDS = ("phone", "operator_code", "tag", "timezone")
MAILING_FIELDS = (
    "name",
    "text",
    "start_at",
    "end_at",
    "zone",
    "operator_codes",
    "tags",
    "window_start",
    "window_end",
)
FORMS = {
    "/admin/clients/new": CLIENT_FIELDS,
    "/admin/clients/1/edit": CLIENT_FIELDS,
    "/admin/mailings/new": MAILING_FIELDS,
    "/admin/mailings/1/edit": MAILING_FIELDS,
    "/admin/mailings/audience": ("operator_codes", "tags"),
}


def test_nothing_typed_into_a_form_gives_a_server_error(tmp_path, sqlite_template):
    """Random text in every field of every form: always a page or a redirect, never a 500."""
    import shutil

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from notifyctl.db import make_engine

    path = tmp_path / "fuzz.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    app = create_app(
        settings=Settings(database_url=f"sqlite:///{path}"), engine=engine, login_token=LOGIN
    )
    with Session(engine) as session:
        add_clients(session, 1)
        add_mailing(session, starts_in=timedelta(days=1))
    text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
    values = st.one_of(text, st.sampled_from(["", "2030-01-01T10:00", "09:00", "Asia/Tokyo"]))
    with TestClient(app, raise_server_exceptions=False) as browser:
        csrf = sign_in(browser)

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(sorted(FORMS)), st.data())
        def submit(path: str, data) -> None:
            form = {name: data.draw(values, label=name) for name in FORMS[path]}
            answer = browser.post(path, data=form | {"csrf_token": csrf})
            assert answer.status_code < 500, (path, form, answer.text[:300])

        submit()
    engine.dispose()
