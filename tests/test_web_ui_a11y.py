"""Every page of the admin UI, in a real browser, in light and dark colour schemes, on a
desktop and on a 390 px phone: axe-core finds no serious or critical violation, the page
never scrolls sideways on the phone, no short word is broken across lines, every progress
bar is wholly on screen, and nothing breaks the Content-Security-Policy.

The data (tests/ui_site.py) holds a mailing in every state and messages in every status,
with long texts, tags, timezones and errors: what makes a layout overflow.
"""

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.test_web_ui_browser import chromium, watch_csp  # noqa: F401 (a fixture)
from tests.ui_site import serving, signed_in

pytestmark = pytest.mark.slow

PHONE_WIDTH = 390
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": PHONE_WIDTH, "height": 844},
        "is_mobile": True,
        "has_touch": True,
    },
}
PAGES = [
    "/admin/",  # the dashboard: every mailing (the mailings list)
    "/admin/mailings/1",  # running, messages in every status
    "/admin/mailings/2",  # scheduled, a long text with an unbroken address
    "/admin/mailings/3",  # paused
    "/admin/mailings/4",  # cancelled
    "/admin/mailings/5",  # finished
    "/admin/mailings/1/messages/26",  # a failed message and its attempt
    "/admin/mailings/new",
    "/admin/mailings/1/edit",
    "/admin/mailings/1/cancel",  # confirmation pages
    "/admin/mailings/1/delete",
    "/admin/clients",
    "/admin/clients/new",
    "/admin/clients/1/edit",
    "/admin/clients/1/delete",
    "/admin/clients/import",
    "/admin/clients/1",  # opted out, with messages of two mailings
    "/admin/clients/2",  # receives mailings
    "/admin/audit",  # entries by an operator, values cut to open on a click
    "/admin/audit?mailing_id=2",
    "/admin/audit?mailing_id=abc",  # refused search: the error above the empty table
    "/admin/mailings/99",  # the error page
]
SERIOUS = ("serious", "critical")
AXE = Axe()


BAD_CSV = (
    b"phone,tag,timezone\n"
    b"79161234567,vip,Mars/Olympus_Mons\n"
    b"not-a-phone-number-at-all-and-rather-long-too,vip,UTC\n"
    b"79161234568,a-tag-of-well-over-sixty-four-characters-that-nobody-should-ever-type-in,UTC\n"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory, sqlite_template):
    with serving(tmp_path_factory.mktemp("a11y"), sqlite_template) as served:
        yield served.url


def axe_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    found = AXE.run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']][:5]}"
        for v in found
        if v["impact"] in SERIOUS
    ]


