"""Swagger UI and ReDoc work on a machine without internet: Chromium with every request
to another host refused shows every operation of the API on both pages.

The pages load Swagger UI and ReDoc from files vendored into web/static/vendor, and keep to
a Content-Security-Policy of their own (no script from anywhere else, no framing).
"""

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from notifyctl.config import Settings
from notifyctl.db import make_engine
from tests.servers import running
from tests.test_web_ui_browser import chromium, watch_csp  # noqa: F401 (a fixture)
from web.app import create_app

VENDOR = Path(__file__).resolve().parent.parent / "web" / "static" / "vendor"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(tmp_path_factory, sqlite_template):
    path = tmp_path_factory.mktemp("docs") / "docs.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    yield create_app(settings=Settings(database_url=f"sqlite:///{path}"), engine=engine)
    engine.dispose()


@pytest.fixture(scope="module")
def site(app):
    import uvicorn

    with running(uvicorn.Config(app, log_level="warning")) as url:
        yield url


@pytest.fixture(scope="module")
def operations(app) -> list[dict]:
    """Every operation the OpenAPI document describes: method, path, operationId, summary."""
    return [
        {"method": method.upper(), "path": path} | operation
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


@pytest.fixture
def offline(chromium):  # noqa: F811 (the fixture imported above)
    """A page on which every request to a host other than 127.0.0.1 fails, as offline.

    Yields the page and the list of addresses it tried to reach elsewhere.
    """
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    elsewhere: list[str] = []

    def only_here(route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_here)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page, elsewhere
    context.close()


def test_swagger_ui_shows_every_operation_offline(offline, site, operations):
    page, elsewhere = offline
    violations = watch_csp(page)
    answer = page.goto(f"{site}/docs")  # led to /docs/
    assert answer.url == f"{site}/docs/"
    shown = page.locator(".opblock-summary")
    expect(shown).to_have_count(len(operations))
    for operation in operations:
        summary = shown.filter(has=page.locator(f'[data-path="{operation["path"]}"]'))
        expect(summary.filter(has_text=operation["method"]).first).to_be_visible()
    # The Authorize button: how a visitor gives the bearer token to "Try it out".
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    assert elsewhere == []
    assert violations == []
    assert_own_policy(answer.headers)


def test_redoc_shows_every_operation_offline(offline, site, app, operations):
    page, elsewhere = offline
    violations = watch_csp(page)
    answer = page.goto(f"{site}/redoc")  # led to /redoc/
    assert answer.url == f"{site}/redoc/"
    expect(page.locator("h1")).to_contain_text(app.title)
    sections = page.locator('[data-section-id^="operation/"]')
    expect(sections).to_have_count(len(operations))
    for operation in operations:
        section = page.locator(f'[data-section-id="operation/{operation["operationId"]}"]')
        expect(section.get_by_role("heading", name=operation["summary"])).to_be_attached()
        expect(section).to_contain_text(operation["path"])
    assert elsewhere == []
    # ReDoc's sidebar shows Redocly's logo from cdn.redoc.ly (a request to another host at
    # each visit); the policy blocks it, and ReDoc hides the image that failed. Nothing else.
    assert [v for v in violations if "https://cdn.redoc.ly/redoc/logo-mini.svg" not in v] == []
    assert_own_policy(answer.headers)


@pytest.fixture
def page_client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield client


def assert_own_policy(headers: dict[str, str]) -> None:
    """Scripts from this server only (no CDN, no eval), and the page cannot be framed."""
    assert headers["x-frame-options"] == "DENY"
    rules = [rule.strip() for rule in headers["content-security-policy"].split(";")]
    assert "default-src 'self'" in rules
    assert "frame-ancestors 'none'" in rules
    assert "object-src 'none'" in rules
    (scripts,) = [rule for rule in rules if rule.startswith("script-src")]
    assert "unsafe" not in scripts
    assert "http" not in scripts
    assert "*" not in scripts


def test_the_pages_name_no_other_host(page_client):
    for path in ("/docs/", "/redoc/"):
        html = page_client.get(path).text
        assert "http" not in html, html  # no CDN, no favicon or fonts from elsewhere


def test_fetch_sh_pins_the_versions_the_pages_load():
    from web import docs

    script = (VENDOR / "fetch.sh").read_text()
    assert f"SWAGGER_UI={docs.SWAGGER_UI_VERSION}\n" in script
    assert f"REDOC={docs.REDOC_VERSION}\n" in script
    for name in ("swagger-ui-LICENSE", "swagger-ui-NOTICE", "redoc-LICENSE"):
        assert (VENDOR / name).stat().st_size > 0
