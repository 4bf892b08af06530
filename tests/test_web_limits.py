"""Bounded request bodies (issue 14, item 2), on SQLite and PostgreSQL.

The REST API knows its caller before it reads a body; a body over NOTIFY_MAX_BODY_BYTES is
refused unread when its length is declared and as soon as it passes the limit when it is
chunked; the admin UI's CSV import has its own, larger limit and runs off the event loop.

Bodies are streamed to the app in-process: httpx's ASGI transport hands the app one chunk
each time it asks for one, so a test can count how much of a body was read.
"""

import asyncio
import inspect
import re
import socket
import threading

import httpx
import pytest
import uvicorn
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from notifyctl.config import Settings
from notifyctl.models import Client
from notifyctl.services import imports, tokens
from tests.servers import running
from web.api import clients as api_clients
from web.api import mailings as api_mailings
from web.api import stats as api_stats
from web.app import create_app
from web.deps import get_session
from web.ui import clients as ui_clients
from web.ui import dashboard as ui_dashboard
from web.ui import mailings as ui_mailings

LOGIN = "nfy_limits-login-token"
AUTH = {"Authorization": f"Bearer {LOGIN}"}
LIMIT = 64 * 1024  # NOTIFY_MAX_BODY_BYTES here
UPLOAD_LIMIT = 256 * 1024  # NOTIFY_MAX_UPLOAD_BYTES here
CHUNK = 16 * 1024
REFUSED_CALLERS = {
    "anonymous": {},
    "wrong scheme": {"Authorization": "Basic eDp5"},
    "unknown token": {"Authorization": "Bearer nfy_no-such-token-in-the-database"},
}


@pytest.fixture
def app(db_url, engine):
    settings = Settings(database_url=db_url, max_body_bytes=LIMIT, max_upload_bytes=UPLOAD_LIMIT)
    return create_app(settings=settings, engine=engine, login_token=LOGIN)


def stored_clients(engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Client)).one()


class Body:
    """A JSON client of ``size`` bytes (its tag padded), in CHUNK-byte pieces; counts the
    pieces the app asked for."""

    def __init__(self, size: int) -> None:
        head, tail = b'{"phone": "79161234567", "tag": "', b'"}'
        self.data = head + b"x" * (size - len(head) - len(tail)) + tail
        self.size = size
        self.chunks_read = 0

    def padded_to_a_valid_client(self) -> "Body":
        """The same size, but a valid client: the padding is JSON whitespace."""
        valid = b'{"phone": "79161234567", "tag": "vip"}'
        self.data = valid + b" " * (self.size - len(valid))
        return self

    async def __aiter__(self):
        for start in range(0, self.size, CHUNK):
            self.chunks_read += 1
            yield self.data[start : start + CHUNK]


def post(app, body: Body, *, headers: dict, declared: bool) -> httpx.Response:
    """POST ``body`` to /api/v1/clients, with a Content-Length or chunked."""
    if declared:
        headers = headers | {"Content-Length": str(body.size)}

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.post(
                "/api/v1/clients",
                content=body,
                headers=headers | {"Content-Type": "application/json"},
            )

    return asyncio.run(send())


# --- the REST API ----------------------------------------------------------------------


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("headers", REFUSED_CALLERS.values(), ids=REFUSED_CALLERS.keys())
def test_a_refused_caller_is_answered_before_a_byte_of_its_body_is_read(
    app, engine, headers, declared
):
    body = Body(4 * 1024 * 1024)
    answer = post(app, body, headers=headers, declared=declared)
    assert (answer.status_code, answer.headers["WWW-Authenticate"]) == (401, "Bearer")
    assert answer.json()["code"] == "http_401"
    assert body.chunks_read == 0
    assert stored_clients(engine) == 0


def test_an_api_token_is_checked_once_and_before_the_body(app, engine):
    with Session(engine) as session:
        _, plain = tokens.create_token(session=session, name="script")
        session.commit()
    body = Body(LIMIT).padded_to_a_valid_client()
    answer = post(app, body, headers={"Authorization": f"Bearer {plain}"}, declared=True)
    assert answer.status_code == 201, answer.text
    assert stored_clients(engine) == 1


def test_a_declared_length_over_the_limit_is_refused_unread(app, engine):
    body = Body(LIMIT + 1)
    answer = post(app, body, headers=AUTH, declared=True)
    assert answer.status_code == 413
    assert answer.json() == {
        "detail": "the request body is larger than the limit of 64 KiB",
        "code": "http_413",
        "field": None,
    }
    assert body.chunks_read == 0
    assert stored_clients(engine) == 0


def test_a_chunked_body_is_cut_off_as_it_passes_the_limit(app, engine):
    body = Body(4 * 1024 * 1024)
    answer = post(app, body, headers=AUTH, declared=False)
    assert (answer.status_code, answer.json()["code"]) == (413, "http_413")
    assert body.chunks_read == LIMIT // CHUNK + 1  # the one that passed it, and no more
    assert stored_clients(engine) == 0


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_of_exactly_the_limit_is_accepted(app, engine, declared):
    body = Body(LIMIT).padded_to_a_valid_client()
    answer = post(app, body, headers=AUTH, declared=declared)
    assert answer.status_code == 201, answer.text
    assert stored_clients(engine) == 1


