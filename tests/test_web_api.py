"""The REST API, in-process over ASGI, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from notifyctl.config import Settings
from notifyctl.db import make_engine
from notifyctl.services import audience, tokens
from web.app import create_app

LOGIN = "nfy_login-token-for-tests"
AUTH = {"Authorization": f"Bearer {LOGIN}"}


@pytest.fixture
def engine_for_api(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def api(db_url, engine_for_api):
    app = create_app(
        settings=Settings(database_url=db_url), engine=engine_for_api, login_token=LOGIN
    )
    with TestClient(app, headers=AUTH) as client:
        yield client


def iso(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def new_mailing(api, **fields):
    body = {"text": "Sale", "start_at": iso(), "end_at": iso(timedelta(hours=1))} | fields
    response = api.post("/api/v1/mailings", json=body)
    assert response.status_code == 201, response.text
    return response.json()


# --- clients -------------------------------------------------------------------------


def test_client_lifecycle(api):
    created = api.post("/api/v1/clients", json={"phone": "+7 (916) 123-45-67", "tag": "vip"})
    assert created.status_code == 201
    client = created.json()
    assert (client["phone"], client["operator_code"], client["timezone"]) == (
        "79161234567",
        "916",
        "UTC",
    )
    assert api.get(f"/api/v1/clients/{client['id']}").json() == client
    changed = api.patch(f"/api/v1/clients/{client['id']}", json={"tag": "gold"})
    assert (changed.status_code, changed.json()["tag"]) == (200, "gold")
    assert api.delete(f"/api/v1/clients/{client['id']}").status_code == 204
    assert api.get(f"/api/v1/clients/{client['id']}").status_code == 404


def test_client_list_is_paginated_and_filtered(api):
    for n, tag in enumerate(["a", "a", "b"]):
        api.post("/api/v1/clients", json={"phone": f"7916000000{n}", "tag": tag})
    page = api.get("/api/v1/clients", params={"tag": "a", "limit": 1, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (2, 1, 1, 1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "12345"}, "phone"),
        ({"phone": "79161234567", "timezone": "Mars/Base"}, "timezone"),
        ({"phone": "79161234567", "operator_code": "12"}, "operator_code"),
        ({"tag": "x"}, "phone"),
        ({"phone": 79161234567}, "phone"),
    ],
)
def test_invalid_client_is_422_naming_the_field_and_stores_nothing(api, body, field):
    response = api.post("/api/v1/clients", json=body)
    assert response.status_code == 422
    assert (response.json()["code"], response.json()["field"]) == ("invalid_input", field)
    assert api.get("/api/v1/clients").json()["total"] == 0


def test_duplicate_phone_is_409(api):
    api.post("/api/v1/clients", json={"phone": "79161234567"})
    response = api.post("/api/v1/clients", json={"phone": "+7 916 123 45 67"})
    assert (response.status_code, response.json()["field"]) == (409, "phone")


# --- mailings ------------------------------------------------------------------------


@pytest.mark.clock
def test_mailing_lifecycle_and_steering(api):
    mailing = new_mailing(
        api, filter={"tags": ["vip"]}, send_window={"start": "09:00", "end": "21:00"}
    )
    assert mailing["state"] == "running"
    assert mailing["filter"] == {"operator_codes": [], "tags": ["vip"]}
    path = f"/api/v1/mailings/{mailing['id']}"
    assert api.post(f"{path}/pause").json()["state"] == "paused"
    assert api.post(f"{path}/pause").status_code == 409
    assert api.post(f"{path}/resume").json()["state"] == "running"
    assert api.patch(path, json={"text": "New"}).json()["text"] == "New"
    assert api.post(f"{path}/retry").status_code == 200
    assert api.post(f"{path}/cancel").json()["state"] == "cancelled"
    assert api.patch(path, json={"text": "late"}).status_code == 409
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404


@pytest.mark.clock
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"end_at": iso(-timedelta(hours=2)), "start_at": iso(-timedelta(hours=3))}, "end_at"),
        ({"end_at": iso(-timedelta(minutes=1))}, "end_at"),
        ({"text": ""}, "text"),
        ({"start_at": "2026-12-01T09:00:00"}, "start_at"),
        ({"send_window": {"start": "9", "end": "21:00"}}, "send_window.start"),
        ({"filter": {"operator_codes": ["91"]}}, "filter.operator_codes"),
        ({"filter": {"colour": ["red"]}}, "filter.colour"),
        ({"filter": {"tags": [f"t{n}" for n in range(101)]}}, "filter.tags"),
        ({"filter": {"tags": ["x" * 65]}}, "filter.tags"),
        ({"filter": {"operator_codes": ["916"] * 101}}, "filter.operator_codes"),
        ({"filter": {"operator_codes": ["9" * 65]}}, "filter.operator_codes"),
    ],
)
def test_invalid_mailing_is_422_naming_the_field(api, change, field):
    body = {"text": "x", "start_at": iso(), "end_at": iso(timedelta(hours=1))} | change
    response = api.post("/api/v1/mailings", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert api.get("/api/v1/mailings").json()["total"] == 0


@pytest.mark.clock
def test_a_change_to_100000_tags_is_422_and_changes_nothing(api):
    mailing = new_mailing(api, filter={"tags": ["vip"]})
    path = f"/api/v1/mailings/{mailing['id']}"
    answer = api.patch(path, json={"filter": {"tags": [f"t{n}" for n in range(100_000)]}})
    assert (answer.status_code, answer.json()["field"]) == (422, "filter.tags")
    assert "at most 100" in answer.json()["detail"]
    assert api.get(path).json()["filter"]["tags"] == ["vip"]


def test_unknown_ids_are_404_with_the_error_shape(api):
    for method, path in [
        ("get", "/api/v1/mailings/99"),
        ("post", "/api/v1/mailings/99/cancel"),
        ("get", "/api/v1/mailings/99/stats"),
        ("get", "/api/v1/mailings/99/messages"),
        ("get", "/api/v1/messages/99"),
        ("patch", "/api/v1/clients/99"),
    ]:
        response = getattr(api, method)(path, **({"json": {}} if method == "patch" else {}))
        assert response.status_code == 404, path
        assert set(response.json()) == {"detail", "code", "field"}


# --- statistics ----------------------------------------------------------------------


def test_stats_routes_match_the_cli_json(api, db_url, engine_for_api):
    from tests.conftest import Cli

    for n in range(3):
        api.post("/api/v1/clients", json={"phone": f"7916000000{n}"})
    mailing = new_mailing(api)
    with Session(engine_for_api) as session:
        from notifyctl.services.mailings import get_mailing

        audience.materialise(
            session=session, mailing=get_mailing(session=session, mailing_id=mailing["id"])
        )
        session.commit()
    cli = Cli(db_url)
    import json

    assert api.get("/api/v1/stats").json() == json.loads(cli("stats", "--json").stdout)
    one = api.get(f"/api/v1/mailings/{mailing['id']}/stats").json()
    assert one == json.loads(cli("stats", str(mailing["id"]), "--json").stdout)
    assert (one["total"], one["by_status"]["pending"], len(one["messages"])) == (3, 3, 3)
    page = api.get(
        f"/api/v1/mailings/{mailing['id']}/messages", params={"status": "pending", "limit": 2}
    )
    assert (page.json()["total"], len(page.json()["items"])) == (3, 2)
    message_id = page.json()["items"][0]["id"]
    detail = api.get(f"/api/v1/messages/{message_id}").json()
    assert (detail["status"], detail["attempts"], detail["attempt_history"]) == ("pending", 0, [])
    bad = api.get(f"/api/v1/mailings/{mailing['id']}/messages", params={"status": "lost"})
    assert (bad.status_code, bad.json()["field"]) == (422, "status")


def test_paging_bounds_are_checked(api):
    response = api.get("/api/v1/clients", params={"limit": 0})
    assert (response.status_code, response.json()["field"]) == (422, "limit")


# --- authentication ------------------------------------------------------------------


def test_anonymous_and_wrong_tokens_are_refused(api):
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic x"},
    ):
        response = api.get("/api/v1/stats", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_api_tokens_work_until_revoked(api, engine_for_api):
    with Session(engine_for_api) as session:
        _, plain = tokens.create_token(session=session, name="script")
        session.commit()
    headers = {"Authorization": f"Bearer {plain}"}
    assert api.get("/api/v1/stats", headers=headers).status_code == 200
    with Session(engine_for_api) as session:
        tokens.revoke_token(session=session, name="script")
        session.commit()
    assert api.get("/api/v1/stats", headers=headers).status_code == 401


def test_health_and_docs_need_no_token(api):
    anonymous = {"Authorization": ""}
    assert api.get("/healthz", headers=anonymous).json()["status"] == "ok"
    assert api.get("/docs/", headers=anonymous).status_code == 200
    assert api.get("/docs", headers=anonymous, follow_redirects=False).status_code in (307, 308)
    assert api.get("/openapi.json", headers=anonymous).status_code == 200


def test_every_route_has_a_summary_and_lists_its_errors(api):
    spec = api.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            if path.startswith("/api/v1"):
                assert "401" in operation["responses"], (method, path)
                assert "422" in operation["responses"], (method, path)


def test_requests_carry_a_request_id(api):
    response = api.get("/api/v1/stats", headers={"X-Request-ID": "abc123"})
    assert response.headers["X-Request-ID"] == "abc123"
