"""Claims read only what is still to send; PostgreSQL's partitions are made ahead of the
rows and dropped whole (``services.partitions``)."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from notifyctl.caps import parse_frequency_cap
from notifyctl.db import is_sqlite
from notifyctl.models import Mailing
from notifyctl.services import delivery, partitions
from notifyctl.services.partitions import PARTITION_MAILINGS, Partition
from notifyctl.timeutil import utcnow
from tests.factories import add_clients, add_mailing
from tests.plans import explain, indexes_read


def claim_statement(session, engine, mailing_ids: list[int]) -> tuple[str, object]:
    """The UPDATE that ``delivery.claim`` runs, as the driver got it."""
    seen: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE"):
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", keep)
    try:
        now = utcnow()
        delivery.claim(
            session=session,
            owner="me",
            mailing_ids=mailing_ids,
            now=now,
            lease_until=now + timedelta(seconds=30),
            limit=10,
        )
    finally:
        sa.event.remove(engine, "before_cursor_execute", keep)
    return seen[0]


def test_the_claim_finds_due_messages_through_the_index_of_pending_ones(session, engine):
    add_clients(session, 5)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.commit()
    statement, parameters = claim_statement(session, engine, [mailing.id])
    connection = session.connection()
    if not is_sqlite(engine):
        # (on five rows a sequential scan is cheaper: the question is whether it *can*)
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    plan = explain(connection, statement, parameters)
    assert "ix_message_pending_due" in indexes_read(connection, plan), plan


def test_a_new_mailing_has_its_partition_and_the_next_one_made_ahead(session, engine):
    if is_sqlite(engine):
        add_mailing(session)
        assert partitions.list_partitions(session=session) == []
        assert partitions.ensure_for(session=session, mailing_id=1) == []
        return
    # The next mailing is the first of a range no partition holds yet.
    start = 5 * PARTITION_MAILINGS
    session.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('mailing', 'id'), {start - 1})"))
    session.commit()
    add_clients(session, 2)
    mailing = add_mailing(session)
    assert mailing.id == start
    firsts = {p.first for p in partitions.list_partitions(session=session)}
    assert {start, start + PARTITION_MAILINGS} <= firsts
    assert partitions.ensure_for(session=session, mailing_id=mailing.id) == []  # made once
    assert delivery.activate(session=session, mailing=mailing, now=utcnow()) == 2
    session.commit()


def test_a_partition_is_dropped_only_when_every_mailing_in_it_is_pruned(session, engine):
    if is_sqlite(engine):
        assert not partitions.drop_if_all_pruned(
            session=session, partition=Partition(0, 0, PARTITION_MAILINGS), pruned={1}
        )
        return
    start = 7 * PARTITION_MAILINGS
    session.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('mailing', 'id'), {start})"))
    session.commit()
    add_clients(session, 3)
    first, second = add_mailing(session), add_mailing(session)  # start + 1, start + 2
    for mailing in (first, second):
        delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.commit()
    partition = partitions.partition_of(first.id)

    def drop(pruned: set[int]) -> bool:
        return partitions.drop_if_all_pruned(session=session, partition=partition, pruned=pruned)

    # Later mailings would get ids in it: kept whatever was pruned.
    assert not drop({first.id, second.id})
    session.execute(
        sa.text(
            "SELECT setval(pg_get_serial_sequence('mailing', 'id'), "
            f"{start + 2 * PARTITION_MAILINGS})"
        )
    )
    assert not drop({first.id})  # the second is not pruned
    assert drop({first.id, second.id})
    session.commit()
    assert partition.first not in {p.first for p in partitions.list_partitions(session=session)}
    assert session.execute(sa.text("SELECT count(*) FROM message")).scalar() == 0
    # Its mailings' rows are gone with it; the mailings themselves are pruning's business.
    assert session.get(Mailing, first.id) is not None


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_message_with_no_partition_for_it_is_refused(session):
    session.execute(
        sa.text(
            "INSERT INTO mailing (id, text, start_at, end_at, operator_codes, tags, created_at, "
            "updated_at, transactional) VALUES (987654, 'x', now(), now(), '[]', '[]', now(), "
            "now(), false)"
        )
    )
    with pytest.raises(sa.exc.IntegrityError, match="no partition"):
        session.execute(
            sa.text(
                "INSERT INTO message (mailing_id, client_id, created_at, status, attempts) "
                "VALUES (987654, 1, now(), 'pending', 0)"
            )
        )


def test_pruning_drops_a_range_whose_mailings_are_all_pruned_and_deletes_the_rest(session, engine):
    """PostgreSQL: the range of two old mailings goes whole; an old mailing sharing its
    range with a recent one goes in batches. SQLite: all in batches. Same counts."""
    from notifyctl.services import retention, stats
    from tests.factories import add_history

    now = utcnow()
    ended = now - timedelta(days=400)
    cutoffs = retention.cutoffs(now=now, attempts=None, messages=timedelta(days=365))

    def at(mailing_id: int) -> None:  # the next mailing's id
        if not is_sqlite(engine):
            session.execute(
                sa.text(f"SELECT setval(pg_get_serial_sequence('mailing', 'id'), {mailing_id - 1})")
            )
            session.commit()

    at(9 * PARTITION_MAILINGS)
    whole = [add_history(session, ended=ended, clients=5) for _ in range(2)]
    at(10 * PARTITION_MAILINGS)
    shared = add_history(session, ended=ended, clients=5)
    recent = add_mailing(session)
    delivery.activate(session=session, mailing=recent, now=utcnow())
    session.commit()
    old = [*whole, shared]
    before = {m.id: stats.mailing_stats(session=session, mailing_id=m.id) for m in old}
    rows, attempts = (
        session.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
        for table in ("message", "attempt")
    )
    session.commit()  # (an open transaction that read message would hold off the drop)

    removed = retention.prune(engine=engine, cutoffs=cutoffs, actor="cli:ops")

    assert sorted(removed.mailings) == sorted(m.id for m in old)
    assert removed.message == rows - 5  # all but the recent mailing's
    assert removed.attempt == attempts  # (the recent mailing has made none yet)
    session.expire_all()
    for mailing in old:
        after = stats.mailing_stats(session=session, mailing_id=mailing.id)
        assert (after.total, after.by_status) == (
            before[mailing.id].total,
            before[mailing.id].by_status,
        )
    left = session.execute(sa.text("SELECT DISTINCT mailing_id FROM message")).scalars().all()
    assert left == [recent.id]
    if not is_sqlite(engine):
        firsts = {p.first for p in partitions.list_partitions(session=session)}
        assert 9 * PARTITION_MAILINGS not in firsts  # dropped whole
        assert 10 * PARTITION_MAILINGS in firsts  # kept: the recent mailing is in it


def old_range(postgres_url: str, index: int):
    """An emptied database whose range ``index`` holds one mailing ended 400 days ago (4
    messages) and which no later mailing can land in: (engine, that mailing)."""
    from sqlmodel import Session

    from notifyctl.db import make_engine
    from tests.conftest import TABLES
    from tests.factories import add_history

    def next_mailing_id(first: int) -> str:
        return f"SELECT setval(pg_get_serial_sequence('mailing', 'id'), {first - 1})"

    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        connection.exec_driver_sql(next_mailing_id(index * PARTITION_MAILINGS))
    with Session(engine, expire_on_commit=False) as session:
        old = add_history(session, ended=utcnow() - timedelta(days=400), clients=4)
        session.execute(sa.text(next_mailing_id((index + 1) * PARTITION_MAILINGS + 1)))
        session.commit()
    return engine, old


def test_a_reader_holding_the_table_leaves_the_range_to_the_batches(postgres_url, monkeypatch):
    """A long transaction that read ``message`` would hold the drop's lock (and every
    claim queued behind it): each try gives up after 2 s, and after the last one the rows
    go in batches."""
    monkeypatch.setattr(partitions, "DROP_TRIES", 2)
    monkeypatch.setattr(partitions, "DROP_RETRY_PAUSE", 0.1)
    from sqlmodel import Session

    from notifyctl.services import retention

    engine, old = old_range(postgres_url, 12)
    now = utcnow()
    reader = engine.connect()
    reader.begin()
    reader.exec_driver_sql("SELECT count(*) FROM message").scalar_one()
    try:
        removed = retention.prune(
            engine=engine,
            cutoffs=retention.cutoffs(now=now, attempts=None, messages=timedelta(days=365)),
            actor="cli:ops",
        )
    finally:
        reader.rollback()
        reader.close()
    assert (removed.message, removed.mailings) == (4, [old.id])
    with Session(engine) as session:
        firsts = {p.first for p in partitions.list_partitions(session=session)}
        left = session.execute(sa.text("SELECT count(*) FROM message_p12")).scalar_one()
    assert 12 * PARTITION_MAILINGS in firsts
    assert left == 0
    engine.dispose()


def test_the_frequency_cap_counts_a_clients_recent_sends_not_its_history(session, engine):
    """The cap's look at what the claimed clients were sent within its period, or have in
    flight, reads partial indexes of sent (by client and time) and in-flight messages: not
    every message each client was ever sent (``ix_message_client``)."""
    from tests.factories import add_history

    # (a history, and a mailing that sent today: the period's sends of every client)
    for ago in (timedelta(days=40), timedelta(days=30), timedelta(days=20), timedelta(hours=1)):
        add_history(session, ended=utcnow() - ago, clients=300)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.commit()
    seen: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if "sent_at >" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", keep)
    try:
        now = utcnow()
        claimed = delivery.claim(
            session=session,
            owner="me",
            mailing_ids=[mailing.id],
            now=now,
            lease_until=now + timedelta(seconds=30),
            limit=10,
            cap=parse_frequency_cap("3/24h"),
        )
    finally:
        sa.event.remove(engine, "before_cursor_execute", keep)
    assert claimed
    assert len(seen) == 1
    connection = session.connection()
    if not is_sqlite(engine):
        connection.exec_driver_sql("ANALYZE")
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    plan = explain(connection, *seen[0])
    read = indexes_read(connection, plan)
    assert "ix_message_client" not in read, plan
    assert "ix_message_client_sending" in read, plan
    if is_sqlite(engine):
        assert "ix_message_client_sent" in read, plan
    # (PostgreSQL, on these few rows, may as well take the period's sends of everyone
    # through ix_message_sent_at: also bounded by the period, never the history)


def test_a_reader_holding_the_table_never_queues_claims_behind_a_new_partition(postgres_url):
    """Making a range locks message and attempt: behind a long reader it waits 2 s at
    most. The range ahead is then left for later; the mailing's own range fails the
    creation (the database is busy), and nothing is stored."""
    from sqlmodel import Session

    from notifyctl.db import make_engine, session_scope
    from notifyctl.errors import StorageError
    from notifyctl.models import MailingCreate
    from notifyctl.services import mailings
    from tests.conftest import TABLES

    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    with Session(engine) as session:
        partitions.ensure_for(session=session, mailing_id=19 * PARTITION_MAILINGS)
        session.commit()

    def create(next_id: int):
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('mailing', 'id'), {next_id - 1})"
            )
        now = utcnow()
        with session_scope(engine) as session:
            return mailings.create_mailing(
                session=session,
                mailing_in=MailingCreate(text="x", start_at=now, end_at=now + timedelta(hours=1)),
            ).id

    def ranges() -> set[int]:
        with Session(engine) as session:
            return {p.index for p in partitions.list_partitions(session=session)}

    reader = engine.connect()
    reader.begin()
    reader.exec_driver_sql("SELECT count(*) FROM message").scalar_one()
    try:
        assert create(20 * PARTITION_MAILINGS + 50) == 2050  # its range exists; 21 waits
        assert 21 not in ranges()
        with pytest.raises(StorageError):
            create(30 * PARTITION_MAILINGS)  # its own range cannot be made now
        assert 30 not in ranges()
    finally:
        reader.rollback()
        reader.close()
    with Session(engine) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Mailing)).scalar() == 1
    assert create(20 * PARTITION_MAILINGS + 60) == 2060  # the reader gone: 21 is made
    assert 21 in ranges()
    engine.dispose()


def test_a_reader_that_lets_go_soon_only_delays_the_drop(postgres_url, monkeypatch):
    """A mailing's activation writing ``message`` for a few seconds: the next try drops."""
    import threading

    from sqlmodel import Session

    from notifyctl.services import retention

    monkeypatch.setattr(partitions, "DROP_TRIES", 3)
    monkeypatch.setattr(partitions, "DROP_RETRY_PAUSE", 0.1)
    engine, _ = old_range(postgres_url, 14)
    now = utcnow()
    reader = engine.connect()
    reader.begin()
    reader.exec_driver_sql("SELECT count(*) FROM message").scalar_one()
    letting_go = threading.Timer(2.5, reader.rollback)  # during the second try
    letting_go.start()
    try:
        removed = retention.prune(
            engine=engine,
            cutoffs=retention.cutoffs(now=now, attempts=None, messages=timedelta(days=365)),
            actor="cli:ops",
        )
    finally:
        letting_go.join()
        reader.close()
    assert removed.message == 4
    with Session(engine) as session:
        firsts = {p.first for p in partitions.list_partitions(session=session)}
    assert 14 * PARTITION_MAILINGS not in firsts  # dropped whole, on the second try
    engine.dispose()


