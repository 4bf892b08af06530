"""The frequency cap: no client gets more than ``count`` messages (accepted by the API)
across all mailings within any rolling ``period`` (``NOTIFY_FREQUENCY_CAP``).

Decided in the claim's transaction, after the claim's own update: a message whose client
is at the cap goes back to ``pending``, due when the oldest message counted leaves the
period, or soon (``RECHECK``) while any counted is in flight and may yet fail (it expires
at its mailing's end like any other). Counted: messages sent within
the period and messages in flight (``sending``, by any daemon: the API may be accepting
them right now). Transactional mailings are neither capped nor counted.

Several daemons on PostgreSQL: each claim takes a transaction-scoped advisory lock per
client, in client-id order (no deadlock between claims), before counting; a second claim
for the same client waits for the first to commit, then counts what the first claimed as
in flight. SQLite has one writer: the claim's update already holds it.
"""

from collections import defaultdict
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from notifyctl.caps import FrequencyCap
from notifyctl.models import Mailing, Message, MessageStatus, status_is

MESSAGE = Message.__table__
MAILING = Mailing.__table__
#: the advisory locks' first key: ours, among whatever else shares the database ("ntfy")
LOCK_SPACE = 0x6E746679
#: how soon a message held back by messages in flight (which may yet fail) is looked at again
RECHECK = timedelta(seconds=5)
CHUNK = 500  # client ids per statement


def reason(cap: FrequencyCap) -> str:
    """The ``last_error`` of a message held back (until it is sent or expires)."""
    return f"frequency cap {cap}"


def hold_back(
    *, session: Session, cap: FrequencyCap, claimed: list[tuple[int, int]], now: datetime
) -> dict[int, datetime]:
    """Which of the just-claimed ``(message id, client id)`` pairs, in claim order, must
    wait, and until when. The caller gives those back (``delivery.claim``)."""
    if not claimed:
        return {}
    clients = sorted({client_id for _, client_id in claimed})
    _lock(session, clients)
    own = {message_id for message_id, _ in claimed}
    sent: dict[int, list[datetime]] = defaultdict(list)
    in_flight: dict[int, int] = defaultdict(int)
    for start in range(0, len(clients), CHUNK):
        chunk = clients[start : start + CHUNK]
        rows = session.execute(_counted(chunk, since=now - cap.period))
        for message_id, client_id, status, sent_at in rows:
            if message_id in own:  # (ours are decided below, one by one)
                continue
            if status == MessageStatus.sending:
                in_flight[client_id] += 1
            else:
                sent[client_id].append(sent_at)
    held: dict[int, datetime] = {}
    for message_id, client_id in claimed:
        times = sorted(sent[client_id])
        if len(times) + in_flight[client_id] < cap.count:
            in_flight[client_id] += 1  # (let through: in flight from now on)
            continue
        # Room comes when enough sent ones have left the period...
        room = len(times) + in_flight[client_id] - cap.count
        due = times[room] + cap.period if room < len(times) else None
        # ... or at once should one in flight fail: it is looked at again soon.
        if in_flight[client_id]:
            soon = now + min(RECHECK, cap.period)
            due = soon if due is None else min(due, soon)
        held[message_id] = due  # (never None: with no room from sent ones, some are in flight)
    return held


def _counted(client_ids: list[int], *, since: datetime) -> sa.CompoundSelect:
    """The messages of ordinary mailings that ``client_ids`` were sent since ``since``, and
    those in flight: two arms, each read through a partial index by client
    (``ix_message_client_sent``, ``ix_message_client_sending``), never a client's history."""
    columns = (MESSAGE.c.id, MESSAGE.c.client_id, MESSAGE.c.status, MESSAGE.c.sent_at)
    ordinary = (MESSAGE.c.client_id.in_(client_ids), MAILING.c.transactional.is_(False))
    joined = sa.select(*columns).join(MAILING, MAILING.c.id == MESSAGE.c.mailing_id)
    sent = joined.where(*ordinary, status_is(MessageStatus.sent), MESSAGE.c.sent_at > since)
    return sa.union_all(sent, joined.where(*ordinary, status_is(MessageStatus.sending)))


def release_held(*, session: Session, cap: FrequencyCap | None, now: datetime) -> int:
    """Make due now the messages held back under another cap (or under one since removed):
    their next claim decides again under ``cap``. Returns how many."""
    held = sa.and_(
        MESSAGE.c.status == MessageStatus.pending,
        MESSAGE.c.last_error.like("frequency cap %"),
        MESSAGE.c.next_attempt_at > now,
    )
    if cap is not None:
        held = sa.and_(held, MESSAGE.c.last_error != reason(cap))
    return session.execute(sa.update(MESSAGE).where(held).values(next_attempt_at=now)).rowcount


def _lock(session: Session, client_ids: list[int]) -> None:
    """One advisory lock per client until the transaction ends (PostgreSQL), in id order."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        sa.text(
            "SELECT count(pg_advisory_xact_lock(:space, c)) "
            "FROM (SELECT c FROM unnest(CAST(:ids AS integer[])) AS c ORDER BY c) AS ordered"
        ),
        {"space": LOCK_SPACE, "ids": client_ids},
    )
