"""The admin UI in a real browser: Debian's chromium driven by Playwright.

A live API (uvicorn), a real OpenID Connect provider (oidc-provider-mock), a daemon
process and the mock sending API: sign in, add clients, import a CSV, create a mailing,
watch it complete, cancel another, opt a client out, reach it with a transactional
mailing, send tests, read the audit log, log out. Screenshots land in the test's folder,
and in ``docs/`` with UI_SCREENSHOTS=docs (``make screenshots``).
"""

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from oidc_provider_mock import User, run_server_in_thread
from playwright.sync_api import Page, expect, sync_playwright

from mock import server
from notifyctl.config import Settings
from notifyctl.db import make_engine
from tests.daemon_helpers import MockApi
from tests.servers import free_port, running
from web.app import create_app

CHROMIUM = "/usr/bin/chromium"
# Headless as root on a machine without outside network: no sandbox, no background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CLIENT_ID = "notifyctl-admin"
OPERATOR = "ops@example.com"
AUDIENCE = 30  # clients tagged "vip": 3 typed in, 27 imported
TYPED_IN = 3  # of them, with operator code 916 (the imported ones have 903)
SEGMENT_PRICE = "0.45"  # shows each mailing's cost
FREQUENCY_CAP = "5/24h"  # shows on the dashboard
WAIT_MS = 60_000
ORDER_READY = (
    "Your order 4821 is ready for pickup at Tverskaya 7 until Friday 21:00. Show this SMS "
    "at the counter; questions: +7 495 000-00-00, every day 09:00-21:00. Thank you!"
)  # 163 GSM-7 characters: 2 segments
DOCS = Path(__file__).resolve().parent.parent / "docs"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def provider():
    operator = User(sub=OPERATOR, claims={"email": OPERATOR, "groups": ["mailing-ops"]})
    with run_server_in_thread(user_claims=[operator]) as provider_server:
        yield f"http://localhost:{provider_server.server_port}"


@pytest.fixture(scope="module")
def database(tmp_path_factory, sqlite_template):
    path = tmp_path_factory.mktemp("ui") / "ui.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def mock_api():
    with running(server.config(seed=11)) as url:
        api = MockApi(url)
        api.faults(latency_ms=20, jitter_ms=40)
        yield api


@pytest.fixture(scope="module")
def daemon(database, mock_api):
    """A real daemon process, slowed to 10 messages/s so progress can be watched."""
    env = dict(os.environ) | {
        "NOTIFY_SENDER_URL": mock_api.send_url,
        "NOTIFY_RATE_LIMIT": "10",
        "NOTIFY_FREQUENCY_CAP": FREQUENCY_CAP,  # (no client gets that many here)
        "NOTIFY_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "notifyctl", "--db", database, "daemon"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    yield process
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="module")
def site(database, provider, daemon, mock_api):
    port = free_port()  # known before it serves: the OIDC redirect URI is built from it
    settings = Settings(
        public_url=f"http://127.0.0.1:{port}",
        database_url=database,
        sender_url=mock_api.send_url,  # test sends go where the daemon sends
        segment_price=SEGMENT_PRICE,
        frequency_cap=FREQUENCY_CAP,  # shown on the dashboard
        oidc_issuer=provider,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret="provider-mock-accepts-any-secret",
        oidc_allowed_groups=["mailing-ops"],
    )
    engine = make_engine(database)
    app = create_app(settings=settings, engine=engine, login_token="unused-with-a-provider")
    import uvicorn

    with running(uvicorn.Config(app, log_level="warning"), port=port) as url:
        yield url
    engine.dispose()


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)", False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def csp_violations(page) -> list[str]:
    """What the page's Content-Security-Policy blocks from now on, in every document."""
    return watch_csp(page)


def watch_csp(page: Page) -> list[str]:
    """Collect CSP violations: ``securitypolicyviolation`` events and console reports."""
    seen: list[str] = []

    def report(violation: str) -> None:
        seen.append(violation)

    page.expose_function("reportCspViolation", report)
    page.add_init_script(
        """document.addEventListener('securitypolicyviolation', event =>
            window.reportCspViolation(`${event.effectiveDirective} blocked ` +
                `${event.blockedURI || 'inline code'} in ${event.sourceFile}:` +
                `${event.lineNumber}`))"""
    )
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and report(message.text),
    )
    return seen


def screenshot(page: Page, tmp_path: Path, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=tmp_path / name, full_page=full_page)
    keep(tmp_path, name)


def keep(tmp_path: Path, name: str) -> None:
    """Check a screenshot taken in ``tmp_path``; copy it to docs/ for ``make screenshots``."""
    path = tmp_path / name
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    if os.environ.get("UI_SCREENSHOTS") == "docs":
        DOCS.mkdir(exist_ok=True)
        shutil.copy(path, DOCS / name)


