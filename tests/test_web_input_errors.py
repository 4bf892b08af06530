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
from notifyctl.models import Client, Mailing
from tests.factories import add_clients, add_mailing
from tests.servers import free_port
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


# --- text ----------------------------------------------------------------------------

NUL, SURROGATE = "a\x00b", "a\ud800b"


def _client_id(api) -> int:
    return api.post("/api/v1/clients", json={"phone": "79160000001"}).json()["id"]


def _mailing_id(api) -> int:
    return api.post("/api/v1/mailings", json=mailing()).json()["id"]


#: (method, path or a function making the object and returning its id, body with a
#: text in one field, the field)
CREATES = [
    ("POST", "/api/v1/clients", lambda t: {"phone": "79161234567", "tag": t}, "tag"),
    ("POST", "/api/v1/mailings", lambda t: mailing(text=t), "text"),
    ("POST", "/api/v1/mailings", lambda t: mailing(filter={"tags": ["vip", t]}), "filter.tags"),
]
TEXT_CASES = [
    *CREATES,
    ("POST", "/api/v1/clients", lambda t: {"phone": t}, "phone"),
    ("POST", "/api/v1/clients", lambda t: {"phone": "79161234567", "timezone": t}, "timezone"),
    (
        "POST",
        "/api/v1/clients",
        lambda t: {"phone": "79161234567", "operator_code": t},
        "operator_code",
    ),
    ("PATCH", _client_id, lambda t: {"tag": t}, "tag"),
    (
        "POST",
        "/api/v1/mailings",
        lambda t: mailing(filter={"operator_codes": [t]}),
        "filter.operator_codes",
    ),
    (
        "POST",
        "/api/v1/mailings",
        lambda t: mailing(send_window={"start": t, "end": "21:00"}),
        "send_window.start",
    ),
    ("PATCH", _mailing_id, lambda t: {"text": t}, "text"),
]


@pytest.mark.parametrize("hostile", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize(
    ("method", "where", "body", "field"), TEXT_CASES, ids=[f"{c[0]}-{c[3]}" for c in TEXT_CASES]
)
def test_a_nul_or_lone_surrogate_is_422_naming_the_field(api, method, where, body, field, hostile):
    if callable(where):
        where = f"/api/v1/{'clients' if where is _client_id else 'mailings'}/{where(api)}"
    before = api.get("/api/v1/clients").json(), api.get("/api/v1/mailings").json()
    answer = send_json(api, method, where, body(hostile))
    assert (answer.status_code, answer.json()["field"]) == (422, field), answer.text
    assert (api.get("/api/v1/clients").json(), api.get("/api/v1/mailings").json()) == before


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/clients?tag=a%00b", "tag"),
        ("/api/v1/clients?operator_code=%00", "operator_code"),
        ("/api/v1/clients?phone=7%00", "phone"),  # a search is digits and punctuation only
        ("/api/v1/mailings/1/messages?status=%00", "status"),
        ("/api/v1/mailings/1/stats?status=%00", "status"),
    ],
)
def test_a_nul_in_a_query_is_a_422_or_harmless(api, path, field):
    _mailing_id(api)
    answer = api.get(path)
    if field is None:
        assert answer.status_code == 200
    else:
        assert (answer.status_code, answer.json()["field"]) == (422, field), answer.text


def test_a_field_named_with_a_lone_surrogate_is_422(api):
    answer = send_json(api, "POST", "/api/v1/mailings", mailing(filter={"\ud800": []}))
    assert (answer.status_code, answer.json()["field"]) == (422, "filter")


