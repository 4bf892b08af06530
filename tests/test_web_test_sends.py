"""``POST /api/v1/mailings/{id}/test`` and the admin UI's "Send test" form, in-process,
against the real mock, on SQLite and PostgreSQL."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from notifyctl.config import Settings
from notifyctl.models import Message, TestSend
from tests import shared_mock
from tests.test_web_ui import LOGIN as UI_LOGIN
from tests.test_web_ui import field_errors, sign_in
from web.app import create_app


@pytest.fixture(scope="module")
def module_mock():
    yield from shared_mock.serve()


@pytest.fixture
def mock_api(module_mock):
    """One mock for the module (a test makes a request or two), fresh for each test."""
    return shared_mock.fresh(module_mock)


LOGIN = "nfy_login-token-for-tests"
#: For what does not depend on the database: one backend is enough.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
AUTH = {"Authorization": f"Bearer {LOGIN}"}


def make_app(db_url, engine, mock, **settings):
    values = {"database_url": db_url, "sender_url": mock.send_url, "request_timeout": 5.0}
    return create_app(settings=Settings(**(values | settings)), engine=engine, login_token=LOGIN)


@pytest.fixture
def api(db_url, engine, mock_api):
    with TestClient(make_app(db_url, engine, mock_api), headers=AUTH) as client:
        yield client


def new_mailing(api) -> int:
    now = datetime.now(UTC)
    body = {
        "text": "Sale",
        "start_at": now.isoformat(),
        "end_at": (now + timedelta(hours=1)).isoformat(),
    }
    response = api.post("/api/v1/mailings", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


# --- REST ----------------------------------------------------------------------------


def test_a_test_send_returns_the_apis_answer(api, mock_api, session):
    mailing_id = new_mailing(api)

    response = api.post(f"/api/v1/mailings/{mailing_id}/test", json={"phone": "+7 916 123-45-67"})

    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["mailing_id"], data["phone"], data["accepted"], data["http_status"]) == (
        mailing_id,
        "79161234567",
        True,
        200,
    )
    (received,) = mock_api.received()
    assert (received["msg_id"], received["text"]) == (data["id"], "Sale")
    assert session.get(TestSend, data["id"]).http_status == 200
    assert session.exec(select(Message)).all() == []
    stats = api.get(f"/api/v1/mailings/{mailing_id}/stats").json()
    assert (stats["total"], stats["messages"]) == (0, [])


def test_an_api_failure_is_data_of_a_200(api, mock_api):
    mock_api.faults(error_rate=1)
    mailing_id = new_mailing(api)

    data = api.post(f"/api/v1/mailings/{mailing_id}/test", json={"phone": "79161234567"}).json()

    assert data["accepted"] is False
    assert data["error"] == f"HTTP {data['http_status']}"


def test_a_wrong_sender_token_is_shown_as_a_401(db_url, engine, mock_api):
    app = make_app(db_url, engine, mock_api, sender_token="not-the-mocks-token")
    with TestClient(app, headers=AUTH) as api:
        mailing_id = new_mailing(api)
        data = api.post(f"/api/v1/mailings/{mailing_id}/test", json={"phone": "79161234567"})

    assert (data.json()["accepted"], data.json()["http_status"]) == (False, 401)


def test_a_bad_or_missing_phone_is_422_naming_it_and_changes_nothing(api, mock_api, session):
    mailing_id = new_mailing(api)
    bodies = [{}, {"phone": "12345"}, {"phone": 79161234567}, {"phone": None}, {"tel": "7916"}]

    for body in bodies:
        response = api.post(f"/api/v1/mailings/{mailing_id}/test", json=body)
        assert response.status_code == 422, body
        assert (response.json()["code"], response.json()["field"]) == ("invalid_input", "phone")

    assert mock_api.received() == []
    assert session.exec(select(TestSend)).all() == []


@SQLITE_ONLY
def test_an_unknown_mailing_is_404(api, mock_api):
    response = api.post("/api/v1/mailings/999/test", json={"phone": "79161234567"})

    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert mock_api.received() == []


@SQLITE_ONLY
def test_anonymous_callers_cannot_test_send(db_url, engine, mock_api):
    with TestClient(make_app(db_url, engine, mock_api)) as anonymous:
        response = anonymous.post("/api/v1/mailings/1/test", json={"phone": "79161234567"})

    assert response.status_code == 401
    assert mock_api.received() == []


def test_the_test_sends_are_listed_newest_first_as_post_answered(api, mock_api):
    mailing_id = new_mailing(api)
    sent = [
        api.post(f"/api/v1/mailings/{mailing_id}/test", json={"phone": phone}).json()
        for phone in ("79161234567", "79161234568", "79161234569")
    ]

    listed = api.get(f"/api/v1/mailings/{mailing_id}/tests")
    second_page = api.get(f"/api/v1/mailings/{mailing_id}/tests?limit=2&offset=2")

    assert listed.status_code == 200, listed.text
    assert listed.json() == {"total": 3, "limit": 100, "offset": 0, "items": sent[::-1]}
    assert second_page.json()["items"] == [sent[0]]


@SQLITE_ONLY
def test_listing_test_sends_of_an_unknown_mailing_or_a_bad_page_is_refused(api):
    mailing_id = new_mailing(api)

    unknown = api.get("/api/v1/mailings/999/tests")
    bad = api.get(f"/api/v1/mailings/{mailing_id}/tests?limit=0")

    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert (bad.status_code, bad.json()["field"]) == (422, "limit")


# --- admin UI ------------------------------------------------------------------------


@pytest.fixture
def browser(db_url, engine, mock_api):
    app = create_app(
        settings=Settings(database_url=db_url, sender_url=mock_api.send_url, request_timeout=5.0),
        engine=engine,
        login_token=UI_LOGIN,
    )
    with TestClient(app) as client:
        yield client


def ui_mailing(browser, csrf: str) -> int:
    form = {
        "csrf_token": csrf,
        "text": "Sale",
        "zone": "UTC",
        "start_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "end_at": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
    }
    page = browser.post("/admin/mailings/new", data=form)
    assert page.status_code == 200, page.text
    return int(page.url.path.rsplit("/", 1)[1])


def test_the_form_shows_the_apis_answer_in_place(browser, mock_api):
    csrf = sign_in(browser)
    mailing_id = ui_mailing(browser, csrf)
    page = browser.get(f"/admin/mailings/{mailing_id}")
    assert f'hx-post="/admin/mailings/{mailing_id}/test"' in page.text

    answer = browser.post(
        f"/admin/mailings/{mailing_id}/test",
        data={"phone": "+7 916 123-45-67"},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf},
    )

    assert answer.status_code == 200
    assert answer.text.lstrip().startswith('<section id="test-send"')
    (received,) = mock_api.received()
    assert f"Test send {received['msg_id']} to 79161234567: accepted" in answer.text
    assert 'data-http-status="200"' in answer.text


def test_the_newest_test_sends_are_listed_under_the_form(browser, mock_api):
    csrf = sign_in(browser)
    mailing_id = ui_mailing(browser, csrf)
    assert 'id="test-sends"' not in browser.get(f"/admin/mailings/{mailing_id}").text

    for n in range(7):
        answer = browser.post(
            f"/admin/mailings/{mailing_id}/test",
            data={"phone": f"7916123456{n}"},
            headers={"HX-Request": "true", "X-CSRF-Token": csrf},
        )
    page = browser.get(f"/admin/mailings/{mailing_id}")

    for html in (answer.text, page.text):
        rows = re.findall(r'<td data-label="Phone" class="nobr">(\d+)</td>', html)
        assert rows == [f"7916123456{n}" for n in (6, 5, 4, 3, 2)]  # the newest five
        assert "The newest 5 of 7 test sends" in html


def test_a_refusal_by_the_api_is_shown_plainly(browser, mock_api):
    csrf = sign_in(browser)
    mailing_id = ui_mailing(browser, csrf)
    mock_api.faults(error_rate=1)

    answer = browser.post(
        f"/admin/mailings/{mailing_id}/test",
        data={"phone": "79161234567"},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf},
    )

    assert "not accepted" in answer.text
    status = re.search(r'data-http-status="(\d+)"', answer.text).group(1)
    assert f"HTTP {status}" in answer.text


def test_without_scripts_the_form_returns_the_page_with_the_answer(browser, mock_api):
    csrf = sign_in(browser)
    mailing_id = ui_mailing(browser, csrf)

    page = browser.post(
        f"/admin/mailings/{mailing_id}/test", data={"phone": "79161234567", "csrf_token": csrf}
    )

    assert page.status_code == 200
    assert '<h2 id="progress-title">' in page.text
    assert "79161234567: accepted" in page.text


def test_a_bad_phone_is_shown_next_to_the_field_and_sends_nothing(browser, mock_api, session):
    csrf = sign_in(browser)
    mailing_id = ui_mailing(browser, csrf)

    page = browser.post(
        f"/admin/mailings/{mailing_id}/test", data={"phone": "12345", "csrf_token": csrf}
    )

    assert page.status_code == 422
    assert "phone" in field_errors(page.text)
    assert 'value="12345"' in page.text
    assert mock_api.received() == []
    assert session.exec(select(TestSend)).all() == []


@SQLITE_ONLY
def test_the_form_without_its_csrf_token_sends_nothing(browser, mock_api):
    csrf = sign_in(browser)
    mailing_id = ui_mailing(browser, csrf)

    answer = browser.post(f"/admin/mailings/{mailing_id}/test", data={"phone": "79161234567"})

    assert answer.status_code == 403
    assert mock_api.received() == []


@SQLITE_ONLY
def test_an_unknown_mailing_is_the_404_page(browser, mock_api):
    csrf = sign_in(browser)

    answer = browser.post(
        "/admin/mailings/999/test", data={"phone": "79161234567", "csrf_token": csrf}
    )

    assert answer.status_code == 404
    assert mock_api.received() == []