def first_status(base_url: str, head: str, first_bytes: int) -> int:
    """Send ``head`` and the first bytes of its body over a socket; the status answered.

    The rest of the body is never sent: a server that waits for it never answers, and
    the socket's timeout ends the test.
    """
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + b'{"tag": "' + b"x" * first_bytes)
        answer = b""
        while b"\r\n" not in answer:
            more = sock.recv(4096)
            if not more:
                break
            answer += more
    return int(answer.split()[1])


@pytest.mark.parametrize(
    ("headers", "status"), [("", 401), (f"Authorization: Bearer {LOGIN}\r\n", 413)]
)
def test_a_real_server_answers_a_100_mb_body_after_its_first_64_kib(app, headers, status):
    head = (
        "POST /api/v1/clients HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * 1024 * 1024}\r\n{headers}\r\n"
    )
    with running(uvicorn.Config(app, lifespan="off", log_level="warning")) as url:
        assert first_status(url, head, 64 * 1024) == status


def test_the_413_is_documented_for_every_api_route(app):
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/api/v1"):
            for method, operation in operations.items():
                assert "413" in operation["responses"], (method, path)


# --- the admin UI ----------------------------------------------------------------------


@pytest.fixture
def browser(app):
    """A signed-in user of the admin UI; ``browser.csrf`` is the session's CSRF token."""
    with TestClient(app) as client:
        page = client.get(f"/admin/login?token={LOGIN}")
        assert page.url.path == "/admin/"
        client.csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        yield client


def csv_of(rows: int) -> bytes:
    lines = ["phone,operator_code,tag,timezone"]
    lines += [f"7900{n:07d},900,imported,Europe/Moscow" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def upload(browser, content: bytes) -> httpx.Response:
    return browser.post(
        "/admin/clients/import",
        data={"csrf_token": browser.csrf},
        files={"file": ("clients.csv", content, "text/csv")},
    )


def test_a_csv_upload_has_its_own_larger_limit(browser, engine):
    content = csv_of(5_000)
    assert LIMIT < len(content) < UPLOAD_LIMIT
    answer = upload(browser, content)
    assert answer.status_code == 200
    assert 'data-imported="5000"' in answer.text
    assert stored_clients(engine) == 5_000


def test_a_csv_upload_over_its_limit_is_413_and_imports_nothing(browser, engine):
    content = csv_of(10_000)
    assert len(content) > UPLOAD_LIMIT
    answer = upload(browser, content)
    assert answer.status_code == 413
    assert "larger than the limit of 256 KiB" in answer.text
    assert stored_clients(engine) == 0


def test_a_form_over_the_body_limit_is_413_and_stores_nothing(browser, engine):
    answer = browser.post(
        "/admin/clients/new",
        data={"csrf_token": browser.csrf, "phone": "79161234567", "tag": "x" * LIMIT},
    )
    assert answer.status_code == 413
    assert stored_clients(engine) == 0


def test_healthz_answers_while_a_ui_import_is_still_running(browser, engine, monkeypatch):
    """The import is held after its first batch until /healthz has answered. Had the
    import run on the event loop, /healthz could only answer after it had finished (the
    hold gives up after 20 s, so such a failure does not hang)."""
    after_first_batch, release, import_returned = (threading.Event() for _ in range(3))
    real_insert, real_import = imports._insert, imports.import_clients

    def insert_then_hold(*args, **kwargs):
        real_insert(*args, **kwargs)
        if not after_first_batch.is_set():
            after_first_batch.set()
            release.wait(timeout=20)

    def import_clients(**kwargs):
        try:
            return real_import(**kwargs)
        finally:
            import_returned.set()

    monkeypatch.setattr(imports, "BATCH_SIZE", 10)
    monkeypatch.setattr(imports, "_insert", insert_then_hold)
    monkeypatch.setattr(imports, "import_clients", import_clients)
    answers = {}
    importer = threading.Thread(target=lambda: answers.update(done=upload(browser, csv_of(30))))
    importer.start()
    try:
        assert after_first_batch.wait(timeout=30)
        health = browser.get("/healthz")
        import_was_running = not import_returned.is_set()
    finally:
        release.set()
        importer.join(timeout=60)
    assert health.status_code == 200
    assert import_was_running
    assert 'data-imported="30"' in answers["done"].text


def _uses(dependant, call) -> bool:
    return any(sub.call is call or _uses(sub, call) for sub in dependant.dependencies)


@pytest.mark.parametrize(
    "module",
    [ui_clients, ui_mailings, ui_dashboard, api_clients, api_mailings, api_stats],
    ids=lambda module: module.__name__,
)
def test_routes_that_use_the_database_are_plain_functions(module):
    """FastAPI runs a plain ``def`` in its thread pool; an ``async def`` route would do its
    (blocking) database work on the event loop, and every other request would wait."""
    on_the_loop = [
        route.path
        for route in module.router.routes
        if isinstance(route, APIRoute)
        and _uses(route.dependant, get_session)
        and inspect.iscoroutinefunction(route.endpoint)
    ]
    assert on_the_loop == []
