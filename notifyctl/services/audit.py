"""The audit log: who changed what, written in the transaction of the change.

Front ends say who acts when they open a session (``db.session_scope(engine, actor=…)``:
``cli:<os user>``, ``token:<name>``, ``login-token``, ``oidc:<email or subject>``); the
service function that makes a change calls ``record`` with it, so that a change rolled
back leaves no entry and a committed one always has its entry. The daemon's own changes
(activation, completion, expiry) are recorded by ``services.delivery`` as ``daemon``.

A change point is one call::

    before = audit.snapshot(client)
    ...  # change the client
    audit.record(session=session, action="updated", object_type="client",
                 object_id=client.id, changes=audit.diff(before, audit.snapshot(client)))

``changes`` maps a field to ``[old, new]``: only the new values for a creation, only the
old ones for a deletion, counts (an import's, a retry's) as ``[null, n]``. Only the fields
in ``FIELDS`` are ever shown: no token, hash or session can reach the log.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from notifyctl.db import ACTOR
from notifyctl.errors import InvalidInput
from notifyctl.models import Audit, Page
from notifyctl.services import validation
from notifyctl.timeutil import utcnow

AUDIT = Audit.__table__
DAEMON = "daemon"  #: the actor of the daemon's own changes
#: the actor of a session no front end named (a script or test calling the services)
SYSTEM = "system"
MAX_ACTOR = 400  # characters: "oidc:" and the longest e-mail address fit
PRUNE_BATCH = 1_000  # entries deleted per transaction when the retention is applied

#: What an entry shows of each kind of row, by table: an allow-list, so that a column
#: added later (a secret, say) stays out of the log until someone decides otherwise.
FIELDS: dict[str, tuple[str, ...]] = {
    "client": ("phone", "operator_code", "tag", "timezone", "opted_out_at"),
    "mailing": (
        "name",
        "transactional",
        "text",
        "start_at",
        "end_at",
        "operator_codes",
        "tags",
        "window_start",
        "window_end",
        "activated_at",
        "paused_at",
        "cancelled_at",
        "completed_at",
    ),
    "api_token": ("name", "revoked_at"),  # never token_hash
}


def snapshot(row: Any) -> dict[str, Any]:
    """The audited fields of a stored row (``FIELDS``), as JSON values."""
    return {name: plain(getattr(row, name)) for name in FIELDS[row.__tablename__]}


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list]:
    """``{field: [old, new]}`` for each field whose value differs; a field absent on one
    side is None there (so ``diff({}, snapshot(new))`` is a creation's values)."""
    return {
        name: [before.get(name), after.get(name)]
        for name in dict.fromkeys([*before, *after])
        if before.get(name) != after.get(name)
    }


def plain(value: Any) -> Any:
    """A value as JSON holds it: datetimes as ISO-8601 UTC, tuples as lists."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def shown(value: Any, limit: int) -> str:
    """A value of ``changes`` as a reader sees it in a table: JSON, cut to ``limit``
    characters (the JSON of the REST API and ``--json`` keeps it whole)."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record(
    *,
    session: Session,
    action: str,
    object_type: str,
    object_id: int | None,
    changes: Mapping[str, list],
    actor: str | None = None,
    at: datetime | None = None,
) -> None:
    """Write one entry in the session's transaction: it commits or rolls back with the
    change. ``actor`` defaults to the one the session was opened for."""
    who = actor or session.info.get(ACTOR) or SYSTEM
    session.execute(
        sa.insert(AUDIT).values(
            at=at or utcnow(),
            actor=who[:MAX_ACTOR],
            action=action,
            object_type=object_type,
            object_id=object_id,
            changes={name: [plain(old), plain(new)] for name, (old, new) in changes.items()},
        )
    )


def list_entries(
    *,
    session: Session,
    mailing_id: int | None = None,
    client_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[Audit]:
    """One page of entries, newest first; given a mailing or a client (or both), only
    the entries about it (about either)."""
    limit, offset = validation.page_bounds(limit, offset)
    about = []
    for object_type, object_id, field in (
        ("mailing", mailing_id, "mailing_id"),
        ("client", client_id, "client_id"),
    ):
        if object_id is None:
            continue
        if not validation.storable_id(object_id):
            raise InvalidInput(f"must be between 1 and {validation.MAX_ID}", field=field)
        about.append(sa.and_(AUDIT.c.object_type == object_type, AUDIT.c.object_id == object_id))
    where = sa.or_(*about) if about else sa.true()
    total = session.execute(sa.select(sa.func.count()).select_from(AUDIT).where(where)).scalar_one()
    rows = session.execute(
        sa.select(Audit)
        .where(where)
        .order_by(Audit.at.desc(), Audit.id.desc())
        .limit(limit)
        .offset(offset)
    ).scalars()
    return Page(total=total, limit=limit, offset=offset, items=list(rows))


def prune(*, session: Session, before: datetime, limit: int = PRUNE_BATCH) -> int:
    """Delete up to ``limit`` of the oldest entries made before ``before``; returns how
    many (fewer than ``limit``: none is left). Small batches keep each transaction short."""
    oldest = sa.select(AUDIT.c.id).where(AUDIT.c.at < before).order_by(AUDIT.c.at).limit(limit)
    return session.execute(sa.delete(AUDIT).where(AUDIT.c.id.in_(oldest))).rowcount