def test_a_nul_in_an_admin_form_is_shown_next_to_its_field(browser, session):
    csrf = csrf_of(browser.get("/admin/clients/new").text)
    form = {"csrf_token": csrf, "phone": "79161234567", "tag": NUL}
    answer = browser.post("/admin/clients/new", data=form)
    assert answer.status_code == 422
    assert "NUL" in field_errors(answer.text)["tag"]
    csrf = csrf_of(browser.get("/admin/mailings/new").text)
    now = datetime.now(UTC)
    form = {
        "csrf_token": csrf,
        "text": NUL,
        "start_at": now.strftime("%Y-%m-%dT%H:%M"),
        "end_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "zone": "UTC",
    }
    answer = browser.post("/admin/mailings/new", data=form)
    assert answer.status_code == 422
    assert "NUL" in field_errors(answer.text)["text"]
    assert session.exec(select(Client)).all() == session.exec(select(Mailing)).all() == []
    searched = browser.get("/admin/clients", params={"tag": NUL})
    assert searched.status_code == 422


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    case=st.sampled_from(CREATES),
    text=st.tuples(
        st.text(max_size=10), st.sampled_from(["", "\x00", "\ud800", "\udfff"]), st.integers(0, 10)
    ).map(lambda parts: parts[0][: parts[2]] + parts[1] + parts[0][parts[2] :]),
)
def _any_text_is_stored_or_a_422(api, case, text: str) -> None:
    _, where, body, field = case
    answer = send_json(api, "POST", where, body(text))
    assert answer.status_code in (201, 422), (text, answer.text)
    if answer.status_code == 201:
        assert api.delete(f"{where}/{answer.json()['id']}").status_code == 204
    else:
        assert answer.json()["field"] == field


def test_any_text_in_a_field_is_stored_or_a_422(api):
    _any_text_is_stored_or_a_422(api)


def test_add_clients_and_mailings_still_work_beside_these_refusals(api, session):
    """(The rules above refuse only what they name.)"""
    add_clients(session, 2, tag="vip")
    mailing = add_mailing(session, text="Ünïcödé ✓ 日本語 \t\n emoji 🎉", tags=["vip"])
    shown = api.get(f"/api/v1/mailings/{mailing.id}").json()
    assert shown["text"] == "Ünïcödé ✓ 日本語 \t\n emoji 🎉"
    assert api.get("/api/v1/clients", params={"tag": "vip"}).json()["total"] == 2


