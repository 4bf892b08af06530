"""Admin UI sessions: one row per sign-in, checked on every request, deleted on logout.

The session cookie carries only a random id; the table keeps its SHA-256, the user and
the expiry. Logging out deletes the row, so a copy of the cookie taken before is refused
afterwards, by every API replica (they share the database). Expired rows are deleted
at each sign-in (one indexed ``DELETE``), so the table holds about the live sign-ins.
"""

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session

from notifyctl.models import AdminSession
from notifyctl.timeutil import utcnow

USER_NAME_MAX = 320  # characters: the longest e-mail address


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _storable(user: str) -> str:
    """``user`` as every backend stores it: no NUL, no lone surrogate, not too long."""
    cleaned = user.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return cleaned[:USER_NAME_MAX]


def start_session(*, session: Session, user: str, lifetime: timedelta) -> str:
    """Store a sign-in of ``user`` lasting ``lifetime``; return its id, for the cookie only.

    Sessions that have expired, anyone's, are deleted on the way.
    """
    now = utcnow()
    session.execute(sa.delete(AdminSession).where(AdminSession.expires_at <= now))
    session_id = secrets.token_urlsafe(32)
    session.add(
        AdminSession(
            id_hash=_hash(session_id),
            user_name=_storable(user),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return session_id


def session_user(*, session: Session, session_id: str) -> str | None:
    """The user of a live session, or None once it has ended (logout) or expired."""
    return session.execute(
        sa.select(AdminSession.user_name).where(
            AdminSession.id_hash == _hash(session_id), AdminSession.expires_at > utcnow()
        )
    ).scalar_one_or_none()


def end_session(*, session: Session, session_id: str) -> None:
    """End a session (logout); ending one that has already ended is no error."""
    session.execute(sa.delete(AdminSession).where(AdminSession.id_hash == _hash(session_id)))
