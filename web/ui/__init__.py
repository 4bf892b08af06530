"""The admin UI at ``/admin/``: server-rendered pages (Jinja2, HTMX) over the service functions.

``install`` adds it to the FastAPI app: sessions (a signed cookie naming a row of
``admin_session``), the static assets vendored from npm (no CDN), the sign-in routes and
the pages. Every page needs a signed-in user and every form a CSRF token
(``web.ui.auth``); every page refuses framing and sends a Content-Security-Policy
(``web.ui.headers``).
"""

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from loguru import logger
from starlette.middleware.sessions import SessionMiddleware

from notifyctl.config import Settings
from notifyctl.services.tokens import new_secret
from web.ui import audit, auth, clients, dashboard, mailings
from web.ui.templating import make_templates

STATIC = Path(__file__).resolve().parent.parent / "static"


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the admin UI on ``app``."""
    secret = settings.session_secret.get_secret_value() if settings.session_secret else None
    if secret is None:
        logger.info("NOTIFY_SESSION_SECRET is unset: admin sign-ins end when the API restarts")
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret or new_secret(),
        session_cookie="notifyctl_session",
        max_age=int(auth.SESSION_LIFETIME.total_seconds()),
        same_site="lax",
        https_only=settings.cookie_secure,
    )
    app.state.templates = make_templates(settings)
    app.state.oauth = auth.make_oauth(settings)
    if app.state.oauth is not None and auth.redirect_uri(settings) is None:
        logger.warning(
            "NOTIFY_OIDC_ISSUER is set but NOTIFY_PUBLIC_URL is not: sign-in to the admin UI "
            "through the provider is off until it is (the redirect URI is built from it)"
        )
    app.mount("/admin/static", StaticFiles(directory=STATIC), name="static")

    pages = APIRouter(dependencies=[Depends(auth.current_user), Depends(auth.check_csrf)])
    for module in (dashboard, mailings, clients, audit):
        pages.include_router(module.router)
    app.include_router(auth.router, prefix="/admin", include_in_schema=False)
    app.include_router(pages, prefix="/admin", include_in_schema=False)
    auth.install_handlers(app)