# --- tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["é", "nfy_\u00e9\u00e9", "\u2603"])
def test_a_non_ascii_login_token_is_refused(app, token):
    with TestClient(app, raise_server_exceptions=False) as visitor:
        answer = visitor.get("/admin/login", params={"token": token})
        assert answer.status_code == 401
        assert visitor.get("/admin/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("token", [b"\xe9", b"nfy_\xff\xfe", "☃".encode()])
def test_a_non_ascii_bearer_token_is_refused(db_url, engine, token):
    """Header bytes outside ASCII, against a login token read from an environment that is
    not UTF-8 (Python keeps such bytes as lone surrogates, which ``str.encode`` refuses)."""
    login = "ключ\udcff"
    app = create_app(settings=Settings(database_url=db_url), engine=engine, login_token=login)
    with TestClient(app, raise_server_exceptions=False) as visitor:
        answer = visitor.get("/api/v1/clients", headers={b"Authorization": b"Bearer " + token})
        assert answer.status_code == 401, answer.text


@pytest.mark.parametrize("sent", ["é", "ü" * 43])
def test_a_non_ascii_csrf_token_is_refused_and_changes_nothing(browser, session, sent):
    form = {"csrf_token": sent, "phone": "79161234567"}
    assert browser.post("/admin/clients/new", data=form).status_code == 403
    header = {"X-CSRF-Token": sent.encode()}  # (read back as Latin-1: non-ASCII all the same)
    answer = browser.post("/admin/clients/new", data={"phone": "79161234567"}, headers=header)
    assert answer.status_code == 403
    assert session.exec(select(Client)).all() == []


# --- database failures ---------------------------------------------------------------


@pytest.fixture
def unreachable():
    """An API whose PostgreSQL is not there (nobody listens on its port), and that port."""
    from notifyctl.db import make_engine

    port = free_port()
    url = f"postgresql+psycopg://ghost_user:ghost_pw@127.0.0.1:{port}/ghost_db"
    engine = make_engine(url)
    yield create_app(settings=Settings(database_url=url), engine=engine, login_token=LOGIN), port
    engine.dispose()


def test_a_database_failure_names_no_database_and_is_logged(unreachable, logged):
    app, port = unreachable
    with TestClient(app, headers=AUTH, raise_server_exceptions=False) as client:
        answer = client.get("/api/v1/stats")
        page = client.get(f"/admin/login?token={LOGIN}")  # (a sign-in is stored)
    assert (answer.status_code, answer.json()["code"]) == (503, "unavailable")
    assert page.status_code == 503
    for text in (answer.text, page.text):
        for detail in ("ghost", "127.0.0.1", str(port), "psycopg", "postgresql", "connection"):
            assert detail not in text
    rid = answer.headers["X-Request-ID"]
    failures = [r for r in logged if r[0] == "ERROR" and r[2].get("request_id") == rid]
    assert any("ghost_db" in message for _, message, _, _ in failures)
    assert not any("ghost_pw" in message for _, message, _, _ in logged)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite stores a NUL
def test_a_value_the_database_refuses_is_a_422_that_names_no_database(
    api, db_url, monkeypatch, logged
):
    """The last line of defence: a value no field check caught (here: with the check for
    NUL switched off), which PostgreSQL refuses as data."""
    from notifyctl.services import validation

    monkeypatch.setattr(validation, "storable", lambda raw, *, field: raw)
    answer = api.post("/api/v1/clients", json={"phone": "79161234567", "tag": "a\x00b"})
    assert (answer.status_code, answer.json()["code"]) == (422, "invalid_input"), answer.text
    assert "notifyctl_test" not in answer.text
    assert "postgres" not in answer.text
    assert any("NUL" in message for level, message, _, _ in logged if level == "WARNING")
    assert api.get("/api/v1/clients").json()["total"] == 0


# --- what still goes wrong -----------------------------------------------------------


def test_an_unexpected_exception_is_a_500_logged_with_its_request_id_and_counted(
    api, monkeypatch, logged
):
    from notifyctl.services import stats

    def broken(**_kwargs):
        raise RuntimeError("boom at /srv/secret/path")

    monkeypatch.setattr(stats, "overall_stats", broken)
    answer = api.get("/api/v1/stats", headers={"X-Request-ID": "req-500"})
    assert answer.status_code == 500
    assert answer.json()["code"] == "internal_error"
    assert "req-500" in answer.json()["detail"]
    assert "boom" not in answer.text
    assert "RuntimeError" not in answer.text
    assert answer.headers["X-Request-ID"] == "req-500"
    mine = [r for r in logged if r[2].get("request_id") == "req-500"]
    assert [(level, exception) for level, _, _, exception in mine] == [
        ("ERROR", RuntimeError),  # what happened, with its traceback
        ("ERROR", None),  # the request line: GET /api/v1/stats -> 500
    ]
    assert "-> 500" in mine[1][1]
    assert requests_counted(api)[("GET", "/api/v1/stats", "500")] == 1


def test_an_unexpected_exception_in_the_admin_ui_is_a_500_page(browser, monkeypatch, logged):
    from notifyctl.services import mailings

    def broken(**_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(mailings, "list_mailings", broken)
    answer = browser.get("/admin/")
    assert answer.status_code == 500
    assert "text/html" in answer.headers["content-type"]
    assert "boom" not in answer.text
    assert answer.headers["X-Request-ID"] in answer.text
    assert requests_counted(browser)[("GET", "/admin/", "500")] == 1
    assert any(r[3] is RuntimeError for r in logged)


def test_the_traceback_of_a_500_shows_no_variable_values(app, monkeypatch, capsys):
    import sys

    from notifyctl.logs import configure_logging
    from notifyctl.services import stats

    def broken(**_kwargs):
        password = "s3cr3t-local-value"
        raise RuntimeError("boom" if password else "")  # (loguru's diagnose shows password)

    monkeypatch.setattr(stats, "overall_stats", broken)
    configure_logging(Settings(log_format="text"))
    try:
        with TestClient(app, headers=AUTH, raise_server_exceptions=False) as client:
            answer = client.get("/api/v1/stats", headers={"X-Request-ID": "req-tb"})
    finally:
        logger.remove()
        logger.add(sys.stderr)
    assert answer.status_code == 500
    logged = capsys.readouterr().err
    assert "request_id=req-tb" in logged
    assert "RuntimeError: boom" in logged
    assert "s3cr3t-local-value" not in logged
