"""Claims read only what is still to send; PostgreSQL's partitions are made ahead of the
rows and dropped whole (``services.partitions``)."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

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
