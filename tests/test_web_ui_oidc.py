"""Signing in to the admin UI through a real OpenID Connect provider (oidc-provider-mock).

The browser's part is played by hand: the UI runs in-process (TestClient), the provider
over HTTP, and the provider's answer is carried back to the UI's callback.
"""

import shutil
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from loguru import logger
from oidc_provider_mock import run_server_in_thread

from notifyctl.config import Settings
from notifyctl.db import make_engine
from notifyctl.models import AdminSession
from web.app import create_app

PUBLIC_URL = "https://notify.example.com"
CALLBACK = f"{PUBLIC_URL}/admin/auth/callback"
CLIENT_ID = "notifyctl-admin"


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def make_ui(tmp_path, sqlite_template, provider):
    """``make_ui(**settings)``: the admin UI signing in through ``provider``."""
    path = tmp_path / "ui.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engines, clients = [], []

    def build(**settings) -> TestClient:
        options = {"oidc_client_id": CLIENT_ID, "oidc_client_secret": "any"} | settings
        engine = make_engine(url)
        app = create_app(
            settings=Settings(database_url=url, oidc_issuer=provider, **options),
            engine=engine,
            login_token="not-with-a-provider",
        )
        engines.append(engine)
        clients.append(client := TestClient(app))
        return client

    yield build
    for client in clients:
        client.close()
    for engine in engines:
        engine.dispose()


def sessions_stored(ui: TestClient) -> int:
    with ui.app.state.engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(AdminSession)).scalar()


def authorize_url(ui: TestClient, **headers: str) -> str:
    """Start signing in; return the provider URL the UI sends the browser to."""
    start = ui.get("/admin/login/oidc?next=/admin/clients", headers=headers, follow_redirects=False)
    assert start.status_code == 302, start.text
    return start.headers["location"]


def sign_in(ui: TestClient, subject: str) -> httpx.Response:
    """The whole dance: to the provider, sign in there as ``subject``, back to the UI."""
    with httpx.Client() as browser:
        answer = browser.post(authorize_url(ui), data={"sub": subject})
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return ui.get(f"{back.path}?{back.query}", follow_redirects=False)


def test_the_redirect_uri_is_the_public_url_whatever_the_host_header(make_ui):
    ui = make_ui(public_url=PUBLIC_URL)
    for host in ("evil.example", "notify.example.com:8443", "127.0.0.1"):
        query = parse_qs(urlsplit(authorize_url(ui, host=host)).query)
        assert query["redirect_uri"] == [CALLBACK], host


def test_signing_in_through_the_provider_opens_the_page_asked_for(make_ui):
    ui = make_ui(public_url=f"{PUBLIC_URL}/")
    back = sign_in(ui, "alice@example.com")
    assert (back.status_code, back.headers["location"]) == (303, "/admin/clients")
    page = ui.get("/admin/clients")
    assert page.status_code == 200
    assert "Signed in as alice@example.com" in page.text


def test_without_a_public_url_provider_sign_in_is_off_and_says_why(make_ui):
    warnings: list[str] = []
    sink = logger.add(lambda line: warnings.append(str(line)), level="WARNING")
    try:
        ui = make_ui()
    finally:
        logger.remove(sink)
    assert any("NOTIFY_PUBLIC_URL is not" in line for line in warnings)
    page = ui.get("/admin/login")
    assert page.status_code == 503
    assert "NOTIFY_PUBLIC_URL" in page.text
    assert "Sign in with your organisation" not in page.text
    start = ui.get("/admin/login/oidc", follow_redirects=False)
    assert start.status_code == 503
    assert "NOTIFY_PUBLIC_URL" in start.text


def test_a_malformed_public_url_is_refused_at_start():
    for bad in (
        "notify.example.com",
        "https://notify.example.com/admin",
        "ftp://x",
        "https://u:p@x",
    ):
        with pytest.raises(ValueError, match="not a site address"):
            Settings(public_url=bad)


def test_a_token_response_without_an_id_token_signs_nobody_in(make_ui, provider):
    # A client the provider grants no "openid" scope: its token answer has no ID token.
    registered = (
        httpx.post(
            f"{provider}/oauth2/clients",
            json={"redirect_uris": [CALLBACK], "scope": "email profile"},
        )
        .raise_for_status()
        .json()
    )
    ui = make_ui(
        public_url=PUBLIC_URL,
        oidc_client_id=registered["client_id"],
        oidc_client_secret=registered["client_secret"],
    )
    back = sign_in(ui, "alice@example.com")
    assert back.status_code == 401
    assert "did not say who you are" in back.text
    assert "None" not in back.text
    assert ui.get("/admin/", follow_redirects=False).status_code == 303
    assert sessions_stored(ui) == 0
