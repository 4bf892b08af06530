"""The audit log through the REST API and the admin UI: each way in records its actor
(API token, login token, OIDC user), ``GET /audit`` and the Audit page list and filter."""

import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from notifyctl.config import Settings
from notifyctl.services import tokens
from tests.test_web_oidc import make_api, provider  # noqa: F401 (fixtures)
from tests.test_web_oidc import sign_in as id_token
from tests.test_web_ui import csrf_of
from tests.test_web_ui import sign_in as sign_in_by_link
from tests.test_web_ui_oidc import PUBLIC_URL, make_ui  # noqa: F401 (a fixture)
from tests.test_web_ui_oidc import sign_in as sign_in_by_provider
from web.app import create_app

LOGIN = "nfy_ui-login-token"  # (tests.test_web_ui.sign_in opens this link)
AS_LOGIN = {"Authorization": f"Bearer {LOGIN}"}


@pytest.fixture
def app_client(db_url, engine):
    """The API and the admin UI of one app; no credentials of its own."""
    app = create_app(settings=Settings(database_url=db_url), engine=engine, login_token=LOGIN)
    with TestClient(app) as client:
        yield client


def audit_log(client: TestClient, **params) -> dict:
    answer = client.get("/api/v1/audit", params=params, headers=AS_LOGIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- the REST API --------------------------------------------------------------------


def test_the_login_token_and_api_tokens_are_named_as_actors(app_client, engine):
    with Session(engine) as session:
        _, plain = tokens.create_token(session=session, name="deploy")
        session.commit()
    created = app_client.post("/api/v1/clients", json={"phone": "79161234567"}, headers=AS_LOGIN)
    assert created.status_code == 201
    as_token = {"Authorization": f"Bearer {plain}"}
    changed = app_client.patch("/api/v1/clients/1", json={"tag": "vip"}, headers=as_token)
    assert changed.status_code == 200
    items = audit_log(app_client, client_id=1)["items"]
    assert [(i["actor"], i["action"], i["changes"]) for i in items] == [
        ("token:deploy", "updated", {"tag": ["", "vip"]}),
        (
            "login-token",
            "created",
            {
                "phone": [None, "79161234567"],
                "operator_code": [None, "916"],
                "tag": [None, ""],
                "timezone": [None, "UTC"],
            },
        ),
    ]
    assert set(items[0]) == {
        "id",
        "at",
        "actor",
        "action",
        "object_type",
        "object_id",
        "changes",
    }


def test_every_mailing_route_records_its_action(app_client):
    body = {
        "text": "Sale",
        "start_at": "2999-01-01T09:00:00Z",
        "end_at": "2999-01-01T10:00:00Z",
    }
    assert app_client.post("/api/v1/mailings", json=body, headers=AS_LOGIN).status_code == 201
    steps = [("patch", "", {"text": "Sale!"})] + [
        ("post", f"/{action}", None) for action in ("pause", "resume", "retry", "cancel")
    ]
    for method, path, payload in steps:
        answer = app_client.request(
            method, f"/api/v1/mailings/1{path}", json=payload, headers=AS_LOGIN
        )
        assert answer.status_code == 200, answer.text
    assert app_client.delete("/api/v1/mailings/1", headers=AS_LOGIN).status_code == 204
    items = audit_log(app_client, mailing_id=1)["items"]
    assert [i["action"] for i in reversed(items)] == [
        "created",
        "updated",
        "paused",
        "resumed",
        "retried",
        "cancelled",
        "deleted",
    ]
    assert items[-2]["changes"] == {"text": ["Sale", "Sale!"]}


def test_refused_changes_record_nothing(app_client):
    for method, path, payload in [
        ("post", "/api/v1/clients", {"phone": "12345"}),  # 422
        ("post", "/api/v1/clients", {"phone": "79161234567"}),  # 201
        ("post", "/api/v1/clients", {"phone": "+79161234567"}),  # 409
        ("patch", "/api/v1/clients/1", {"timezone": "Mars/Base"}),  # 422
        ("post", "/api/v1/mailings/7/pause", None),  # 404
    ]:
        app_client.request(method, path, json=payload, headers=AS_LOGIN)
    assert audit_log(app_client)["total"] == 1


def test_an_oidc_id_token_is_named_by_its_email(make_api, provider):  # noqa: F811
    api = make_api()
    bearer = {"Authorization": f"Bearer {id_token(provider, 'alice@example.com')}"}
    assert (
        api.post("/api/v1/clients", json={"phone": "79161234567"}, headers=bearer).status_code
        == 201
    )
    items = api.get("/api/v1/audit", headers=bearer).json()["items"]
    assert [i["actor"] for i in items] == ["oidc:alice@example.com"]


def test_audit_is_paged_like_every_list(app_client):
    for n in range(3):
        app_client.post("/api/v1/clients", json={"phone": f"7916000000{n}"}, headers=AS_LOGIN)
    page = audit_log(app_client, limit=2, offset=2)
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 2)
    assert [i["object_id"] for i in page["items"]] == [1]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": -1}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": "abc"}, "offset"),
        ({"offset": -1}, "offset"),
        ({"mailing_id": "abc"}, "mailing_id"),
        ({"mailing_id": 0}, "mailing_id"),
        ({"client_id": 2**70}, "client_id"),
        ({"client_id": "1e3"}, "client_id"),
    ],
)
def test_hostile_query_parameters_are_422_naming_the_field(app_client, params, field):
    answer = app_client.get("/api/v1/audit", params=params, headers=AS_LOGIN)
    assert (answer.status_code, answer.json()["field"]) == (422, field)


