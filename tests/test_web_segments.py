"""SMS segments and cost in the REST API and the admin UI, on SQLite and PostgreSQL."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from notifyctl.config import Settings
from tests.factories import add_clients, add_mailing
from web.app import create_app

LOGIN = "nfy_segments-login-token"
TWO_SEGMENTS = "a" * 159 + "["  # 161 septets


def make_client(db_url, engine, price: str | None, **kwargs) -> TestClient:
    settings = Settings(database_url=db_url, segment_price=price)
    return TestClient(create_app(settings=settings, engine=engine, login_token=LOGIN), **kwargs)


@pytest.fixture
def api(db_url, engine):
    with make_client(db_url, engine, None, headers={"Authorization": f"Bearer {LOGIN}"}) as c:
        yield c


@pytest.fixture
def priced_api(db_url, engine):
    with make_client(db_url, engine, "0.05", headers={"Authorization": f"Bearer {LOGIN}"}) as c:
        yield c


def iso(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def test_mailing_json_carries_its_segments(api):
    body = {"text": TWO_SEGMENTS, "start_at": iso(), "end_at": iso(timedelta(hours=1))}
    created = api.post("/api/v1/mailings", json=body).json()
    two = {"encoding": "GSM-7", "characters": 161, "segments": 2}
    assert created["segments"] == two
    assert api.get(f"/api/v1/mailings/{created['id']}").json()["segments"] == two
    changed = api.patch(f"/api/v1/mailings/{created['id']}", json={"text": "Привет 😀"})
    assert changed.json()["segments"] == {"encoding": "UCS-2", "characters": 9, "segments": 1}
    assert api.get("/api/v1/mailings").json()["items"][0]["segments"]["encoding"] == "UCS-2"


def test_stats_have_no_cost_without_a_price(api, session):
    mailing = add_mailing(session, text=TWO_SEGMENTS)
    assert api.get(f"/api/v1/mailings/{mailing.id}/stats").json()["cost"] is None


def test_stats_show_estimated_and_spent_cost_with_a_price(priced_api, session):
    add_clients(session, 3)
    mailing = add_mailing(session, text=TWO_SEGMENTS, starts_in=timedelta(hours=1))
    answer = priced_api.get(f"/api/v1/mailings/{mailing.id}/stats")
    assert answer.status_code == 200
    assert answer.json()["cost"] == {
        "price_per_segment": "0.05",
        "estimated": "0.30",
        "segments": 2,
        "audience": 3,
        "spent": "0.00",
    }


# --- the admin UI --------------------------------------------------------------------


@pytest.fixture
def browser(db_url, engine):
    """A signed-in user of the admin UI (price 0.05 a segment); yields (client, CSRF token)."""
    with make_client(db_url, engine, "0.05") as client:
        page = client.get(f"/admin/login?token={LOGIN}")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        yield client, csrf


def preview(browser, text: str) -> str:
    client, csrf = browser
    headers = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    answer = client.post("/admin/mailings/segments", data={"text": text}, headers=headers)
    assert answer.status_code == 200
    return answer.text


def test_the_form_asks_for_the_segments_as_the_text_is_typed(browser):
    client, _ = browser
    form = client.get("/admin/mailings/new").text
    textarea = re.search(r"<textarea[^>]*>", form).group(0)
    assert 'hx-post="/admin/mailings/segments"' in textarea
    assert 'hx-target="#segments"' in textarea
    assert 'id="segments"' in form


#: typed text -> (segments, encoding, characters) the preview shows
PREVIEWS = {
    "a" * 160: (1, "GSM-7", 160),
    TWO_SEGMENTS: (2, "GSM-7", 161),
    "Я" * 71: (2, "UCS-2", 71),
    "   ": (0, "GSM-7", 0),  # a blank field is no error while it is being filled
}


def test_the_segment_preview_counts_the_text(browser):
    # One test for all texts (the preview reads no database: one setup per backend).
    for text, (segments, encoding, characters) in PREVIEWS.items():
        html = preview(browser, text)
        assert f'data-segments="{segments}"' in html, text
        assert f'data-encoding="{encoding}"' in html, text
        assert f'data-characters="{characters}"' in html, text


def test_the_segment_preview_says_when_the_text_is_too_long(browser):
    html = preview(browser, "a" * 1001)
    assert "at most 1000" in html
    assert "data-segments" not in html


def test_the_mailing_page_shows_segments_and_cost(browser, session):
    client, _ = browser
    add_clients(session, 4)
    mailing = add_mailing(session, text=TWO_SEGMENTS, starts_in=timedelta(hours=1))
    page = client.get(f"/admin/mailings/{mailing.id}").text
    assert 'data-segments="2"' in page
    estimated = re.search(r'data-estimated="([^"]+)"', page).group(1)
    assert Decimal(estimated) == Decimal("0.40")  # 4 clients x 2 segments x 0.05
    assert 'data-spent="0.00"' in page
