"""Delivery bookkeeping for the daemon: activate, claim, record, expire, complete, reap.

Every statement is set-based and touches only the rows it must, so that one daemon can
keep thousands of messages a second moving and several can share one PostgreSQL
database (claims use ``FOR UPDATE SKIP LOCKED`` there; SQLite has one writer anyway).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from notifyctl.caps import FrequencyCap
from notifyctl.db import locked, upsert_insert
from notifyctl.models import (
    Attempt,
    Client,
    Mailing,
    Message,
    MessageStatus,
    Throttle,
    status_is,
)
from notifyctl.services import audience, audit, frequency, optout

MESSAGE = Message.__table__
ATTEMPT = Attempt.__table__
MAILING = Mailing.__table__
EXCERPT = 500  # characters of a response body or error kept per attempt


def unsent() -> sa.ColumnElement[bool]:
    """Pending or in flight, as two arms that each match a partial index (an ``IN`` of
    both would match neither, and read the whole history)."""
    return sa.or_(status_is(MessageStatus.pending), status_is(MessageStatus.sending))


def storable(text: str | None, limit: int = EXCERPT) -> str | None:
    """``text`` cut to ``limit`` and made storable anywhere: what the sending API answers is
    arbitrary, and PostgreSQL refuses NUL in text and UTF-8 refuses lone surrogates."""
    if not text:
        return None
    text = text[:limit].replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8")


# --- mailings --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MailingSnapshot:
    """What a sender needs to know about a mailing, refreshed every fraction of a second."""

    id: int
    text: str
    start_at: datetime
    end_at: datetime
    window: tuple[str, str] | None
    paused: bool
    cancelled: bool
    #: reaches opted-out clients too (one-time codes, service notices)
    transactional: bool = False


def live_mailings(*, session: Session, now: datetime) -> dict[int, MailingSnapshot]:
    """Mailings that may still send: activated, not completed; keyed by id."""
    rows = session.execute(
        sa.select(Mailing).where(
            Mailing.activated_at.is_not(None),
            Mailing.completed_at.is_(None),
            Mailing.end_at > now - timedelta(minutes=1),
        )
    ).scalars()
    return {
        m.id: MailingSnapshot(
            id=m.id,
            text=m.text,
            start_at=m.start_at,
            end_at=m.end_at,
            window=(m.window_start, m.window_end) if m.window_start and m.window_end else None,
            paused=m.paused_at is not None,
            cancelled=m.cancelled_at is not None,
            transactional=bool(m.transactional),
        )
        for m in rows
    }


def unsent_count(*, session: Session, mailing_ids: list[int]) -> int:
    """Messages of these mailings not yet final (pending or sending): the backlog."""
    if not mailing_ids:
        return 0
    return session.execute(
        sa.select(sa.func.count())
        .select_from(Message)
        .where(MESSAGE.c.mailing_id.in_(mailing_ids), unsent())
    ).scalar_one()


def due_for_activation(
    *, session: Session, now: datetime, mailing_id: int | None = None
) -> list[Mailing]:
    """Mailings whose start has come and whose audience is not materialised yet.

    Ended ones are included: their clients get messages that expire at once, so the
    statistics show who was never reached.
    """
    query = sa.select(Mailing).where(
        Mailing.activated_at.is_(None), Mailing.cancelled_at.is_(None), Mailing.start_at <= now
    )
    if mailing_id is not None:
        query = query.where(Mailing.id == mailing_id)
    return list(session.execute(locked(query, session)).scalars())


def activate(*, session: Session, mailing: Mailing, now: datetime) -> int:
    """Materialise the audience of ``mailing`` and mark it activated; returns messages made."""
    created = audience.materialise(session=session, mailing=mailing, now=now)
    session.execute(sa.update(MAILING).where(MAILING.c.id == mailing.id).values(activated_at=now))
    changes = {"activated_at": [None, now], "messages_created": [None, created]}
    _record(session, "activated", mailing.id, changes, now=now)
    return created


def _record(
    session: Session, action: str, mailing_id: int, changes: dict, *, now: datetime
) -> None:
    """An entry of the audit log for the daemon's own change of a mailing."""
    audit.record(
        session=session,
        action=action,
        object_type="mailing",
        object_id=mailing_id,
        changes=changes,
        actor=audit.DAEMON,
        at=now,
    )


