"""Response headers that keep the admin UI from being framed or running anyone else's code.

Every page of the UI takes its scripts, styles and images from ``/admin/static`` only:
no inline ``<script>``, ``<style>``, ``style=`` or ``on…=`` in the templates (HTMX's own
indicator ``<style>`` is switched off in ``base.html``), so the policy needs no
``'unsafe-inline'``. Swagger UI at ``/docs/`` loads from a CDN and keeps no such policy;
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
    """ASGI middleware adding ``EVERYWHERE`` to every response, ``UI_ONLY`` under /admin."""

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
            await send(message)

        await self.app(scope, receive, send_with_headers)
