"""Dependencies shared by the routes: a database session and the caller's identity."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from notifyctl.config import Settings
from notifyctl.db import session_scope
from notifyctl.services.tokens import same_secret, verify_token
from web.oidc import looks_like_jwt

bearer = HTTPBearer(
    auto_error=False,
    description="An API token (`notifyctl token create`), the login token that "
    "`notifyctl api` prints, or an ID token (JWT) from the configured OIDC provider.",
)


def get_session(request: Request) -> Iterator[Session]:
    """A session committed when the route returns, rolled back if it raises.

    Its changes are recorded in the audit log for the caller that the route's router
    let in (``require_caller`` for the REST API, the admin UI's ``current_user``): router
    dependencies are solved before a route's own, so ``request.state.actor`` is set.
    """
    actor = getattr(request.state, "actor", None)
    with session_scope(request.app.state.engine, actor=actor) as session:
        yield session


# scope="function": the commit happens before the response goes out, so a caller never
# gets a 201 for a row that a failed commit then loses.
#: Paging parameters shared by every list route.
Limit = Annotated[int, Query(ge=1, le=1000, description="items per page")]
Offset = Annotated[int, Query(ge=0, le=2**63 - 1, description="items to skip")]

SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_session_opener(request: Request) -> Callable[[], AbstractContextManager[Session]]:
    """Opens sessions of their own, each committed on leaving: for a route that must hold
    no transaction while it waits (a test send's request to the sending API)."""
    engine = request.app.state.engine
    return lambda: session_scope(engine)


SessionOpenerDep = Annotated[
    Callable[[], AbstractContextManager[Session]], Depends(get_session_opener)
]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the name of their API token, or "login" for the login token;
    ``actor`` names them in the audit log."""

    name: str
    actor: str


def require_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """Refuse anonymous callers (401) and unknown or revoked tokens."""
    known = getattr(request.state, "caller", None)
    if isinstance(known, Caller):  # web.limits checked the token before the body was read
        request.state.actor = known.actor
        return known
    refusal = getattr(request.state, "refusal", None)
    if isinstance(refusal, Exception):  # …and refused it
        raise refusal
    caller = _identify(request, credentials)
    request.state.actor = caller.actor
    return caller


def _identify(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorised("a bearer token is required")
    presented = credentials.credentials
    login = request.app.state.login_token
    if login and same_secret(presented, login):
        return Caller("login", actor="login-token")
    verifier = request.app.state.oidc
    if verifier is not None and looks_like_jwt(presented):
        claims = verifier.verify(presented)
        if claims is not None:
            name = f"oidc:{claims.get('email') or claims['sub']}"
            return Caller(name, actor=name)
        raise _unauthorised("invalid, expired or foreign JWT")
    with session_scope(request.app.state.engine) as session:
        token = verify_token(session=session, plain=presented)
        if token is not None:
            return Caller(token.name, actor=f"token:{token.name}")
    raise _unauthorised("unknown or revoked token")


def _unauthorised(reason: str) -> HTTPException:
    return HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})


CallerDep = Annotated[Caller, Depends(require_caller)]