def audience_timezones(*, session: Session, mailing_id: int) -> list[str]:
    """The distinct timezones of a mailing's pending messages (for window scheduling)."""
    query = (
        sa.select(Client.timezone)
        .join(MESSAGE, MESSAGE.c.client_id == Client.id)
        .where(MESSAGE.c.mailing_id == mailing_id, status_is(MessageStatus.pending))
        .distinct()
    )
    return list(session.execute(query).scalars())


def defer_timezone(
    *, session: Session, mailing_id: int, timezone: str, until: datetime | None
) -> int:
    """Move the pending messages of one timezone to ``until`` (None: expire them)."""
    of_zone = sa.select(Client.id).where(Client.timezone == timezone)
    where = (
        MESSAGE.c.mailing_id == mailing_id,
        status_is(MessageStatus.pending),
        MESSAGE.c.client_id.in_(of_zone),
    )
    values = (
        {"next_attempt_at": until}
        if until is not None
        else {"status": MessageStatus.expired, "next_attempt_at": None}
    )
    return session.execute(sa.update(MESSAGE).where(*where).values(**values)).rowcount


# --- claims ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message this daemon now holds (status ``sending``) with what sending it needs."""

    id: int
    mailing_id: int
    client_id: int
    phone: str
    timezone: str
    attempts: int
    #: the lease's end: no request of this claim may outlive it
    lease_until: datetime
    #: the claimer's own (monotonic) time when the claim began: the client had not opted
    #: out as of then (``daemon.optouts``)
    seen_at: float = 0.0


def claim(
    *,
    session: Session,
    owner: str,
    mailing_ids: list[int],
    now: datetime,
    lease_until: datetime,
    limit: int,
    seen_at: float = 0.0,
    cap: FrequencyCap | None = None,
) -> list[Claimed]:
    """Claim up to ``limit`` due pending messages of the given mailings, oldest due first.

    Those whose client was deleted meanwhile are cancelled, and so are those whose client
    opted out (unless their mailing is transactional), with the reason ``opted out``:
    none of them is handed out. Under a frequency ``cap``, those whose client is at it are
    given back to wait (``services.frequency``). ``seen_at`` is stamped on every message
    handed out.
    """
    if not mailing_ids or limit <= 0:
        return []
    due = (
        sa.select(MESSAGE.c.id, MESSAGE.c.mailing_id)
        .where(
            MESSAGE.c.mailing_id.in_(mailing_ids),
            status_is(MessageStatus.pending),
            MESSAGE.c.next_attempt_at <= now,
        )
        .order_by(MESSAGE.c.next_attempt_at)
        .limit(limit)
    )
    due = locked(due, session)
    claimed_ids = list(
        session.execute(
            sa.update(MESSAGE)
            # By the whole key: PostgreSQL finds each row in its own partition only, by
            # its primary key (id, mailing_id), whatever else the partitions hold.
            .where(sa.tuple_(MESSAGE.c.id, MESSAGE.c.mailing_id).in_(due))
            .values(status=MessageStatus.sending, lease_owner=owner, lease_until=lease_until)
            .returning(MESSAGE.c.id)
        ).scalars()
    )
    if not claimed_ids:
        return []
    # (a statement after the claim's: it sees every opt-out committed before it began)
    rows = session.execute(
        sa.select(
            MESSAGE.c.id,
            MESSAGE.c.mailing_id,
            MESSAGE.c.client_id,
            Client.phone,
            Client.timezone,
            MESSAGE.c.attempts,
            MAILING.c.transactional,
            optout.opted_out(),
        )
        .join(Client, Client.id == MESSAGE.c.client_id)
        .join(MAILING, MAILING.c.id == MESSAGE.c.mailing_id)
        # (the mailings named: PostgreSQL looks into their partitions only, not the history's)
        .where(MESSAGE.c.id.in_(claimed_ids), MESSAGE.c.mailing_id.in_(mailing_ids))
        .order_by(MESSAGE.c.next_attempt_at, MESSAGE.c.id)  # (the cap lets the first through)
    )
    found, withdrawn, cappable = [], [], []
    for *values, transactional, opted_out in rows:
        if transactional:
            found.append(Claimed(*values, lease_until, seen_at))
        elif opted_out:
            withdrawn.append(values[0])
        else:
            found.append(Claimed(*values, lease_until, seen_at))
            cappable.append((values[0], values[2]))
    if len(found) + len(withdrawn) < len(claimed_ids):  # the client was deleted in between
        gone = set(claimed_ids) - {c.id for c in found} - set(withdrawn)
        session.execute(
            sa.update(MESSAGE)
            .where(MESSAGE.c.id.in_(gone), MESSAGE.c.mailing_id.in_(mailing_ids))
            .values(status=MessageStatus.cancelled, lease_owner=None, lease_until=None)
        )
    if withdrawn:
        session.execute(
            sa.update(MESSAGE)
            .where(MESSAGE.c.id.in_(withdrawn), MESSAGE.c.mailing_id.in_(mailing_ids))
            .values(
                status=MessageStatus.cancelled,
                next_attempt_at=None,
                last_error=optout.OPTED_OUT,
                lease_owner=None,
                lease_until=None,
            )
        )
    if cap is not None and cappable:
        held = frequency.hold_back(session=session, cap=cap, claimed=cappable, now=now)
        if held:
            _give_back(session, [c for c in found if c.id in held], held, frequency.reason(cap))
            found = [c for c in found if c.id not in held]
    return found


