"""ID tokens from a real OpenID Connect provider (oidc-provider-mock) open the REST API."""

from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from oidc_provider_mock import run_server_in_thread

from notifyctl.config import Settings
from notifyctl.db import make_engine
from web.app import create_app

CLIENT_ID = "notifyctl-admin"
REDIRECT = "http://127.0.0.1/callback"


@pytest.fixture(scope="module")
def provider():
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


def sign_in(issuer: str, subject: str, client_id: str = CLIENT_ID) -> str:
    """Run the authorization-code flow as a browser would; return the ID token."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": "xyz",
    }
    with httpx.Client(base_url=issuer) as browser:
        answer = browser.post("/oauth2/authorize", params=params, data={"sub": subject})
        assert answer.status_code == 302, answer.text
        code = parse_qs(urlparse(answer.headers["location"]).query)["code"][0]
        tokens = (
            browser.post(
                "/oauth2/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "client_id": client_id,
                    "client_secret": "any",
                },
            )
            .raise_for_status()
            .json()
        )
    return tokens["id_token"]


@pytest.fixture
def make_api(tmp_path, sqlite_template, provider):
    import shutil

    path = tmp_path / "oidc.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engines = []

    def build(**oidc):
        settings = Settings(
            database_url=url, oidc_issuer=provider, oidc_client_id=CLIENT_ID, **oidc
        )
        engine = make_engine(url)
        engines.append(engine)
        return TestClient(create_app(settings=settings, engine=engine))

    yield build
    for engine in engines:
        engine.dispose()


def test_an_id_token_from_the_provider_is_accepted(make_api, provider):
    token = sign_in(provider, "alice@example.com")
    api = make_api()
    response = api.get("/api/v1/stats", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_a_token_issued_to_another_client_is_refused(make_api, provider):
    token = sign_in(provider, "alice@example.com", client_id="someone-else")
    response = make_api().get("/api/v1/stats", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_a_forged_token_is_refused(make_api, provider):
    claims = jwt.decode(sign_in(provider, "alice@example.com"), options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-providers-key-but-long-enough!!", algorithm="HS256")
    response = make_api().get("/api/v1/stats", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_only_allowed_users_get_in_when_a_list_is_set(make_api, provider):
    api = make_api(oidc_allowed_users=["bob@example.com"])
    alice = sign_in(provider, "alice@example.com")
    bob = sign_in(provider, "bob@example.com")
    assert api.get("/api/v1/stats", headers={"Authorization": f"Bearer {alice}"}).status_code == 401
    assert api.get("/api/v1/stats", headers={"Authorization": f"Bearer {bob}"}).status_code == 200


@pytest.mark.clock
def test_an_expired_id_token_is_refused(tmp_path, sqlite_template):
    import shutil
    import time
    from datetime import timedelta

    path = tmp_path / "expired.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    # The provider writes iat and exp in whole seconds: a token of "1 second" lives 0-1 s
    # from the moment it is issued, too short to be used once on a busy machine.
    with run_server_in_thread(access_token_max_age=timedelta(seconds=3)) as server:
        issuer = f"http://localhost:{server.server_port}"
        token = sign_in(issuer, "alice@example.com")
        expires = jwt.decode(token, options={"verify_signature": False})["exp"]
        settings = Settings(database_url=url, oidc_issuer=issuer, oidc_client_id=CLIENT_ID)
        engine = make_engine(url)
        api = TestClient(create_app(settings=settings, engine=engine))
        assert (
            api.get("/api/v1/stats", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )
        time.sleep(max(0.0, expires - time.time()) + 0.1)
        assert (
            api.get("/api/v1/stats", headers={"Authorization": f"Bearer {token}"}).status_code
            == 401
        )
        engine.dispose()
