"""Wrong input is a 4xx naming the field, never a 5xx (issue 14, item 3), on SQLite and
PostgreSQL; a 5xx that still happens is logged with its request id and counted; a
database failure tells the caller nothing about the database."""

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from notifyctl.config import Settings
from notifyctl.models import Mailing
from tests.factories import add_mailing
from web.app import create_app

LOGIN = "nfy_input-errors-login-token"
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
    """A signed-in admin: the login link opened."""
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get(f"/admin/login?token={LOGIN}").status_code == 200
        yield client


@pytest.fixture
def logged():
    """Every log record of the test: (level, message, extra, exception type)."""
    records: list[tuple[str, str, dict, type | None]] = []

    def keep(message) -> None:
        record = message.record
        exception = record["exception"].type if record["exception"] else None
        records.append((record["level"].name, record["message"], record["extra"], exception))

    sink = logger.add(keep, level="DEBUG")
    yield records
    logger.remove(sink)


def iso(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def mailing(**fields) -> dict:
    """A valid mailing body (running now, for an hour) with ``fields`` changed."""
    return {"text": "x", "start_at": iso(), "end_at": iso(timedelta(hours=1))} | fields


def send_json(client: TestClient, method: str, path: str, body) -> object:
    """``body`` as JSON with \\u escapes, so that a lone surrogate can travel (as any
    caller's JSON may carry one)."""
    content = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    return client.request(method, path, content=content, headers=headers)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<small class="error" id="([\w]+)-error">([^<]+)</small>', html))


def requests_counted(client: TestClient) -> dict[tuple[str, str, str], float]:
    exposition = client.get("/metrics").text
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if s.name == "notifyctl_http_requests_total"
    }


# --- times ---------------------------------------------------------------------------

#: Times with no UTC equivalent (the first two), or too near the ends of the calendar to
#: be shown in every timezone.
OUT_OF_RANGE = [
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z",
]


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
@pytest.mark.parametrize("field", ["start_at", "end_at"])
def test_a_time_out_of_range_is_422_naming_its_field(api, field, moment):
    created = api.post("/api/v1/mailings", json=mailing(**{field: moment}))
    assert (created.status_code, created.json()["field"]) == (422, field), created.text
    assert "out of range" in created.json()["detail"]
    stored = api.post("/api/v1/mailings", json=mailing()).json()
    changed = api.patch(f"/api/v1/mailings/{stored['id']}", json={field: moment})
    assert (changed.status_code, changed.json()["field"]) == (422, field), changed.text
    assert api.get(f"/api/v1/mailings/{stored['id']}").json() == stored


@pytest.mark.parametrize("moment", ["0001-01-01T00:00", "9999-12-31T23:59"])
@pytest.mark.parametrize("field", ["start_at", "end_at"])
def test_a_time_out_of_range_in_the_admin_form_is_shown_next_to_its_field(
    browser, session, field, moment
):
    csrf = csrf_of(browser.get("/admin/mailings/new").text)
    now = datetime.now(UTC)
    form = {
        "csrf_token": csrf,
        "text": "Sale",
        "start_at": now.strftime("%Y-%m-%dT%H:%M"),
        "end_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        # East of UTC for year 1, west for year 9999: no UTC time at all.
        "zone": "Asia/Tokyo" if moment.startswith("0001") else "America/New_York",
    } | {field: moment}
    answer = browser.post("/admin/mailings/new", data=form)
    assert answer.status_code == 422
    assert "out of range" in field_errors(answer.text)[field]
    assert session.exec(select(Mailing)).all() == []


def test_a_time_out_of_range_in_the_edit_form_is_shown_and_changes_nothing(browser, session):
    mailing = add_mailing(session, starts_in=timedelta(hours=1))
    csrf = csrf_of(browser.get(f"/admin/mailings/{mailing.id}/edit").text)
    form = {
        "csrf_token": csrf,
        "text": "Changed",
        "start_at": "0001-01-01T00:00",
        "end_at": "2099-01-01T00:00",
        "zone": "Asia/Tokyo",
    }
    answer = browser.post(f"/admin/mailings/{mailing.id}/edit", data=form)
    assert answer.status_code == 422
    assert "start_at" in field_errors(answer.text)
    session.expire_all()
    assert session.get(Mailing, mailing.id).text == "Hello"


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31, 23, 59, 59),
        timezones=st.one_of(
            st.none(),
            st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
                lambda minutes: timezone(timedelta(minutes=minutes))
            ),
        ),
    ),
    field=st.sampled_from(["start_at", "end_at"]),
)
def _any_time_is_a_mailing_or_a_422(api, moment: datetime, field: str) -> None:
    answer = api.post("/api/v1/mailings", json=mailing(**{field: moment.isoformat()}))
    assert answer.status_code in (201, 422), (moment, answer.text)
    if answer.status_code == 422:  # (out of range; or the end not after the start)
        assert answer.json()["field"] in (field, "end_at")


def test_any_time_of_the_calendar_is_a_mailing_or_a_422(api):
    _any_time_is_a_mailing_or_a_422(api)