def sign_in(page: Page, site: str, subject: str) -> None:
    page.goto(f"{site}/admin/")
    expect(page).to_have_url(f"{site}/admin/login?next=/admin/")
    page.get_by_role("button", name="Sign in with your organisation's account").click()
    page.get_by_placeholder("sub").fill(subject)  # the provider's own sign-in form
    page.get_by_role("button", name="Authorize").click()


def unlabelled_controls(page: Page) -> list[str]:
    """Form controls on the page that a screen reader could not name."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter(el => el.type !== 'hidden')
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                          && !(el.tagName === 'BUTTON' && el.textContent.trim()))
            .map(el => el.outerHTML)"""
    )


def local_input(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_an_operator_runs_a_mailing_from_sign_in_to_sign_out(
    page, site, mock_api, tmp_path, csp_violations
):
    # Someone the provider knows but who is not in the allowed group is turned away.
    sign_in(page, site, "intruder@example.com")
    expect(page.get_by_role("alert")).to_contain_text("not allowed")

    sign_in(page, site, OPERATOR)
    expect(page).to_have_url(f"{site}/admin/")
    expect(page.get_by_role("heading", name="Mailings")).to_be_visible()

    # Clients typed in, one refused with the reason next to its field.
    page.get_by_role("link", name="Clients").click()
    for n in range(3):
        page.get_by_role("link", name="Add a client").click()
        assert unlabelled_controls(page) == []
        page.get_by_label("Phone (7XXXXXXXXXX)").fill(f"+7 916 000-00-0{n}")
        page.get_by_label("Tag", exact=True).fill("vip")
        page.get_by_role("button", name="Add client").click()
        expect(page).to_have_url(f"{site}/admin/clients")
    page.get_by_role("link", name="Add a client").click()
    page.get_by_label("Phone (7XXXXXXXXXX)").fill("12345")
    page.get_by_role("button", name="Add client").click()
    expect(page.locator("#phone-error")).to_contain_text("not a phone number")
    expect(page.get_by_label("Phone (7XXXXXXXXXX)")).to_have_attribute("aria-invalid", "true")

    # A CSV import: a bad row is reported by line, then skipped on request.
    rows = [f"7903{n:07d},vip,Asia/Tokyo" for n in range(AUDIENCE - 3)]
    csv = tmp_path / "clients.csv"
    csv.write_text("phone,tag,timezone\n" + "\n".join([*rows, "oops,vip,UTC"]) + "\n")
    page.goto(f"{site}/admin/clients/import")
    assert unlabelled_controls(page) == []
    page.get_by_label("CSV file").set_input_files(csv)
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-report")).to_contain_text("Nothing was imported")
    expect(page.locator("#import-report")).to_contain_text("oops")
    page.get_by_label("CSV file").set_input_files(csv)
    page.get_by_label("Skip bad rows").check()
    page.get_by_role("button", name="Import").click()
    expect(page.locator("[data-imported]")).to_have_text(str(AUDIENCE - 3))

    # Search narrows the list as one types.
    page.goto(f"{site}/admin/clients")
    page.get_by_label("Phone starts with").fill("7916")
    expect(page.locator("#clients tbody tr")).to_have_count(3)

    # A mailing to the vip clients, with the audience counted before it is created.
    page.get_by_role("link", name="New mailing").click()
    assert unlabelled_controls(page) == []
    now = datetime.now(UTC)
    page.get_by_label("Name (optional").fill("Black Friday")
    page.get_by_label("Text", exact=True).fill("Black Friday: -30% today only")
    page.get_by_label("Start", exact=True).fill(local_input(now))
    page.get_by_label("End (nothing is sent").fill(local_input(now + timedelta(hours=1)))
    page.get_by_label("Timezone of these times").fill("UTC")
    page.get_by_label("Tags").fill("vip")
    expect(page.locator("[data-audience]")).to_have_text(str(AUDIENCE))
    page.get_by_role("button", name="Create mailing").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Black Friday mailing 1")

    # The page follows the daemon until every message is sent.
    sent = page.get_by_role("progressbar", name="sent")
    expect(sent).to_have_attribute("aria-valuemax", str(AUDIENCE))
    expect(sent).not_to_have_attribute("aria-valuenow", "0", timeout=WAIT_MS)
    expect(sent).to_have_attribute("aria-valuenow", str(AUDIENCE), timeout=WAIT_MS)
    page.reload()
    expect(page.locator("#state")).to_have_text("finished", timeout=WAIT_MS)
    expect(page.locator(".chart rect").first).to_be_visible()
    page.get_by_label("Status", exact=True).select_option("sent")
    expect(page.locator("#messages tbody tr")).to_have_count(AUDIENCE)
    page.locator("#messages tbody a").first.click()
    expect(page.get_by_role("heading", name="Attempts (1)")).to_be_visible()
    expect(page.locator("main table tbody")).to_contain_text("200")

    # A second mailing for tomorrow, cancelled before it starts.
    page.goto(f"{site}/admin/mailings/new")
    later = now + timedelta(days=1)
    page.get_by_label("Text", exact=True).fill("Cyber Monday")
    page.get_by_label("Start", exact=True).fill(local_input(later))
    page.get_by_label("End (nothing is sent").fill(local_input(later + timedelta(hours=2)))
    page.get_by_role("button", name="Create mailing").click()
    expect(page.locator("#state")).to_have_text("scheduled")
    page.get_by_role("button", name="Cancel mailing").click()
    page.get_by_role("button", name="Yes, cancel mailing 2").click()  # it asks first
    expect(page.locator("#state")).to_have_text("cancelled")

    # A client opts out: mailings reach it no more, but for transactional ones.
    page.goto(f"{site}/admin/clients")
    page.get_by_label("Phone starts with").fill("79160000000")
    expect(page.locator("#clients tbody tr")).to_have_count(1)
    page.get_by_role("link", name="79160000000").click()
    page.get_by_role("button", name="Opt out").click()
    expect(page.locator("#opt-state")).to_have_text("opted out")

    # A transactional mailing to the typed-in clients: the audience counts the opted-out one.
    page.goto(f"{site}/admin/mailings/new")
    page.get_by_label("Name (optional").fill("Order ready")
    page.get_by_label("Text", exact=True).fill(ORDER_READY)
    page.get_by_label("Start", exact=True).fill(local_input(now))
    page.get_by_label("End (nothing is sent").fill(local_input(now + timedelta(hours=1)))
    page.get_by_label("Timezone of these times").fill("UTC")
    page.get_by_label("Operator codes").fill("916")
    expect(page.locator("[data-audience]")).to_have_text(str(TYPED_IN - 1))
    page.get_by_label("Transactional").check()
    expect(page.locator("[data-audience]")).to_have_text(str(TYPED_IN))
    expect(page.locator("[data-segments]")).to_have_attribute("data-segments", "2")
    assert unlabelled_controls(page) == []
    screenshot(page, tmp_path, "admin-mailing-form.png")
    page.get_by_role("button", name="Create mailing").click()
    expect(page.locator("#transactional")).to_contain_text("yes")
    sent = page.get_by_role("progressbar", name="sent")
    expect(sent).to_have_attribute("aria-valuenow", str(TYPED_IN), timeout=WAIT_MS)

    # Test sends of the first mailing: one the API takes, one it refuses (an error status).
    page.goto(f"{site}/admin/mailings/1")
    page.get_by_label("Phone", exact=True).fill("+7 916 555-01-02")
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#test-send-result")).to_contain_text("79165550102: accepted")
    mock_api.faults(error_rate=1)
    try:
        page.get_by_label("Phone", exact=True).fill("+7 903 555-01-03")
        page.get_by_role("button", name="Send test").click()
        expect(page.locator("#test-send-result")).to_contain_text("not accepted")
    finally:
        mock_api.faults(error_rate=0)
    tests = page.locator("#test-sends tbody tr")
    expect(tests).to_have_count(2)
    expect(tests.nth(0)).to_contain_text("79035550103")
    expect(tests.nth(1)).to_contain_text("79165550102")
    expect(page.locator("#cost")).to_contain_text(SEGMENT_PRICE)
    screenshot(page, tmp_path, "admin-mailing.png")
    page.locator("#test-send").screenshot(path=tmp_path / "admin-test-sends.png")
    keep(tmp_path, "admin-test-sends.png")

    page.goto(f"{site}/admin/")
    rows = page.locator("#dashboard-rows tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Order ready")
    expect(rows.nth(1)).to_contain_text("cancelled")
    expect(rows.nth(2)).to_contain_text("finished")
    dashboard_sent = rows.nth(2).get_by_role("progressbar", name="sent")
    expect(dashboard_sent).to_have_attribute("aria-valuenow", str(AUDIENCE))
    expect(page.locator("#totals")).to_contain_text("1 opted out")
    expect(page.locator('[data-figure="frequency_cap"]')).to_have_text("5 per 24h")
    screenshot(page, tmp_path, "admin-dashboard.png")

    # The opted-out client's page: the toggle, and the transactional text that reached it.
    page.goto(f"{site}/admin/clients/1")
    history = page.locator("#messages-table tbody tr")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("Order ready")
    expect(history.nth(1)).to_contain_text("Black Friday")
    expect(page.get_by_role("button", name="Opt in again")).to_be_visible()
    screenshot(page, tmp_path, "admin-client.png")

    # The audit log: who did all of the above, the daemon's own changes among it.
    page.goto(f"{site}/admin/audit")
    entries = page.locator("#audit tbody")
    expect(entries).to_contain_text(f"oidc:{OPERATOR}")
    expect(entries).to_contain_text("opted_out")
    expect(entries).to_contain_text("daemon")
    screenshot(page, tmp_path, "admin-audit.png", full_page=False)  # the newest entries

    # A form whose CSRF token was tampered with is refused and changes nothing.
    page.goto(f"{site}/admin/mailings/1/delete")
    page.locator("main input[name=csrf_token]").evaluate("el => el.value = 'forged'")
    page.get_by_role("button", name="Yes, delete mailing 1").click()
    expect(page.get_by_role("alert")).to_contain_text("did not come from this site")
    page.goto(f"{site}/admin/mailings/1")
    expect(page.locator("#state")).to_have_text("finished")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{site}/admin/login")
    page.goto(f"{site}/admin/clients")
    expect(page).to_have_url(f"{site}/admin/login?next=/admin/clients")

    # All of it under the admin UI's Content-Security-Policy, which blocked nothing.
    assert csp_violations == []


def test_the_pages_keep_to_their_content_security_policy(page, site, csp_violations):
    sign_in(page, site, OPERATOR)
    expect(page).to_have_url(f"{site}/admin/")
    for path in ("/admin/", "/admin/clients", "/admin/clients/new", "/admin/clients/import"):
        answer = page.goto(f"{site}{path}")
        assert answer.headers["x-frame-options"] == "DENY"
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
    page.goto(f"{site}/admin/mailings/new")
    page.get_by_label("Tags").fill("no-such-tag")  # the audience preview: an HTMX request
    expect(page.locator("[data-audience]")).to_have_text("0")
    page.goto(f"{site}/admin/clients")
    page.get_by_label("Phone starts with").fill("7")  # search as one types: HTMX again
    expect(page.locator("#clients")).to_be_visible()
    # HTMX was told not to inject its indicator <style>: the page has none.
    assert page.locator("style").count() == 0
    assert csp_violations == []

    # The watch itself works: an inline style is blocked, and reported.
    page.evaluate("document.body.setAttribute('style', 'color: red')")
    page.wait_for_function("getComputedStyle(document.body).color !== 'rgb(255, 0, 0)'")
    for _ in range(100):
        if csp_violations:
            break
        page.wait_for_timeout(50)
    assert any("style" in violation for violation in csp_violations)


def test_admin_pages_cannot_be_framed(page, site):
    page.set_content(f'<iframe src="{site}/admin/login"></iframe>')
    frame = page.frames[-1]  # set_content waits for the iframe's load, or its refusal
    assert frame.url == "chrome-error://chromewebdata/"  # what chromium shows instead


def test_the_sign_in_request_uses_pkce(page, site):
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{site}/admin/login")
    page.get_by_role("button", name="Sign in with your organisation's account").click()
    authorize = next(url for url in requests if "/oauth2/authorize" in url)
    assert "code_challenge_method=S256" in authorize
    assert "code_challenge=" in authorize


def test_pages_fit_a_phone_screen(chromium, site, tmp_path):
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    try:
        sign_in(phone, site, OPERATOR)
        for path in ("/admin/", "/admin/clients", "/admin/mailings/new", "/admin/mailings/1"):
            phone.goto(f"{site}{path}")
            overflow = phone.evaluate(
                "() => document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{path} is {overflow}px wider than the screen"
        screenshot(phone, tmp_path, "admin-mailing-phone.png", full_page=False)
    finally:
        context.close()


def test_state_badges_are_legible_in_dark_mode(chromium, site, tmp_path):
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    page = context.new_page()
    try:
        sign_in(page, site, OPERATOR)
        expect(page.locator("#dashboard-rows mark.state").first).to_be_visible()
        # WCAG's contrast ratio of each badge's text to its own background: at least 4.5.
        ratios = page.evaluate(
            """() => {
                const luminance = colour => {
                    const [r, g, b] = colour.match(/[\\d.]+/g).slice(0, 3).map(v => {
                        v = v / 255;
                        return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
                    });
                    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
                };
                return [...document.querySelectorAll('mark.state')].map(mark => {
                    const style = getComputedStyle(mark);
                    const [a, b] = [luminance(style.color), luminance(style.backgroundColor)];
                    return [mark.textContent, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
                });
            }"""
        )
        assert ratios
        assert [(state, ratio) for state, ratio in ratios if ratio < 4.5] == []
        screenshot(page, tmp_path, "admin-dashboard-dark.png")
    finally:
        context.close()
