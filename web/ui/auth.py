"""Sign-in to the admin UI, and the checks every page and form makes.

Two ways in: an OpenID Connect provider (authorization code with PKCE, through Authlib)
when ``NOTIFY_OIDC_ISSUER`` is set, with its redirect URI under ``NOTIFY_PUBLIC_URL``
(never from the request's Host header, which the caller chooses); otherwise the login
link that ``notifyctl api`` / ``notifyctl up`` print. Either way the user lands in a
signed session cookie that names a server-side session (``notifyctl.services.sessions``:
checked on every request, ended by "Log out") and holds the CSRF token every form (field
``csrf_token``) and HTMX request (header ``X-CSRF-Token``) must send back.
"""

import secrets
from datetime import timedelta
from functools import partial
from typing import Annotated
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from loguru import logger
from starlette.concurrency import run_in_threadpool

from notifyctl.config import Settings
from notifyctl.db import session_scope
from notifyctl.services import sessions
from notifyctl.services.tokens import same_secret
from web.ui.oauth import OAuth, OAuthError
from web.ui.templating import is_htmx, render

router = APIRouter()
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SCOPES = "openid email profile"
SESSION_LIFETIME = timedelta(hours=8)  # a sign-in lasts a working day
CALLBACK_PATH = "/admin/auth/callback"
NO_PUBLIC_URL = (
    "Sign-in through the provider is off: NOTIFY_PUBLIC_URL (the address of this site, "
    "such as https://notify.example.com) is not set."
)


class LoginRequired(Exception):
    """An anonymous request for a page: answered with a redirect to the sign-in page."""


class CsrfRefused(Exception):
    """A form or HTMX request without the session's CSRF token: answered with 403."""


def make_oauth(settings: Settings) -> OAuth | None:
    """The provider's client, or None when no provider is configured."""
    if not (settings.oidc_issuer and settings.oidc_client_id):
        return None
    oauth = OAuth()
    oauth.register(
        "provider",
        server_metadata_url=f"{settings.oidc_issuer.rstrip('/')}/.well-known/openid-configuration",
        client_id=settings.oidc_client_id,
        client_secret=(
            settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
        ),
        client_kwargs={"scope": SCOPES, "code_challenge_method": "S256"},
    )
    return oauth


def redirect_uri(settings: Settings) -> str | None:
    """Where the provider sends the browser back: under the configured public address."""
    return f"{settings.public_url}{CALLBACK_PATH}" if settings.public_url else None


def current_user(request: Request) -> str:
    """The signed-in user's name; anonymous requests are sent to the sign-in page.

    The cookie alone is not enough: its session must still be live on the server (not
    logged out, not expired). A sync function, so FastAPI runs the lookup in a thread.
    """
    session_id = request.session.get("sid")
    user = None
    if isinstance(session_id, str):
        with session_scope(request.app.state.engine) as session:
            user = sessions.session_user(session=session, session_id=session_id)
    if user is None:
        request.session.clear()  # an ended session's cookie is dropped, not kept around
        raise LoginRequired
    # Who the audit log names for this page's changes (web.deps.get_session reads it).
    request.state.actor = request.session.get("actor") or _actor_of(user)
    return user


LOGIN_LINK_USER = "admin (login link)"  #: the user name of a sign-in by the login link


def _actor_of(user: str) -> str:
    """The audit log's name for a user signed in before sessions carried one."""
    return "login-token" if user == LOGIN_LINK_USER else f"oidc:{user}"


UserDep = Annotated[str, Depends(current_user)]


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request whose CSRF token is not the session's."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        sent = (await request.form()).get("csrf_token")
    expected = request.session.get("csrf")
    if not (expected and isinstance(sent, str) and same_secret(sent, expected)):
        logger.warning("refused a form without a valid CSRF token: {path}", path=request.url.path)
        raise CsrfRefused


def _start_session(request: Request, user: str, *, actor: str) -> None:
    """Store a new server-side session and put its id in a fresh cookie (blocking I/O).

    A session this browser held before ends here: a copy of its cookie must not outlive
    the sign-in that replaced it (a later logout ends only the new one).
    """
    previous = request.session.get("sid")
    with session_scope(request.app.state.engine) as session:
        if isinstance(previous, str):
            sessions.end_session(session=session, session_id=previous)
        session_id = sessions.start_session(session=session, user=user, lifetime=SESSION_LIFETIME)
    request.session.clear()  # a new session on sign-in: no fixation
    request.session["sid"] = session_id
    request.session["user"] = user  # shown in the page header
    request.session["actor"] = actor  # in the audit log (the cookie is signed)
    csrf_token(request)
    logger.info("admin sign-in: {user}", user=user)


def _safe_next(target: str | None) -> str:
    """Only a path inside the admin UI may be returned to (no open redirect)."""
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return "/admin/"


