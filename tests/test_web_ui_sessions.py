"""Admin UI sessions end on the server: at logout, at expiry, on every replica at once.

Each replica is its own app on the same database and session secret, as API pods are.
"""

import base64
import json
from collections.abc import Iterator
from datetime import timedelta

import itsdangerous
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session

from notifyctl.config import Settings
from notifyctl.db import make_engine
from notifyctl.models import AdminSession
from notifyctl.services import sessions
from notifyctl.timeutil import utcnow
from tests.test_web_ui import LOGIN, sign_in
from web.app import create_app

SECRET = "one-session-secret-shared-by-every-replica"
COOKIE = "notifyctl_session"


@pytest.fixture
def replicas(db_url) -> Iterator:
    """``replica(cookie=None)``: a browser on a new API replica of one database."""
    engines, clients = [], []

    def replica(cookie: str | None = None) -> TestClient:
        engine = make_engine(db_url)
        settings = Settings(database_url=db_url, session_secret=SECRET)
        client = TestClient(
            create_app(settings=settings, engine=engine, login_token=LOGIN),
            cookies={COOKIE: cookie} if cookie else None,
        )
        engines.append(engine)
        clients.append(client)
        return client

    yield replica
    for client in clients:
        client.close()
    for engine in engines:
        engine.dispose()


def opens_the_dashboard(browser: TestClient) -> bool:
    answer = browser.get("/admin/", follow_redirects=False)
    assert answer.status_code in (200, 303)
    return answer.status_code == 200


def stored_sessions(engine) -> list[AdminSession]:
    with Session(engine) as session:
        return list(session.execute(sa.select(AdminSession)).scalars())


def test_a_cookie_copied_before_logout_opens_nothing_after_it(replicas):
    operator = replicas()
    csrf = sign_in(operator)
    copy = operator.cookies[COOKIE]
    assert opens_the_dashboard(replicas(copy))

    operator.post("/admin/logout", data={"csrf_token": csrf})

    thief = replicas(copy)
    assert not opens_the_dashboard(thief)
    htmx = replicas(copy).get("/admin/", headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 401
    form = replicas(copy).post("/admin/clients/new", data={"csrf_token": csrf, "phone": "7916"})
    assert form.url.path == "/admin/login"


def test_signing_in_again_ends_the_session_the_browser_had(replicas, engine):
    operator = replicas()
    sign_in(operator)
    copy = operator.cookies[COOKIE]
    sign_in(operator)
    assert not opens_the_dashboard(replicas(copy))
    assert opens_the_dashboard(operator)
    assert len(stored_sessions(engine)) == 1


def test_logout_on_one_replica_ends_the_session_on_the_others(replicas):
    operator = replicas()
    csrf = sign_in(operator)
    other = replicas(operator.cookies[COOKIE])
    assert opens_the_dashboard(other)

    other.post("/admin/logout", data={"csrf_token": csrf})

    assert not opens_the_dashboard(replicas(operator.cookies[COOKIE]))


def test_logout_deletes_the_session_row(replicas, engine):
    operator = replicas()
    csrf = sign_in(operator)
    assert [row.user_name for row in stored_sessions(engine)] == ["admin (login link)"]
    operator.post("/admin/logout", data={"csrf_token": csrf})
    assert stored_sessions(engine) == []


def test_an_expired_session_is_refused(replicas, engine):
    operator = replicas()
    sign_in(operator)
    with engine.begin() as connection:
        connection.execute(sa.update(AdminSession).values(expires_at=utcnow()))
    assert not opens_the_dashboard(operator)


def test_the_cookie_holds_no_user_the_server_does_not_vouch_for(replicas):
    # Before sessions were stored, a cookie signed with the secret was the whole sign-in.
    payload = base64.b64encode(json.dumps({"user": "admin (login link)"}).encode())
    forged = itsdangerous.TimestampSigner(SECRET).sign(payload).decode()
    assert not opens_the_dashboard(replicas(forged))


def test_signing_in_deletes_expired_sessions_and_keeps_live_ones(replicas, engine):
    with Session(engine) as session:
        for user in ("gone-1", "gone-2"):
            sessions.start_session(session=session, user=user, lifetime=timedelta(seconds=-1))
        sessions.start_session(session=session, user="still-in", lifetime=timedelta(hours=1))
        session.commit()
    sign_in(replicas())
    left = sorted(row.user_name for row in stored_sessions(engine))
    assert left == ["admin (login link)", "still-in"]


def test_a_session_lasts_eight_hours(replicas, engine):
    sign_in(replicas())
    (row,) = stored_sessions(engine)
    assert row.expires_at - row.created_at == timedelta(hours=8)


def test_user_names_are_stored_safely(engine):
    hostile = "\x00evil\ud800" + "x" * 1000
    with Session(engine) as session:
        sid = sessions.start_session(session=session, user=hostile, lifetime=timedelta(hours=1))
        session.commit()
        user = sessions.session_user(session=session, session_id=sid)
    assert (user[:5], len(user)) == ("evil?", sessions.USER_NAME_MAX)