def sideways_scroll(page: Page) -> int:
    """How many pixels the page is wider than the window (0: no sideways scroll)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def broken_words(page: Page) -> list[str]:
    """Words of up to 12 characters in table cells that are split across lines (a column
    too narrow for them breaks them letter by letter)."""
    return page.evaluate(
        """() => {
            const broken = [];
            for (const cell of document.querySelectorAll('td')) {
                const texts = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
                for (let node; (node = texts.nextNode());) {
                    for (const word of node.data.matchAll(/\\S+/g)) {
                        if (word[0].length > 12) continue;
                        const range = document.createRange();
                        range.setStart(node, word.index);
                        range.setEnd(node, word.index + word[0].length);
                        if (range.getClientRects().length > 1) broken.push(word[0]);
                    }
                }
            }
            return broken;
        }"""
    )


def bars_off_screen(page: Page) -> list[str]:
    """Progress bars reaching past the window's right edge, or squeezed under 100 px."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.bar')]
            .map(bar => bar.getBoundingClientRect())
            .filter(box => box.right > document.documentElement.clientWidth || box.width < 100)
            .map(box => `${Math.round(box.left)}..${Math.round(box.right)} px`)"""
    )


def problems_of(page: Page, name: str, width: str) -> list[str]:
    found = [f"{name}: axe {violation}" for violation in axe_violations(page)]
    if width == "phone" and (extra := sideways_scroll(page)) > 0:
        found.append(f"{name}: {extra} px wider than the {PHONE_WIDTH} px screen")
    found += [f"{name}: the word {word!r} is broken across lines" for word in broken_words(page)]
    found += [f"{name}: a progress bar at {box}" for box in bars_off_screen(page)]
    return found


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", VIEWPORTS)
def test_every_page_is_accessible_and_fits_the_screen(chromium, site, scheme, width):  # noqa: F811
    context, page = signed_in(chromium, site, color_scheme=scheme, **VIEWPORTS[width])
    violations = watch_csp(page)
    problems: list[str] = []
    try:
        for path in PAGES:
            page.goto(f"{site}{path}")
            problems += problems_of(page, path, width)

        # Pages with what a visitor typed: a form refused with its errors, an import report.
        page.goto(f"{site}/admin/clients/new")
        page.get_by_label("Phone (7XXXXXXXXXX)").fill("12345")
        page.get_by_role("button", name="Add client").click()
        expect(page.locator("#phone-error")).to_be_visible()
        problems += problems_of(page, "client form with an error", width)
        page.goto(f"{site}/admin/clients/import")
        page.get_by_label("CSV file").set_input_files(
            files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": BAD_CSV}]
        )
        page.get_by_role("button", name="Import").click()
        expect(page.locator("#import-report")).to_contain_text("Nothing was imported")
        problems += problems_of(page, "import report", width)

        # Signed out: the sign-in page, and its refusal of a wrong login link.
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        problems += problems_of(page, "/admin/login", width)
        page.goto(f"{site}/admin/login?token=wrong")
        expect(page.get_by_role("alert")).to_be_visible()
        problems += problems_of(page, "/admin/login?token=wrong", width)
    finally:
        context.close()
    assert problems == [], "\n".join(problems)
    assert violations == []


def test_tables_scroll_only_inside_a_labelled_region_the_keyboard_reaches(
    chromium,  # noqa: F811
    site,
):
    """Where a table is wider than its box (a window between phone and desktop widths), the
    box scrolls, and a keyboard user can move into it (tabindex=0) to scroll it; a screen
    reader names it. The small counts table is stacked on a phone and fits elsewhere."""
    context, page = signed_in(chromium, site, viewport={"width": 800, "height": 900})
    unlabelled: list[str] = []
    try:
        for path in (
            "/admin/",
            "/admin/mailings/1",
            "/admin/clients",
            "/admin/mailings/1/messages/26",
            "/admin/clients/1",
            "/admin/audit",
        ):
            page.goto(f"{site}{path}")
            unlabelled += page.evaluate(
                """path => [...document.querySelectorAll('table:not(.counts)')]
                    .map(table => table.parentElement)
                    .filter(box => !(box.getAttribute('role') === 'region'
                                     && box.tabIndex === 0 && box.getAttribute('aria-label')))
                    .map(box => `${path}: ${box.outerHTML.slice(0, 80)}`)""",
                path,
            )
            problems = axe_violations(page)
            assert problems == [], path
    finally:
        context.close()
    assert unlabelled == []


def focus_on(page: Page, name: str, limit: int = 60) -> str:
    """Press Tab until the focused element's accessible text is ``name``; its tag.

    Fails when ``limit`` presses never reach it: the keyboard cannot get there.
    """
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const el = document.activeElement;
                       return [el.tagName, (el.labels && el.labels[0] ? el.labels[0].textContent
                               : el.getAttribute('aria-label') || el.textContent).trim()]; }"""
        )
        if focused[1] == name:
            return focused[0]
    raise AssertionError(f"{name!r} is not reached with the Tab key")


def focus_ring(page: Page) -> str:
    """The focused element's outline or box-shadow: what shows a keyboard user where it is."""
    return page.evaluate(
        """() => { const style = getComputedStyle(document.activeElement);
                   return style.outlineStyle !== 'none' && style.outlineWidth !== '0px'
                       ? style.outlineStyle : style.boxShadow; }"""
    )


def test_the_client_page_and_the_audit_log_work_from_the_keyboard(chromium, site):  # noqa: F811
    """Opt a client out and in again, search the audit log and open a value cut for the
    table, with the Tab, Enter and Space keys alone; the focus is visible at each step."""
    context, page = signed_in(chromium, site, viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{site}/admin/clients/2")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Client 2")
        assert focus_on(page, "Opt out") == "BUTTON"
        assert focus_ring(page) not in ("", "none")
        page.keyboard.press("Enter")
        expect(page.locator("#opt-state")).to_have_text("opted out")
        assert focus_on(page, "Opt in again") == "BUTTON"
        page.keyboard.press("Space")
        expect(page.locator("#opt-state")).to_have_text("receives mailings")
        assert focus_on(page, "Message list") == "DIV"  # the scrolling region of its messages

        page.goto(f"{site}/admin/audit")
        expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
        assert focus_on(page, "Mailing id") == "INPUT"
        page.keyboard.type("2")
        rows = page.locator("#audit tbody tr")
        expect(rows).to_have_count(1)  # mailing 2: created
        assert focus_on(page, "Audit log") == "DIV"
        assert focus_ring(page) not in ("", "none")
        assert focus_on(page, page.locator("#audit summary").first.inner_text()) == "SUMMARY"
        page.keyboard.press("Enter")
        expect(page.locator("#audit details").first).to_have_attribute("open", "")
        assert "utm_source=sms" in page.locator("#audit details").first.inner_text()
        # The opt-out and opt-in just made are the client's newest entries, by the login.
        page.goto(f"{site}/admin/audit?client_id=2")
        expect(rows.first).to_contain_text("opted_in")
        expect(rows.nth(1)).to_contain_text("opted_out")
    finally:
        context.close()
