"""Response headers that keep the admin UI from being framed or running anyone else's code.

Every page of the UI takes its scripts, styles and images from ``/admin/static`` only:
no inline ``<script>``, ``<style>``, ``style=`` or ``on…=`` in the templates (HTMX's own
indicator ``<style>`` is switched off in ``base.html``), so the policy needs no
``'unsafe-inline'``. Swagger UI and ReDoc (``web.docs``) send policies of their own;
framing is refused everywhere.
"""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UI_PREFIX = "/admin"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",  # Pico draws its select arrows and checkmarks as data: SVGs
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
EVERYWHERE = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}
UI_ONLY = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Referrer-Policy": "same-origin"}


class SecurityHeaders:
    """ASGI middleware adding ``EVERYWHERE`` to every response, ``UI_ONLY`` under /admin,
    and keeping redirects to our own host relative. Installed outermost (``web.app``), so
    that even a 500 carries them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = EVERYWHERE | (UI_ONLY if scope["path"].startswith(UI_PREFIX) else {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
                _relative_location(headers, scope)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _relative_location(headers: MutableHeaders, scope: Scope) -> None:
    """Make a redirect to our own host relative: Starlette builds absolute ones (the
    trailing-slash redirect) from the request's ``Host``, which the caller chooses, so
    ``Host: evil.example`` would send the browser there."""
    location = headers.get("location")
    if not location or "://" not in location:
        return
    host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
    scheme, _, rest = location.partition("://")
    netloc, slash, path = rest.partition("/")
    if scheme in ("http", "https") and netloc == host:
        headers["location"] = slash + path or "/"
