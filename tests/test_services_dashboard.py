"""The dashboard's totals (issue 17): what each figure counts, at an injected moment, and
that each query reads an index rather than every message."""

import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from notifyctl.models import Attempt, Client, Mailing, Message, MessageStatus
from notifyctl.services.dashboard import dashboard_totals
from tests.plans import explain, indexes_read

#: The moment the tests look from (injected: the figures do not depend on the clock).
NOW = datetime(2030, 6, 1, 12, 0, 0, 500_000, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def mailing(session, **times) -> Mailing:
    fields = {"start_at": NOW - HOUR, "end_at": NOW + HOUR} | times
    row = Mailing(text="x", created_at=NOW - 2 * HOUR, updated_at=NOW, **fields)
    session.add(row)
    session.flush()
    return row


def message(session, mailing_id, client_id, status, *, sent_at=None, attempts=()) -> Message:
    row = Message(mailing_id=mailing_id, client_id=client_id, status=status, sent_at=sent_at)
    session.add(row)
    session.flush()
    session.add_all(
        Attempt(message_id=row.id, mailing_id=mailing_id, started_at=at) for at in attempts
    )
    return row


def test_clients_and_opted_out_clients_are_counted(session):
    session.add_all(
        Client(phone=f"791600000{n:02d}", operator_code="916", timezone="UTC") for n in range(3)
    )
    session.add(Client(phone="79160000099", operator_code="916", timezone="UTC", opted_out_at=NOW))
    session.commit()
    totals = dashboard_totals(session=session, now=NOW)
    assert (totals.clients, totals.opted_out) == (4, 1)


def test_only_running_mailings_count_as_running_now(session):
    mailing(session)  # running
    mailing(session, paused_at=NOW - HOUR / 2)
    mailing(session, start_at=NOW + HOUR, end_at=NOW + 2 * HOUR)  # scheduled
    mailing(session, start_at=NOW - 2 * HOUR, end_at=NOW)  # its end is now: finished
    mailing(session, cancelled_at=NOW - HOUR / 2)
    mailing(session, completed_at=NOW - HOUR / 2)  # every message final
    mailing(session, end_at=NOW + timedelta(microseconds=1))  # running, a moment left
    session.commit()
    assert dashboard_totals(session=session, now=NOW).running == 2


def test_messages_sent_in_the_last_24_hours_are_counted_per_hour(session):
    m = mailing(session, start_at=NOW - 48 * HOUR).id
    for client, at in enumerate(
        (
            NOW - 25 * HOUR,  # before the day: not counted
            NOW - 23.5 * HOUR,  # first hour
            NOW - HOUR,  # since + 23 h: last hour
            NOW - timedelta(minutes=59),  # last hour too
            NOW,  # (now itself: the last hour)
        )
    ):
        message(session, m, client, MessageStatus.sent, sent_at=at)
    message(session, m, 99, MessageStatus.pending)
    session.commit()
    totals = dashboard_totals(session=session, now=NOW)
    assert totals.since == datetime(2030, 5, 31, 12, 0, tzinfo=UTC)
    assert (len(totals.sent), totals.sent_total) == (24, 4)
    assert (totals.sent[0], totals.sent[23]) == (1, 3)
    assert (totals.failed_total, totals.peak) == (0, 3)


def test_a_message_failed_at_its_last_attempt_and_counts_once(session):
    m = mailing(session, start_at=NOW - 48 * HOUR).id
    # Tried 30 h and 2 h ago: failed 2 h ago (since + 22 h).
    message(session, m, 1, MessageStatus.failed, attempts=(NOW - 30 * HOUR, NOW - 2 * HOUR))
    # Failed for good 26 h ago: not in the day.
    message(session, m, 2, MessageStatus.failed, attempts=(NOW - 26 * HOUR,))
    # Tried in the day but not failed (waiting for a retry, or sent).
    message(session, m, 3, MessageStatus.pending, attempts=(NOW - HOUR,))
    message(session, m, 4, MessageStatus.sent, sent_at=NOW - HOUR, attempts=(NOW - HOUR,))
    session.commit()
    totals = dashboard_totals(session=session, now=NOW)
    assert totals.failed_total == 1
    assert totals.failed[22] == 1
    assert (totals.sent_total, totals.sent[23]) == (1, 1)


def test_nothing_at_all_is_all_zeros(session):
    totals = dashboard_totals(session=session, now=NOW)
    assert (totals.clients, totals.opted_out, totals.running) == (0, 0, 0)
    assert totals.sent == totals.failed == [0] * 24
    assert totals.peak == 1  # (the chart's scale never divides by zero)


# --- query plans ---------------------------------------------------------------------


def explained(session, engine) -> list[str]:
    """The plan of every statement ``dashboard_totals`` runs, as the database tells it.

    On PostgreSQL with sequential scans priced out: the question is whether the planner
    *can* answer from the indexes (on a few test rows it would rightly scan the table).
    """
    statements: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", keep)
    try:
        dashboard_totals(session=session, now=NOW)
    finally:
        sa.event.remove(engine, "before_cursor_execute", keep)
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    return [explain(connection, statement, parameters) for statement, parameters in statements]


def test_the_figures_of_messages_read_indexes_not_every_message(session, engine):
    m = mailing(session).id
    message(session, m, 1, MessageStatus.sent, sent_at=NOW - HOUR)
    message(session, m, 2, MessageStatus.failed, attempts=(NOW - HOUR,))
    # A history of sends before the last day, with the statistics of a real table: on a
    # few rows every index costs the same, and the planner may pick any (a client's
    # sends for the frequency cap, say) where the day's range is the point.
    old = mailing(session, start_at=NOW - 100 * DAY, end_at=NOW - 99 * DAY).id
    session.execute(
        sa.insert(Message),
        [
            {
                "mailing_id": old,
                "client_id": 10 + n,
                "created_at": NOW - 100 * DAY,
                "status": MessageStatus.sent,
                "sent_at": NOW - 99 * DAY + n * timedelta(seconds=1),
            }
            for n in range(2000)
        ],
    )
    session.commit()
    if engine.dialect.name == "postgresql":  # (SQLite plans without statistics here)
        session.connection().exec_driver_sql("ANALYZE")
    plans = explained(session, engine)
    about_messages = [plan for plan in plans if "message" in plan]
    assert len(about_messages) == 2, plans
    sent, failed = about_messages
    connection = session.connection()
    assert "ix_message_sent_at" in indexes_read(connection, sent), sent
    assert {"ix_message_failed", "ix_attempt_message_id"} <= indexes_read(connection, failed), (
        failed
    )
    for plan in about_messages:
        # PostgreSQL: "Seq Scan on message"; SQLite: "SCAN message" (a whole table or
        # index), unless the index is a partial one of only the failed messages.
        whole = (
            r"Seq Scan on (message|attempt)"
            r"|\bSCAN (message|attempt)\b(?! USING INDEX ix_message_failed)"
        )
        assert not re.search(whole, plan), plan