def test_the_audit_log_needs_a_token(app_client):
    assert app_client.get("/api/v1/audit").status_code == 401


# --- the admin UI --------------------------------------------------------------------


def test_changes_through_the_login_link_are_recorded_as_the_login_token(app_client):
    csrf = sign_in_by_link(app_client)
    created = app_client.post(
        "/admin/clients/new", data={"csrf_token": csrf, "phone": "79161234567"}
    )
    assert created.status_code == 200
    mailing = app_client.post(
        "/admin/mailings/new",
        data={
            "csrf_token": csrf,
            "text": "Sale",
            "start_at": "2999-01-01T09:00",
            "end_at": "2999-01-01T10:00",
            "zone": "UTC",
        },
    )
    assert mailing.url.path == "/admin/mailings/1"
    assert app_client.post("/admin/mailings/1/pause", data={"csrf_token": csrf}).status_code == 200
    items = audit_log(app_client)["items"]
    assert [(i["actor"], i["action"], i["object_type"]) for i in items] == [
        ("login-token", "paused", "mailing"),
        ("login-token", "created", "mailing"),
        ("login-token", "created", "client"),
    ]


def test_changes_by_a_user_signed_in_through_the_provider_name_them(make_ui):  # noqa: F811
    ui = make_ui(public_url=PUBLIC_URL)
    assert sign_in_by_provider(ui, "alice@example.com").status_code == 303
    csrf = csrf_of(ui.get("/admin/clients/new").text)
    ui.post("/admin/clients/new", data={"csrf_token": csrf, "phone": "79161234567"})
    page = ui.get("/admin/audit")
    assert page.status_code == 200
    assert "oidc:alice@example.com" in page.text


def test_the_audit_page_lists_filters_and_pages(app_client):
    for n in range(3):
        app_client.post("/api/v1/clients", json={"phone": f"7916000000{n}"}, headers=AS_LOGIN)
    app_client.patch("/api/v1/clients/2", json={"tag": "<b>vip</b>"}, headers=AS_LOGIN)
    sign_in_by_link(app_client)
    everything = app_client.get("/admin/audit")
    assert everything.status_code == 200
    assert "4 entries" in everything.text
    assert "&lt;b&gt;vip&lt;/b&gt;" in everything.text  # data, never markup
    of_client = app_client.get("/admin/audit", params={"client_id": "2"})
    assert "2 entries" in of_client.text
    assert re.findall(r">client (\d+)<", of_client.text) == ["2", "2"]
    fragment = app_client.get(
        "/admin/audit", params={"client_id": " 3 "}, headers={"HX-Request": "true"}
    )
    assert 'id="audit"' in fragment.text
    assert "<html" not in fragment.text
    assert "1 entry" in fragment.text


def test_a_bad_filter_on_the_audit_page_says_which_and_shows_nothing(app_client):
    app_client.post("/api/v1/clients", json={"phone": "79161234567"}, headers=AS_LOGIN)
    sign_in_by_link(app_client)
    page = app_client.get("/admin/audit", params={"mailing_id": "abc"})
    assert page.status_code == 422
    assert "mailing_id: &#39;abc&#39; is not an id" in page.text
    assert "0 entries" in page.text


def test_the_audit_page_needs_a_sign_in(app_client):
    answer = app_client.get("/admin/audit", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (
        303,
        "/admin/login?next=/admin/audit",
    )
