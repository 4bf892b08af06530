"""The admin UI refuses framing and sends a Content-Security-Policy its templates keep to."""

import re
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from notifyctl.config import Settings
from notifyctl.db import make_engine
from notifyctl.services import audience
from tests.factories import add_clients, add_mailing
from tests.test_web_ui import LOGIN, PAGES, sign_in
from web.app import create_app

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
REQUIRED = ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'")


@pytest.fixture
def browser(tmp_path, sqlite_template):
    """A visitor of the admin UI on a database holding mailing 1 with message 1."""
    path = tmp_path / "ui.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    with Session(engine) as session:
        add_clients(session, 1)
        audience.materialise(session=session, mailing=add_mailing(session))
        session.commit()
    app = create_app(settings=Settings(database_url=url), engine=engine, login_token=LOGIN)
    with TestClient(app) as client:
        yield client
    engine.dispose()


def policy(answer) -> list[str]:
    return [part.strip() for part in answer.headers.get("content-security-policy", "").split(";")]


def assert_guarded(answer) -> None:
    assert answer.headers["x-frame-options"] == "DENY"
    assert set(REQUIRED) <= set(policy(answer)), answer.headers


@pytest.mark.parametrize("path", ["/admin/login", "/admin/", "/admin/static/admin.css"])
def test_anonymous_admin_answers_refuse_framing_and_carry_the_policy(browser, path):
    assert_guarded(browser.get(path, follow_redirects=False))


def test_every_signed_in_page_refuses_framing_and_carries_the_policy(browser):
    sign_in(browser)
    for path in [*PAGES, "/admin/no-such-page", "/admin/mailings/99"]:
        answer = browser.get(path)
        assert answer.status_code == (404 if "9" in path or "no-such" in path else 200), path
        assert_guarded(answer)


def test_the_policy_allows_no_inline_code_and_no_other_origin(browser):
    rules = policy(browser.get("/admin/login"))
    assert not [rule for rule in rules if "unsafe" in rule or "*" in rule or "http" in rule]
    assert "base-uri 'self'" in rules
    assert "form-action 'self'" in rules


def test_the_docs_load_from_this_server_under_their_own_policy(browser):
    for path in ("/docs/", "/redoc/"):
        docs = browser.get(path)
        assert "cdn.jsdelivr.net" not in docs.text  # FastAPI's own pages load from there
        assert "/admin/static/vendor/" in docs.text
        assert "frame-ancestors 'none'" in policy(docs)
        assert docs.headers["x-frame-options"] == "DENY"


# What the policy forbids: inline scripts, <style> blocks, style="" and on…="" attributes.
INLINE = re.compile(
    r"<script(?![^>]*\ssrc=)[^>]*>|<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:|hx-on",
    re.IGNORECASE,
)


def test_templates_hold_no_inline_script_style_or_handler():
    found = {
        f"{path.relative_to(TEMPLATES)}: {match.group(0)}"
        for path in TEMPLATES.rglob("*.html")
        for match in INLINE.finditer(path.read_text())
    }
    assert found == set()


def test_htmx_is_told_not_to_inject_styles_or_evaluate_code(browser):
    config = re.search(
        r'<meta name="htmx-config" content=\'([^\']+)\'', browser.get("/admin/login").text
    )
    assert config is not None
    assert '"includeIndicatorStyles": false' in config.group(1)
    assert '"allowEval": false' in config.group(1)