def test_dropping_a_range_while_a_daemon_records_deadlocks_neither(postgres_url, monkeypatch):
    """A recording holds message (its outcome) and then writes attempt: a drop that took
    attempt first and then waited for message would deadlock with it. Both go through."""
    import threading

    from sqlmodel import Session

    from notifyctl.services import retention

    monkeypatch.setattr(partitions, "DROP_TRIES", 1)  # (a deadlock would leave it undropped)
    engine, _ = old_range(postgres_url, 16)
    now = utcnow()
    with Session(engine, expire_on_commit=False) as session:
        live = add_mailing(session)
        delivery.activate(session=session, mailing=live, now=now)
        session.commit()
        message_id = session.execute(
            sa.select(sa.func.min(sa.text("id")))
            .select_from(sa.text("message"))
            .where(sa.text(f"mailing_id = {live.id}"))
        ).scalar_one()
    recorder = engine.connect()
    recorder.begin()
    recorder.exec_driver_sql(
        f"UPDATE message SET status = 'sent', sent_at = now() WHERE id = {message_id}"
    )
    errors: list[Exception] = []

    def finish_recording() -> None:
        try:
            recorder.exec_driver_sql(
                "INSERT INTO attempt (message_id, mailing_id, started_at, duration_ms) "
                f"VALUES ({message_id}, {live.id}, now(), 1)"
            )
            recorder.commit()
        except Exception as exc:  # (the deadlock's victim)
            errors.append(exc)

    later = threading.Timer(1.0, finish_recording)  # while the drop waits for its lock
    later.start()
    try:
        removed = retention.prune(
            engine=engine,
            cutoffs=retention.cutoffs(now=now, attempts=None, messages=timedelta(days=365)),
            actor="cli:ops",
        )
    finally:
        later.join()
        recorder.close()
    assert errors == []
    assert removed.message == 4
    with Session(engine) as session:
        firsts = {p.first for p in partitions.list_partitions(session=session)}
        sent = session.execute(
            sa.text(f"SELECT status FROM message WHERE id = {message_id}")
        ).scalar_one()
    assert 16 * PARTITION_MAILINGS not in firsts
    assert sent == "sent"
    engine.dispose()
