"""Claim time with an empty history and with millions of final messages, on PostgreSQL.

Three processes drive the daemon's store as three daemons would: claim a batch (timed:
the claim's transaction, ``delivery.claim`` in ``session_scope``), record it sent with
one attempt each, again, until the 100,000-message mailing is sent. No HTTP: what is
measured is the database's side of a claim. The history (sent, failed and expired
messages of 99 earlier mailings, all in the first partition) is loaded with COPY, not
sent.

One database, three runs, so that the machine's drift shows: empty history, then the
history loaded, then the history's partition emptied again (``TRUNCATE``); the ratio is
the big history's p99 against the worse of the two empty ones'. Each run sends
``RUN_MAILINGS`` mailings one after the other, for enough claims that a p99 is more
than the slowest few.

python -m bench --only claims                      # empty, then 10,000,000 final messages
python -m bench --only claims --history 1000000    # a quicker pass
"""

import multiprocessing
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench import data
from bench.common import POSTGRES, SIZES, Row

HISTORY = 10_000_000  # final messages already stored, for the second run
HISTORY_MAILINGS = 99  # earlier mailings they belong to (ids 1 to 99: partition 0)
RUN_MAILINGS = 3  # mailings sent one after the other in each run
CLAIMERS = 3  # processes claiming at once, as three daemons
BATCH = 200  # messages per claim (a daemon's claim at NOTIFY_CONCURRENCY=200)
COPY_CHUNK = 200_000  # rows per block written to COPY
PLAN = Path(__file__).resolve().parent / "claim-plan.txt"  # shown in RESULTS.md
FINAL = ("sent", "sent", "sent", "sent", "sent", "sent", "sent", "failed", "expired", "sent")


def load_history(url: str, rows: int) -> float:
    """COPY ``rows`` final messages of ``HISTORY_MAILINGS`` ended mailings; seconds taken."""
    import psycopg

    from notifyctl.db import make_engine
    from notifyctl.services import partitions

    started = time.perf_counter()
    engine = make_engine(url)
    ended = datetime.now(UTC) - timedelta(days=30)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO mailing (id, text, start_at, end_at, operator_codes, tags, "
                "created_at, updated_at, activated_at, completed_at, transactional) "
                "SELECT i, 'history', :at, :at, '[]', '[]', :at, :at, :at, :at, false "
                "FROM generate_series(1, :n) AS i"
            ),
            {"at": ended, "n": HISTORY_MAILINGS},
        )
    from sqlmodel import Session

    with Session(engine) as session:
        partitions.ensure_for(session=session, mailing_id=1)
        session.commit()
    engine.dispose()
    per_mailing = rows // HISTORY_MAILINGS
    total = per_mailing * HISTORY_MAILINGS  # (whole mailings: none spills into the next range)
    at = ended.isoformat()
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as connection, connection.cursor() as cursor:
        copy = (
            "COPY message (mailing_id, client_id, created_at, status, sent_at, attempts) FROM STDIN"
        )
        with cursor.copy(copy) as stream:
            for start in range(0, total, COPY_CHUNK):
                stream.write(_block(start, min(COPY_CHUNK, total - start), per_mailing, at))
    with psycopg.connect(libpq, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE message")
        # Stored, not being written out: a history is settled, and the checkpoint that
        # writes a fresh 1 GB load would otherwise stall the first run's commits.
        connection.execute("CHECKPOINT")
    return time.perf_counter() - started


def _block(start: int, count: int, per_mailing: int, at: str) -> bytes:
    """COPY text for messages ``start`` to ``start + count``: mailing, client, status."""
    lines = []
    for i in range(start, start + count):
        status = FINAL[i % len(FINAL)]
        sent = at if status == "sent" else "\\N"
        lines.append(f"{1 + i // per_mailing}\t{i % per_mailing}\t{at}\t{status}\t{sent}\t1\n")
    return "".join(lines).encode()


def _claimer(url: str, mailing_id: int, owner: str, queue) -> None:
    """Claim and record until nothing is left; put the claims' durations (seconds)."""
    from notifyctl.db import make_engine, session_scope
    from notifyctl.models import MessageStatus
    from notifyctl.services import delivery
    from notifyctl.timeutil import utcnow

    engine = make_engine(url)
    durations = []
    while True:
        now = utcnow()
        started = time.perf_counter()
        with session_scope(engine) as session:
            claimed = delivery.claim(
                session=session,
                owner=owner,
                mailing_ids=[mailing_id],
                now=now,
                lease_until=now + timedelta(minutes=5),
                limit=BATCH,
            )
        durations.append(time.perf_counter() - started)
        if not claimed:
            break
        attempt = delivery.AttemptRecord(started_at=now, duration_ms=1.0, http_status=200)
        outcomes = [
            delivery.Outcome(
                c.id, MessageStatus.sent, [attempt], sent_at=now, mailing_id=c.mailing_id
            )
            for c in claimed
        ]
        with session_scope(engine) as session:
            delivery.record(session=session, owner=owner, outcomes=outcomes)
    engine.dispose()
    queue.put(durations[:-1])  # (the last, empty claim is no claim of a message)


def claim_times(url: str) -> tuple[list[float], str]:
    """A mailing to every client sent by ``CLAIMERS`` processes: every claim's time, and
    the claim's plan before the first."""
    from sqlmodel import Session

    from notifyctl.db import make_engine
    from notifyctl.models import MailingCreate
    from notifyctl.services import delivery, mailings
    from notifyctl.timeutil import utcnow

    engine = make_engine(url)
    with Session(engine) as session:
        now = utcnow()
        mailing = mailings.create_mailing(
            session=session,
            mailing_in=MailingCreate(text="bench", start_at=now, end_at=now + timedelta(hours=2)),
        )
        delivery.activate(session=session, mailing=mailing, now=now)
        session.commit()
        mailing_id = mailing.id
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE message")
    engine.dispose()
    plan = explain_claim(url, mailing_id)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(target=_claimer, args=(url, mailing_id, f"bench-{n}", queue))
        for n in range(CLAIMERS)
    ]
    for worker in workers:
        worker.start()
    durations = [d for _ in workers for d in queue.get()]
    for worker in workers:
        worker.join()
    return durations, plan