def _give_back(
    session: Session, held: list[Claimed], until: dict[int, datetime], reason: str
) -> None:
    """Claimed messages back to ``pending``, each due at its time, saying why."""
    session.execute(
        sa.update(MESSAGE)
        .where(  # (by the whole key: each row looked up in its own partition only)
            MESSAGE.c.id == sa.bindparam("message_id"),
            MESSAGE.c.mailing_id == sa.bindparam("of_mailing"),
        )
        .values(
            status=MessageStatus.pending,
            next_attempt_at=sa.bindparam("until"),
            last_error=reason,
            lease_owner=None,
            lease_until=None,
        ),
        [{"message_id": c.id, "of_mailing": c.mailing_id, "until": until[c.id]} for c in held],
    )


# --- outcomes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    started_at: datetime
    duration_ms: float
    http_status: int | None = None
    response_excerpt: str | None = None
    error: str | None = None


@dataclass(slots=True)
class Outcome:
    """What became of one claimed message.

    ``status`` is the new status; ``pending`` gives it back (to retry at
    ``next_attempt_at``, or untouched when no attempt was made).
    """

    message_id: int
    status: MessageStatus
    attempts: list[AttemptRecord] = field(default_factory=list)
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    #: the message's mailing (``Claimed.mailing_id``): its attempts are stored with it
    mailing_id: int = field(kw_only=True)


def existing_messages(*, session: Session, ids: list[int]) -> set[int]:
    """Which of these message ids still exist (a mailing or client may have been deleted)."""
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(
            session.execute(sa.select(MESSAGE.c.id).where(MESSAGE.c.id.in_(chunk))).scalars()
        )
    return found


