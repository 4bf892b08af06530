"""PostgreSQL partitions of ``message`` and ``attempt``: made ahead, listed, dropped.

Both tables are partitioned by RANGE of ``mailing_id``, ``PARTITION_MAILINGS`` ids a
partition (``message_p3`` and ``attempt_p3`` hold mailings 300 to 399; migration 0011).
A row whose range has no partition is refused, and there is no DEFAULT partition (rows
in one would stop its range being created later), so partitions are made ahead: when a
mailing is created or activated, its range's and the next one (``ensure_for``).

Pruning drops a whole range once every mailing in it is pruned (``drop_if_all_pruned``).
On SQLite the tables are plain: every function here does nothing there.
"""

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from notifyctl.db import session_scope
from notifyctl.errors import StorageError
from notifyctl.models import MailingSummary

#: Mailing ids a partition holds (migration 0011 made the first ones with the same size).
#: A team sending a mailing a day fills one in about three months: a few partitions a
#: year, each dropped whole once its mailings are pruned. Smaller ranges would multiply
#: partitions for teams that send hundreds of small mailings a day (every query that is
#: not given a mailing, such as a message by its id, visits every partition).
PARTITION_MAILINGS = 100
TABLES = ("message", "attempt")  # (attempt's rows refer to message's: dropped first)
#: how long making or dropping a partition waits for its tables' lock (then: made later, or
#: the rows left to the batches)
DROP_LOCK_TIMEOUT = "2s"
DROP_TRIES = 5  # tries at dropping one partition before its rows are left to the batches
DROP_RETRY_PAUSE = 1.0  # seconds between two tries
#: a lock key held while partitions are made, so that two processes never make one twice
PARTITION_LOCK = 7_245_310_912
_BOUNDS = re.compile(r"FOR VALUES FROM \((\d+)\) TO \((\d+)\)")


@dataclass(frozen=True, slots=True)
class Partition:
    """One range of mailing ids, stored in ``message_pN`` and ``attempt_pN``."""

    index: int
    #: the first mailing id it holds
    first: int
    #: the first mailing id it no longer holds
    end: int

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(f"{table}_p{self.index}" for table in TABLES)


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def partition_of(mailing_id: int) -> Partition:
    """The range that holds ``mailing_id``."""
    index = mailing_id // PARTITION_MAILINGS
    return Partition(index, index * PARTITION_MAILINGS, (index + 1) * PARTITION_MAILINGS)


