"""API tokens for scripts: shown once at creation, stored as SHA-256 hashes."""

import hashlib
import re
import secrets

import sqlalchemy as sa
from sqlmodel import Session

from notifyctl.errors import Conflict, InvalidInput, NotFound
from notifyctl.models import ApiToken
from notifyctl.services import audit, validation
from notifyctl.timeutil import utcnow

PREFIX = "nfy_"  # makes a leaked token easy to recognise (and to scan for)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # (fullmatch: "$" lets a "\n" end it)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    """A fresh random token (also used for the one-time login link)."""
    return PREFIX + secrets.token_urlsafe(32)


def same_secret(given: str, expected: str) -> bool:
    """Compare in constant time, as bytes: ``compare_digest`` raises TypeError for a str
    with a non-ASCII character, which made a 500 of a token like "é"."""
    return secrets.compare_digest(
        given.encode(errors="surrogatepass"), expected.encode(errors="surrogatepass")
    )


def create_token(*, session: Session, name: str) -> tuple[ApiToken, str]:
    """Store a new token under ``name``; returns it with the plain token (shown only now)."""
    if not NAME.fullmatch(name):
        raise InvalidInput(
            "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="name",
        )
    if session.execute(sa.select(ApiToken.id).where(ApiToken.name == name)).first():
        raise Conflict(f"a token named {name!r} exists already", field="name")
    plain = new_secret()
    token = ApiToken(name=name, token_hash=hash_token(plain))
    session.add(token)
    session.flush()
    _record(session, "created", token, audit.diff({}, audit.snapshot(token)))
    return token, plain


def list_tokens(*, session: Session) -> list[ApiToken]:
    return list(session.execute(sa.select(ApiToken).order_by(ApiToken.name)).scalars())


def revoke_token(*, session: Session, name: str) -> ApiToken:
    validation.storable(name, field="name")
    token = session.execute(sa.select(ApiToken).where(ApiToken.name == name)).scalar_one_or_none()
    if token is None:
        raise NotFound(f"no token named {name!r}", field="name")
    if token.revoked_at is not None:
        raise Conflict(f"token {name!r} is revoked already", field="name")
    token.revoked_at = utcnow()
    session.add(token)
    session.flush()
    # The name, unchanged, too: tokens are known by their names, not their ids.
    _record(
        session, "revoked", token, {"name": [name, name], "revoked_at": [None, token.revoked_at]}
    )
    return token


def _record(session: Session, action: str, token: ApiToken, changes: dict) -> None:
    audit.record(
        session=session, action=action, object_type="api_token", object_id=token.id, changes=changes
    )


def verify_token(*, session: Session, plain: str) -> ApiToken | None:
    """The live token matching ``plain``, or None; notes when it was last used."""
    if not plain.startswith(PREFIX):
        return None
    token = session.execute(
        sa.select(ApiToken).where(
            ApiToken.token_hash == hash_token(plain), ApiToken.revoked_at.is_(None)
        )
    ).scalar_one_or_none()
    if token is not None:
        now = utcnow()
        # Written at most once a minute per token: reads should not turn into writes.
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            token.last_used_at = now
            session.add(token)
    return token