#: The statements ``record`` runs with many rows at once, written out: the daemon records
#: thousands of outcomes a second, and a compiled SQLAlchemy statement would bind every
#: row's parameters through Python objects first (a sixth of the daemon's CPU for this).
#: A ``sent`` outcome is stored even if our lease was taken over meanwhile, or the message
#: expired meanwhile: the API did accept it (a request is cut at the end, so an accepted
#: one was accepted in time, even when a database outage let the expiry pass get there
#: before its outcome).
RECORD_SENT = (
    "UPDATE message SET status = 'sent', sent_at = ?, attempts = attempts + ?, "
    "last_error = NULL, next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL "
    "WHERE id = ? AND status IN ('sending', 'pending', 'expired')"
)
#: Any other outcome is stored only while we still hold the message.
RECORD_OTHER = (
    "UPDATE message SET status = ?, attempts = attempts + ?, "
    "last_error = COALESCE(?, last_error), next_attempt_at = ?, lease_owner = NULL, "
    "lease_until = NULL WHERE id = ? AND status = 'sending' AND lease_owner = ?"
)
RECORD_ATTEMPT = (
    "INSERT INTO attempt (message_id, mailing_id, started_at, duration_ms, http_status, "
    "response_excerpt, error) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
#: PostgreSQL takes each statement's rows as one array per column: one statement for a
#: whole batch rather than one per row (the server's CPU is the second core's, shared
#: with the daemon and the API). Same conditions and values as above; each message is
#: found by its whole key (id, mailing_id), so in its own partition only.
RECORD_SENT_ARRAYS = (
    "UPDATE message AS m SET status = 'sent', sent_at = v.sent_at, "
    "attempts = m.attempts + v.n, last_error = NULL, next_attempt_at = NULL, "
    "lease_owner = NULL, lease_until = NULL "
    "FROM unnest(%s::timestamptz[], %s::int[], %s::int[], %s::int[]) "
    "AS v(sent_at, n, id, mailing_id) "
    "WHERE m.id = v.id AND m.mailing_id = v.mailing_id "
    "AND m.status IN ('sending', 'pending', 'expired')"
)
RECORD_OTHER_ARRAYS = (
    "UPDATE message AS m SET status = v.status, attempts = m.attempts + v.n, "
    "last_error = COALESCE(v.error, m.last_error), next_attempt_at = v.next, "
    "lease_owner = NULL, lease_until = NULL "
    "FROM unnest(%s::varchar[], %s::int[], %s::varchar[], %s::timestamptz[], %s::int[], "
    "%s::int[]) AS v(status, n, error, next, id, mailing_id) "
    "WHERE m.id = v.id AND m.mailing_id = v.mailing_id "
    "AND m.status = 'sending' AND m.lease_owner = %s"
)
RECORD_ATTEMPT_ARRAYS = (
    "INSERT INTO attempt (message_id, mailing_id, started_at, duration_ms, http_status, "
    "response_excerpt, error) SELECT * FROM unnest(%s::int[], %s::int[], %s::timestamptz[], "
    "%s::float8[], %s::int[], %s::varchar[], %s::varchar[])"
)


def record(*, session: Session, owner: str, outcomes: list[Outcome]) -> None:
    """Store outcomes and their attempts: one executemany of plain tuples per statement.

    An outcome of a deleted message fails the attempts' foreign key: the caller drops
    those (``existing_messages``) and records the rest.
    """
    connection = session.connection()
    run, when = _driver(connection)
    postgres = connection.dialect.name == "postgresql"
    # (a row's last value: its mailing on PostgreSQL, its lease owner on SQLite - the
    # arrays take the owner once, after the columns)
    sent = [
        (when(o.sent_at), len(o.attempts), o.message_id, *((o.mailing_id,) if postgres else ()))
        for o in outcomes
        if o.status is MessageStatus.sent
    ]
    other = [
        (
            o.status.value,
            len(o.attempts),
            storable(o.last_error),
            when(o.next_attempt_at),
            o.message_id,
            o.mailing_id if postgres else owner,
        )
        for o in outcomes
        if o.status is not MessageStatus.sent
    ]
    attempts = [
        (
            o.message_id,
            o.mailing_id,
            when(a.started_at),
            round(a.duration_ms, 3),
            a.http_status,
            storable(a.response_excerpt),
            storable(a.error),
        )
        for o in outcomes
        for a in o.attempts
    ]
    if postgres:
        if sent:
            connection.exec_driver_sql(RECORD_SENT_ARRAYS, _columns(sent))
        if other:  # (the owner is the same in every row: one parameter)
            connection.exec_driver_sql(RECORD_OTHER_ARRAYS, (*_columns(other), owner))
        if attempts:
            connection.exec_driver_sql(RECORD_ATTEMPT_ARRAYS, _columns(attempts))
        return
    for statement, rows in ((RECORD_SENT, sent), (RECORD_OTHER, other), (RECORD_ATTEMPT, attempts)):
        if rows:
            run(statement, rows)


def _columns(rows: list[tuple]) -> tuple[list, ...]:
    """Rows as one list per column: PostgreSQL's arrays for ``unnest``."""
    return tuple(list(column) for column in zip(*rows, strict=True))


def _driver(connection: sa.Connection):
    """How to run a written-out statement on this connection's driver, and how a time
    goes to it (exactly as the models' ``UTCDateTime`` would send it)."""
    dialect = connection.dialect
    # The type as this dialect runs it: the bare TypeDecorator's processor would hand a
    # naive datetime to sqlite3, whose adapter writes "… 12:00:00" on a whole second where
    # SQLAlchemy writes "… 12:00:00.000000" (and text comparisons then differ).
    time_type = MESSAGE.c.sent_at.type.dialect_impl(dialect)
    convert = time_type.bind_processor(dialect) or (lambda value: value)
    qmark = dialect.paramstyle == "qmark"

    def run(statement: str, rows: list[tuple]) -> None:
        connection.exec_driver_sql(statement if qmark else statement.replace("?", "%s"), rows)

    def when(value: datetime | None):
        return None if value is None else convert(value)

    return run, when


def release_all(*, session: Session, owner: str) -> int:
    """Give back every message this daemon still holds (on shutdown or when sending pauses)."""
    return session.execute(
        sa.update(MESSAGE)
        .where(status_is(MessageStatus.sending), MESSAGE.c.lease_owner == owner)
        .values(status=MessageStatus.pending, lease_owner=None, lease_until=None)
    ).rowcount


# --- housekeeping ------------------------------------------------------------------------


def reap_leases(*, session: Session, now: datetime | None) -> int:
    """Take back messages whose lease ran out (their daemon died); returns how many.

    They keep their due time, which had come when they were claimed. ``now=None`` takes
    back every lease: only for a daemon that knows it is the only one (SQLite's lock).
    """
    conditions = [status_is(MessageStatus.sending)]
    if now is not None:
        conditions.append(MESSAGE.c.lease_until < now)
    return session.execute(
        sa.update(MESSAGE)
        .where(*conditions)
        .values(status=MessageStatus.pending, lease_owner=None, lease_until=None)
    ).rowcount


def expire_ended(*, session: Session, now: datetime) -> dict[int, int]:
    """At ``end_at``: unsent messages become ``expired`` and the mailing completes.

    Returns {mailing id: messages expired} for the mailings completed now. A message
    still in flight (``sending`` with a live lease) is left to its sender, whose
    request cannot outlive ``end_at``; the next pass completes the mailing.
    """
    ended = session.execute(
        sa.select(Mailing).where(
            Mailing.end_at <= now, Mailing.completed_at.is_(None), Mailing.cancelled_at.is_(None)
        )
    ).scalars()
    expired: dict[int, int] = {}
    for mailing in list(ended):
        if mailing.activated_at is None:
            activate(session=session, mailing=mailing, now=now)
        count = session.execute(
            sa.update(MESSAGE)
            .where(
                MESSAGE.c.mailing_id == mailing.id,
                sa.or_(
                    status_is(MessageStatus.pending),
                    sa.and_(status_is(MessageStatus.sending), MESSAGE.c.lease_until < now),
                ),
            )
            .values(
                status=MessageStatus.expired,
                next_attempt_at=None,
                lease_owner=None,
                lease_until=None,
            )
        ).rowcount
        in_flight = session.execute(
            sa.select(sa.func.count())
            .select_from(MESSAGE)
            .where(MESSAGE.c.mailing_id == mailing.id, status_is(MessageStatus.sending))
        ).scalar_one()
        if not in_flight:
            # (only if no other daemon completed it meanwhile: one entry in the audit log)
            completed = session.execute(
                sa.update(MAILING)
                .where(MAILING.c.id == mailing.id, MAILING.c.completed_at.is_(None))
                .values(completed_at=now)
            ).rowcount
            expired[mailing.id] = count
            if completed:
                changes = {
                    "completed_at": [None, now],
                    "messages_expired": [None, _count(session, mailing.id, MessageStatus.expired)],
                }
                _record(session, "expired", mailing.id, changes, now=now)
    return expired


def _count(session: Session, mailing_id: int, status: MessageStatus) -> int:
    return session.execute(
        sa.select(sa.func.count())
        .select_from(MESSAGE)
        .where(MESSAGE.c.mailing_id == mailing_id, MESSAGE.c.status == status)
    ).scalar_one()


def cancel_leftovers(*, session: Session) -> int:
    """Pending messages of cancelled mailings become ``cancelled``.

    Cancelling cancels the pending messages at once; a message whose request was in
    flight then comes back pending when that request failed: this pass finishes it.
    """
    cancelled = sa.select(MAILING.c.id).where(MAILING.c.cancelled_at.is_not(None))
    return session.execute(
        sa.update(MESSAGE)
        .where(status_is(MessageStatus.pending), MESSAGE.c.mailing_id.in_(cancelled))
        .values(status=MessageStatus.cancelled, next_attempt_at=None)
    ).rowcount


def complete_done(*, session: Session, now: datetime) -> list[int]:
    """Mark activated mailings whose every message is final as completed; returns their ids."""
    unfinished = (
        sa.select(MESSAGE.c.id).where(MESSAGE.c.mailing_id == MAILING.c.id, unsent()).exists()
    )
    candidates = sa.select(MAILING.c.id).where(
        MAILING.c.activated_at.is_not(None), MAILING.c.completed_at.is_(None), ~unfinished
    )
    ids = list(session.execute(candidates).scalars())
    if ids:
        # (those another daemon completed meanwhile are not returned: one audit entry each)
        ids = list(
            session.execute(
                sa.update(MAILING)
                .where(MAILING.c.id.in_(ids), MAILING.c.completed_at.is_(None))
                .values(completed_at=now)
                .returning(MAILING.c.id)
            ).scalars()
        )
        for mailing_id in ids:
            _record(session, "completed", mailing_id, {"completed_at": [None, now]}, now=now)
    return ids


def take_permits(*, session: Session, want: int, rate: float, now: datetime) -> int:
    """Take up to ``want`` sends from the global token bucket (``rate`` per second).

    The bucket holds at most a fifth of a second's worth, so that all daemons together
    stay at the rate in any one-second window, give or take that burst.
    """
    capacity = _bucket_capacity(rate)
    query = locked(sa.select(Throttle).where(Throttle.id == 1), session, skip_locked=False)
    bucket = session.execute(query).scalar_one_or_none()
    if bucket is None:  # first use: several daemons may get here at once
        session.execute(
            upsert_insert(session, Throttle.__table__)
            .values(id=1, tokens=capacity, updated_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        bucket = session.execute(query).scalar_one()
    elapsed = max(0.0, (now - bucket.updated_at).total_seconds())
    tokens = min(capacity, bucket.tokens + elapsed * rate)
    granted = min(want, int(tokens))
    bucket.tokens = tokens - granted
    # A daemon that read the clock before waiting for the row lock must not move the
    # bucket's time back: the interval since would be paid out twice.
    bucket.updated_at = max(bucket.updated_at, now)
    session.add(bucket)
    return granted


def _bucket_capacity(rate: float) -> float:
    return max(1.0, rate * 0.2)


def return_permits(*, session: Session, unused: int, rate: float) -> None:
    """Put back permits a claim took and did not use (fewer messages due, or held back by
    the frequency cap, or withdrawn): they sent nothing. In the transaction that took
    them, which still holds the bucket's row."""
    if unused <= 0:
        return
    bucket = session.execute(sa.select(Throttle).where(Throttle.id == 1)).scalar_one()
    bucket.tokens = min(_bucket_capacity(rate), bucket.tokens + unused)
    session.add(bucket)


def any_due(*, session: Session, mailing_ids: list[int], now: datetime) -> bool:
    """Whether any message of these mailings is pending and due, or in flight."""
    if not mailing_ids:
        return False
    query = sa.select(MESSAGE.c.id).where(
        MESSAGE.c.mailing_id.in_(mailing_ids),
        sa.or_(
            sa.and_(status_is(MessageStatus.pending), MESSAGE.c.next_attempt_at <= now),
            status_is(MessageStatus.sending),
        ),
    )
    return session.execute(query.limit(1)).first() is not None


def due_now(*, session: Session, now: datetime) -> int:
    """Messages of running mailings (started, not ended, paused or cancelled) that wait for
    a daemon: pending and due, or claimed (``sending``) and not yet recorded."""
    running = sa.select(MAILING.c.id).where(
        MAILING.c.start_at <= now,
        MAILING.c.end_at > now,
        MAILING.c.paused_at.is_(None),
        MAILING.c.cancelled_at.is_(None),
        MAILING.c.completed_at.is_(None),
    )
    return session.execute(
        sa.select(sa.func.count())
        .select_from(MESSAGE)
        .where(
            MESSAGE.c.mailing_id.in_(running),
            sa.or_(
                sa.and_(status_is(MessageStatus.pending), MESSAGE.c.next_attempt_at <= now),
                status_is(MessageStatus.sending),
            ),
        )
    ).scalar_one()