def list_partitions(*, session: Session) -> list[Partition]:
    """The ranges that have partitions (of ``message``), by first mailing id; [] on SQLite."""
    if not _postgres(session):
        return []
    rows = session.execute(
        sa.text(
            "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i "
            "JOIN pg_class AS c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'message'::regclass"
        )
    ).scalars()
    found = []
    for bound in rows:
        match = _BOUNDS.fullmatch(bound)
        if match:  # (a partition made by hand some other way is no range of ours)
            first, end = int(match[1]), int(match[2])
            found.append(Partition(first // PARTITION_MAILINGS, first, end))
    return sorted(found, key=lambda p: p.first)


def ensure_for(*, session: Session, mailing_id: int) -> list[Partition]:
    """Make the partitions of ``mailing_id``'s range and of the next one, where missing;
    returns those made. Cheap when they exist (one catalog query, no lock)."""
    if not _postgres(session):
        return []
    wanted = [partition_of(mailing_id), partition_of(mailing_id + PARTITION_MAILINGS)]
    if _missing(session, wanted):
        # Creating a partition locks its parent table: only when one is missing, and
        # one process at a time (whoever waited finds it made).
        session.execute(sa.text(f"SELECT pg_advisory_xact_lock({PARTITION_LOCK})"))
    made = []
    for partition in _missing(session, wanted):
        # Making one takes an exclusive lock on message and attempt, which a long reader
        # (a report, a backup) may hold: waiting behind it would queue every claim behind
        # us. So wait DROP_LOCK_TIMEOUT at most; the range ahead is then left for later
        # (the next mailing or activation makes it), the mailing's own range fails the
        # change (StorageError: the database is busy; try again).
        try:
            with session.begin_nested():
                session.execute(sa.text(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
                for table, name in zip(TABLES, partition.tables, strict=True):
                    session.execute(
                        sa.text(
                            f"CREATE TABLE {name} PARTITION OF {table} "
                            f"FOR VALUES FROM ({partition.first}) TO ({partition.end})"
                        )
                    )
        except sa.exc.OperationalError as exc:
            if partition is wanted[0] or not _lock_timeout(exc):
                raise
            continue
        finally:
            session.execute(sa.text("SET LOCAL lock_timeout = DEFAULT"))
        made.append(partition)
    return made


def _lock_timeout(exc: sa.exc.OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "55P03"  # lock_not_available


def _missing(session: Session, wanted: list[Partition]) -> list[Partition]:
    names = [p.tables[0] for p in wanted]
    present = set(
        session.execute(
            sa.text("SELECT relname FROM pg_class WHERE relname = ANY(:names) AND relispartition"),
            {"names": names},
        ).scalars()
    )
    return [p for p in wanted if p.tables[0] not in present]


def drop_if_all_pruned(*, session: Session, partition: Partition, pruned: set[int]) -> bool:
    """Drop ``partition`` (its messages and attempts) if every mailing it may hold is
    in ``pruned`` (or deleted) and no mailing will ever get an id in its range; returns
    whether it was dropped. False on SQLite, where pruning deletes rows instead.
    """
    if not _postgres(session):
        return False
    sequence = session.execute(sa.text("SELECT pg_get_serial_sequence('mailing', 'id')")).scalar()
    next_id = session.execute(
        sa.text(
            f"SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM {sequence}"
        )
    ).scalar_one()
    if partition.end > next_id:  # a mailing made later could land in it
        return False
    stored = session.execute(
        sa.text("SELECT id FROM mailing WHERE id >= :first AND id < :end"),
        {"first": partition.first, "end": partition.end},
    ).scalars()
    if not set(stored) <= pruned:
        return False
    # Both tables locked up front, message first, as a daemon's recording takes them
    # (message's rows, then attempt's): detaching attempt's partition first and then
    # waiting for message would deadlock with a recording that holds message and waits
    # for attempt, and a busy daemon is always recording.
    session.execute(sa.text("LOCK TABLE message, attempt IN ACCESS EXCLUSIVE MODE"))
    # Detached first: a message partition still referred to by the attempts' foreign
    # key cannot be dropped; detaching checks that no attempt refers to it any more.
    for table, name in zip(TABLES[::-1], partition.tables[::-1], strict=True):
        session.execute(sa.text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
        session.execute(sa.text(f"DROP TABLE {name}"))
    return True


def drop_whole_ranges(*, engine: Engine, mailing_ids: list[int]) -> Iterator[tuple[int, int]]:
    """PostgreSQL: drop each partition holding some of ``mailing_ids`` whose every mailing
    is summarised (``drop_if_all_pruned``); yields (attempts, messages) dropped per
    partition. Each try waits ``DROP_LOCK_TIMEOUT`` at most for the tables' lock (a
    transaction writing or reading ``message`` holds it off: a mailing's activation, a
    long report); after ``DROP_TRIES`` tries the partition is left to the batches.
    Nothing on SQLite."""
    if engine.dialect.name != "postgresql" or not mailing_ids:
        return
    with session_scope(engine) as session:
        existing = {p.index: p for p in list_partitions(session=session)}
    for index in sorted({partition_of(m).index for m in mailing_ids}):
        partition = existing.get(index)
        if partition is None:
            continue
        with session_scope(engine) as session:
            in_range = MailingSummary.mailing_id.between(partition.first, partition.end - 1)
            pruned = set(
                session.execute(sa.select(MailingSummary.mailing_id).where(in_range)).scalars()
            )
            # (counted before: the rows of pruned mailings stay put)
            messages, attempts = (
                session.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in partition.tables
            )
        if _drop(engine, partition, pruned):
            yield attempts, messages


def _drop(engine: Engine, partition: Partition, pruned: set[int]) -> bool:
    for attempt in range(DROP_TRIES):
        if attempt:
            time.sleep(DROP_RETRY_PAUSE)
        try:
            with session_scope(engine) as session:
                session.execute(sa.text(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
                return drop_if_all_pruned(session=session, partition=partition, pruned=pruned)
        except StorageError:
            continue  # (the lock did not come in time)
    return False