@router.get("/login", name="ui_login")
def login(request: Request, token: str | None = None, next: str | None = None) -> Response:
    """The sign-in page; ``?token=`` is the login link printed when no provider is set."""
    oauth = request.app.state.oauth
    login_token = request.app.state.login_token
    error = None
    if token is not None:
        if oauth is None and login_token and same_secret(token, login_token):
            _start_session(request, LOGIN_LINK_USER, actor="login-token")
            return RedirectResponse(_safe_next(next), 303)
        error = "That login link is not valid. The server prints a new one each time it starts."
    return _login_page(request, error=error, status=401 if error else 200, next=_safe_next(next))


def _login_page(
    request: Request, *, error: str | None = None, status: int = 200, next: str = "/admin/"
) -> Response:
    """The sign-in page: the provider's button when it can be used, else the reason."""
    provider = request.app.state.oauth is not None
    ready = provider and redirect_uri(request.app.state.settings) is not None
    if provider and not ready and error is None:
        error, status = NO_PUBLIC_URL, 503
    context = {"provider": provider, "ready": ready, "next": next, "error": error}
    return render(request, "admin/login.html", context, status=status)


@router.get("/login/oidc", name="ui_login_oidc")
async def login_oidc(request: Request, next: str | None = None) -> Response:
    """Send the browser to the provider (authorization code flow with PKCE)."""
    oauth = request.app.state.oauth
    if oauth is None:
        return RedirectResponse("/admin/login", 303)
    back = redirect_uri(request.app.state.settings)
    if back is None:
        return _login_page(request)
    request.session["next"] = _safe_next(next)
    try:
        return await oauth.provider.authorize_redirect(request, back)
    except Exception as exc:  # the provider is down or its discovery document is bad
        logger.warning("cannot reach the sign-in provider: {error!r}", error=exc)
        return _login_page(request, error="The sign-in provider is unreachable.", status=503)


@router.get("/auth/callback", name="ui_callback")
async def callback(request: Request) -> Response:
    """Where the provider sends the browser back with a code (or an error)."""
    oauth = request.app.state.oauth
    if oauth is None:
        return RedirectResponse("/admin/login", 303)
    try:
        token = await oauth.provider.authorize_access_token(request)
    except OAuthError as exc:
        logger.info("sign-in refused by the provider: {error}", error=exc.error)
        return _refused(request, "The sign-in did not complete. Try again.")
    except httpx.HTTPError as exc:  # the provider went away between redirect and callback
        logger.warning("cannot reach the sign-in provider: {error}", error=type(exc).__name__)
        return _refused(request, "The sign-in provider is unreachable.", 503)
    except Exception as exc:  # a token we cannot trust (signature, nonce, aud, iss, times)
        # or an answer we cannot read: Authlib raises its JOSE errors, ValueError, KeyError…
        logger.warning(
            "sign-in refused: the provider's answer failed its checks: {error}: {detail}",
            error=type(exc).__name__,
            detail=str(exc)[:200],
        )
        return _refused(request, "The sign-in did not complete. Try again.")
    claims = dict(token.get("userinfo") or {})
    if not claims.get("sub"):
        # Only a verified ID token says who signed in; an access token alone (the openid
        # scope not granted, or a plain OAuth2 server) says nothing, so nobody gets in.
        logger.warning("sign-in refused: the provider's answer holds no ID token")
        return _refused(request, "The sign-in provider did not say who you are (no ID token).")
    if not request.app.state.oidc.allows(claims):
        logger.info("sign-in refused: {sub} is not an allowed user", sub=claims.get("sub"))
        return _refused(request, "Your account is not allowed to use this admin UI.", 403)
    target = request.session.get("next")
    user = str(claims.get("email") or claims["sub"])
    await run_in_threadpool(partial(_start_session, request, user, actor=f"oidc:{user}"))
    return RedirectResponse(_safe_next(target), 303)


def _refused(request: Request, message: str, status: int = 401) -> Response:
    request.session.clear()
    return _login_page(request, error=message, status=status)


@router.post("/logout", name="ui_logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    """End the session on the server, so that a copy of its cookie opens nothing."""
    session_id = request.session.get("sid")
    if isinstance(session_id, str):
        with session_scope(request.app.state.engine) as session:
            sessions.end_session(session=session, session_id=session_id)
    logger.info("admin sign-out: {user}", user=request.session.get("user"))
    request.session.clear()
    return RedirectResponse("/admin/login", 303)


def install_handlers(app: FastAPI) -> None:
    """Answer anonymous pages with the sign-in page and forged forms with 403."""

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        target = f"/admin/login?next={quote(request.url.path)}"
        if is_htmx(request):  # a fragment cannot redirect the page; HTMX can
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, 303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _exc: CsrfRefused) -> Response:
        message = "This form has expired or did not come from this site. Reload the page."
        return render(request, "admin/error.html", {"status": 403, "message": message}, 403)