def explain_claim(url: str, mailing_id: int) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the claim's statement, in a transaction rolled back."""
    from sqlmodel import Session

    from notifyctl.db import make_engine
    from notifyctl.services import delivery
    from notifyctl.timeutil import utcnow

    engine = make_engine(url)
    seen: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE") and not seen:
            seen.append((statement, parameters))

    with Session(engine) as session:
        sa.event.listen(engine, "before_cursor_execute", keep)
        now = utcnow()
        delivery.claim(
            session=session,
            owner="explain",
            mailing_ids=[mailing_id],
            now=now,
            lease_until=now + timedelta(minutes=1),
            limit=BATCH,
        )
        sa.event.remove(engine, "before_cursor_execute", keep)
        session.rollback()
        statement, parameters = seen[0]
        plan = session.connection().exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
        )
        text = "\n".join(row[0] for row in plan)
        session.rollback()
    engine.dispose()
    return text


def _percentiles(durations: list[float]) -> tuple[float, float]:
    ordered = sorted(durations)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def bench_claims(size, work: Path, *, history: int = HISTORY) -> list[Row]:
    messages = SIZES[size]["throughput"]
    command = f"python -m bench --only claims --size {size} --history {history}"
    data.fresh_database(POSTGRES)
    data.add_clients(POSTGRES, messages)
    with psycopg_connection(POSTGRES) as connection:  # the runs' mailings: 100 on
        connection.execute(
            f"SELECT setval(pg_get_serial_sequence('mailing', 'id'), {HISTORY_MAILINGS})"
        )
    _settle(POSTGRES)

    def run() -> tuple[float, float]:
        durations: list[float] = []
        for _ in range(RUN_MAILINGS):
            taken, plan = claim_times(POSTGRES)
            durations += taken
            _settle(POSTGRES)
        run.plan = plan
        return _percentiles(durations)

    empty = run()
    loaded = load_history(POSTGRES, history)
    full = run()
    PLAN.write_text(
        f"EXPLAIN (ANALYZE, BUFFERS) of the claim with {history:,} final messages stored, "
        f"before the first claim of a {messages:,}-message mailing (`{command}`):\n\n"
        + run.plan
        + "\n"
    )
    _forget_history(POSTGRES)
    again = run()
    baseline = max(empty[1], again[1])
    each = f"{RUN_MAILINGS} mailings of {messages:,} messages, {CLAIMERS} claimers, PostgreSQL"
    return [
        (
            f"claim, {each}: empty history (before the load / after emptying it)",
            "(the baseline)",
            f"p50 {empty[0]:.1f} / {again[0]:.1f} ms, p99 {empty[1]:.1f} / {again[1]:.1f} ms",
            command,
        ),
        (
            f"claim, same, with {history:,} final messages stored (COPY-loaded in {loaded:.0f} s)",
            "p99 within 1.2 x the empty history's",
            f"p50 {full[0]:.1f} ms, p99 {full[1]:.1f} ms = {full[1] / baseline:.2f} x "
            f"the worse empty p99 ({full[1] / min(empty[1], again[1]):.2f} x the better; "
            f"the two empty runs differ by {baseline / min(empty[1], again[1]):.2f} x)",
            command,
        ),
    ]


def psycopg_connection(url: str):
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def _settle(url: str) -> None:
    """Statistics fresh and dirty pages written: each run starts from the same footing."""
    with psycopg_connection(url) as connection:
        connection.execute("VACUUM ANALYZE message")
        connection.execute("CHECKPOINT")


def _forget_history(url: str) -> None:
    """Empty the history's partition (mailings 1 to 99): the third run's empty history."""
    with psycopg_connection(url) as connection:
        connection.execute("TRUNCATE message_p0 CASCADE")
    _settle(url)
