"""Swagger UI at ``/docs/`` and ReDoc at ``/redoc/``, from files this server holds.

FastAPI's own pages load both from cdn.jsdelivr.net, and are blank on a network without
internet access. These are the same pages (FastAPI's ``get_swagger_ui_html`` and
``get_redoc_html``) pointed at the copies vendored from npm into ``web/static/vendor``
(``fetch.sh``, ``make vendor``) and served under ``/admin/static``, with a favicon of
our own and no Google Fonts.

Each page carries a Content-Security-Policy: scripts from this server only, plus Swagger
UI's one inline start-up script, allowed by its SHA-256 (computed from the page itself,
so it follows FastAPI's text). ReDoc builds its styles at run time in ``<style>``
elements (styled-components) and its search index in a ``blob:`` worker, so its page
allows inline styles and ``blob:`` workers; neither can run code from elsewhere.
"""

import base64
import hashlib
import re

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse

SWAGGER_UI_VERSION = "5.35.0"  # as web/static/vendor/fetch.sh fetches it
REDOC_VERSION = "2.5.4"
VENDOR = "/admin/static/vendor"
FAVICON = f"{VENDOR}/swagger-ui-favicon-32x32.png"

COMMON_POLICY = [
    "default-src 'self'",
    "img-src 'self' data:",  # both draw icons as data: SVGs
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
]
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _sha256(code: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode()).digest()).decode() + "'"


def swagger_ui_page(*, openapi_url: str, title: str) -> tuple[str, str]:
    """Swagger UI's HTML and the policy that lets exactly its inline start-up script run."""
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - Swagger UI",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle-{SWAGGER_UI_VERSION}.js",
        swagger_css_url=f"{VENDOR}/swagger-ui-{SWAGGER_UI_VERSION}.css",
        swagger_favicon_url=FAVICON,
    ).body.decode()
    hashes = " ".join(_sha256(code) for code in _INLINE_SCRIPT.findall(html))
    return html, "; ".join([*COMMON_POLICY, f"script-src 'self' {hashes}"])


def redoc_page(*, openapi_url: str, title: str) -> tuple[str, str]:
    """ReDoc's HTML and its policy (no inline script in it)."""
    html = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{title} - ReDoc",
        redoc_js_url=f"{VENDOR}/redoc-{REDOC_VERSION}.standalone.js",
        redoc_favicon_url=FAVICON,
        with_google_fonts=False,
    ).body.decode()
    policy = [
        *COMMON_POLICY,
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "worker-src 'self' blob:",
    ]
    return html, "; ".join(policy)


def _serve(html: str, policy: str):
    def page() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})

    return page


def _redirect(target: str):
    def without_slash() -> RedirectResponse:
        return RedirectResponse(target)

    return without_slash


def install(app: FastAPI) -> None:
    """Serve the pages at /docs/ and /redoc/ (and lead /docs and /redoc there).

    The app must have been created with ``docs_url=None, redoc_url=None``.
    """
    pages = {
        "/docs/": swagger_ui_page(openapi_url=app.openapi_url, title=app.title),
        "/redoc/": redoc_page(openapi_url=app.openapi_url, title=app.title),
    }
    for path, (html, policy) in pages.items():
        app.add_api_route(path, _serve(html, policy), methods=["GET"], include_in_schema=False)
        app.add_api_route(
            path.rstrip("/"), _redirect(path), methods=["GET"], include_in_schema=False
        )
