"""A hostile review's findings on the web layer: sign-in faults, headers on every answer,
a hanging provider, unverified addresses, Host-made redirects."""

import contextlib
import shutil
import socket
import threading

import httpx
import pytest
from fastapi.testclient import TestClient

from notifyctl.config import Settings
from web import oidc
from web.app import create_app
from web.oidc import OidcVerifier

LOGIN = "nfy_hardening-login-token"


@pytest.fixture
def sqlite_url(tmp_path, sqlite_template) -> str:
    path = tmp_path / "hardening.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


class FakeProvider:
    """Enough of an OIDC client for the callback: ``authorize_access_token`` raises."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def authorize_access_token(self, request):
        raise self.error


def _jose_error() -> Exception:
    from joserfc.errors import BadSignatureError

    return BadSignatureError()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (_jose_error(), 401),  # signed by another key, alg none
        (ValueError("nonce does not match"), 401),
        (KeyError("sub"), 401),
        (httpx.ConnectError("provider down"), 503),
        (httpx.ReadTimeout("token endpoint hangs"), 503),
    ],
    ids=["bad-signature", "bad-claim", "no-sub", "provider-down", "provider-hangs"],
)
def test_a_callback_the_provider_spoiled_is_a_sign_in_page_never_a_500(sqlite_url, error, status):
    settings = Settings(
        database_url=sqlite_url,
        oidc_issuer="http://127.0.0.1:9/",
        oidc_client_id="notifyctl",
        public_url="https://notify.example.com",
    )
    app = create_app(settings=settings, login_token=LOGIN)
    app.state.oauth = type("OAuth", (), {"provider": FakeProvider(error)})()
    with TestClient(app, raise_server_exceptions=False) as browser:
        answer = browser.get("/admin/auth/callback?code=x&state=y", follow_redirects=False)
        assert answer.status_code == status, answer.text
        assert "Sign in" in answer.text or "sign-in" in answer.text
        assert browser.get("/admin/", follow_redirects=False).status_code == 303


def test_a_500_carries_the_framing_refusal_and_the_csp(sqlite_url):
    app = create_app(settings=Settings(database_url=sqlite_url), login_token=LOGIN)

    @app.get("/admin/_boom")
    def boom():
        raise RuntimeError("a fault of ours")

    with TestClient(app, raise_server_exceptions=False) as browser:
        answer = browser.get("/admin/_boom")
    assert answer.status_code == 500
    assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


def test_a_redirect_never_follows_the_callers_host(sqlite_url):
    app = create_app(settings=Settings(database_url=sqlite_url), login_token=LOGIN)
    with TestClient(app, raise_server_exceptions=False) as visitor:
        answer = visitor.get(
            "/api/v1/clients/",
            headers={"Host": "evil.example", "Authorization": f"Bearer {LOGIN}"},
            follow_redirects=False,
        )
    assert answer.status_code in (307, 308)
    assert answer.headers["location"] == "/api/v1/clients"


@pytest.fixture
def silent_provider():
    """A socket that accepts connections and never answers: a hung provider."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    arrived = threading.Event()

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            accepted.append(connection)
            arrived.set()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted, arrived
    server.close()
    for connection in accepted:
        connection.close()


def test_a_hanging_provider_holds_one_request_not_every_one(silent_provider, monkeypatch):
    url, accepted, arrived = silent_provider
    monkeypatch.setattr(oidc, "DISCOVERY_TIMEOUT", 2.0)
    verifier = OidcVerifier(issuer=url, audience="notifyctl", allowed=[])
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    first = threading.Thread(target=verifier.verify, args=(token,))
    first.start()
    assert arrived.wait(5)  # the first request is now stuck at the provider
    assert verifier.verify(token) is None  # the second is refused at once…
    assert first.is_alive()  # …while the first still waits
    first.join(10)
    assert verifier.verify(token) is None  # after the failure, no new connection for a while
    assert len(accepted) == 1


def test_an_unverified_email_is_not_an_allowed_user():
    verifier = OidcVerifier(issuer="https://id.example.com", audience="x", allowed=["Bob@x.org"])
    assert verifier.allows({"sub": "1", "email": "bob@x.org", "email_verified": True})
    assert not verifier.allows({"sub": "1", "email": "bob@x.org", "email_verified": False})
    assert not verifier.allows({"sub": "1", "email": "bob@x.org"})
    assert verifier.allows({"sub": "bob@x.org"})


@pytest.fixture
def api_process(tmp_path, sqlite_template):
    """``notifyctl api`` as users run it, on a free port."""
    import os
    import subprocess
    import sys
    import time

    from tests.servers import free_port

    path = tmp_path / "served.db"
    shutil.copy(sqlite_template, path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notifyctl",
            "--db",
            f"sqlite:///{path}",
            "api",
            "--port",
            str(port),
        ],
        env=env | {"NOTIFY_LOGIN_TOKEN": LOGIN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield port
    process.terminate()
    process.wait(20)


def _status_of_raw_request(port: int, head: bytes) -> int:
    """Send ``head`` as it is; the status line of the answer (0 if the server just closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(head)  # it may stop reading: fine, if it answered first
        answer = b""
        try:
            while b"\r\n" not in answer:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except ConnectionResetError:
            pass
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz?" + b"q" * 4_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-Pad-%d: %s\r\n" % (n, b"p" * 1_000_000) for n in range(4))
        + b"\r\n",
    ],
    ids=["4 MB query string", "four 1 MB headers"],
)
def test_a_huge_request_head_is_refused_by_the_server(api_process, head):
    status = _status_of_raw_request(api_process, head)
    assert status in (0, 400, 414, 431), status
    ok = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert _status_of_raw_request(api_process, ok) == 200  # and it still serves
