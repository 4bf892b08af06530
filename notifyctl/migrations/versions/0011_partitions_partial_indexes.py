"""claims that stay fast on a big history; message and attempt partitioned on PostgreSQL

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 09:00:00

Both backends:

- the claim's index holds only pending messages (``ix_message_pending_due``, partial),
  in-flight ones have their own (``ix_message_sending_lease``): what the daemon looks
  for costs what is still to send, never what was ever sent. The old full indexes
  ``ix_message_mailing_status_next`` and ``ix_message_status_lease`` go; statistics read
  ``ix_message_mailing_status`` and the dashboard's failed messages ``ix_message_failed``;
- ``attempt`` gets its message's ``mailing_id`` (backfilled), and its foreign key becomes
  (message_id, mailing_id) -> message (id, mailing_id), still ON DELETE CASCADE.

PostgreSQL: ``message`` and ``attempt`` become tables partitioned by RANGE of
``mailing_id`` (``PARTITION_MAILINGS`` ids a partition, as ``services.partitions``
creates them later). New tables are made, the rows copied, the old tables dropped; ids
keep coming from the same sequences (moved to the new tables), so none is ever reused.
The primary keys become (id, mailing_id): a partitioned table's keys must hold its
partition key. Partitions exist for every mailing stored and for the next ids to come.
The whole copy runs in the upgrade's transaction: writers wait for it (about a minute
per ten million messages).

SQLite: plain tables; ``attempt`` is rebuilt (its foreign key changes), and
``uq_message_id_mailing`` is what that key points at.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: mailing ids a partition holds; ``notifyctl.services.partitions`` must agree (a test checks)
PARTITION_MAILINGS = 100

# (name, columns, status of the partial index or None) of message's indexes, new and old
NEW_INDEXES = (
    ("ix_message_pending_due", ["mailing_id", "next_attempt_at"], "pending"),
    ("ix_message_sending_lease", ["mailing_id", "lease_until"], "sending"),
    ("ix_message_mailing_status", ["mailing_id", "status"], None),
    ("ix_message_failed", ["id"], "failed"),
)
OLD_INDEXES = (
    ("ix_message_mailing_status_next", ["mailing_id", "status", "next_attempt_at"], None),
    ("ix_message_status_lease", ["status", "lease_until"], None),
)
# indexes that are alike before and after (rebuilt with the table on PostgreSQL)
KEPT_INDEXES = (
    ("ix_message_client", ["client_id"], None),
    ("ix_message_sent_at", ["sent_at"], "sent"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name, _, _ in OLD_INDEXES:
            op.drop_index(name, table_name="message")
        _create_indexes(NEW_INDEXES)
        op.create_index("uq_message_id_mailing", "message", ["id", "mailing_id"], unique=True)
        _rebuild_sqlite_attempt(with_mailing=True)
        return
    _swap_postgres_tables(partitioned=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_attempt(with_mailing=False)
        op.drop_index("uq_message_id_mailing", table_name="message")
        for name, _, _ in NEW_INDEXES:
            op.drop_index(name, table_name="message")
        _create_indexes(OLD_INDEXES)
        return
    _swap_postgres_tables(partitioned=False)


def _create_indexes(indexes) -> None:
    for name, columns, status in indexes:
        where = sa.text(f"status = '{status}'") if status else None
        op.create_index(name, "message", columns, postgresql_where=where, sqlite_where=where)


# --- SQLite --------------------------------------------------------------------------


def _attempt_columns(*, with_mailing: bool) -> list[sa.Column]:
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        *([sa.Column("mailing_id", sa.Integer(), nullable=False)] if with_mailing else []),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("response_excerpt", sa.String(length=500), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
    ]


def _rebuild_sqlite_attempt(*, with_mailing: bool) -> None:
    """Copy ``attempt`` into a table with (or without) ``mailing_id`` and its new foreign
    key; its AUTOINCREMENT counter is carried over (ids never reused, migration 0004).
    ``notifyctl.db.upgrade`` runs this with foreign keys off."""
    bind = op.get_bind()
    seq = bind.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'attempt'").scalar()
    key = (
        sa.ForeignKeyConstraint(
            ["message_id", "mailing_id"],
            ["message.id", "message.mailing_id"],
            name="fk_attempt_message",
            ondelete="CASCADE",
        )
        if with_mailing
        else sa.ForeignKeyConstraint(["message_id"], ["message.id"], ondelete="CASCADE")
    )
    op.create_table(
        "attempt_new",
        *_attempt_columns(with_mailing=with_mailing),
        key,
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    kept = "id, message_id, started_at, duration_ms, http_status, response_excerpt, error"
    if with_mailing:
        # (an attempt of no message - written with foreign keys off - is kept, with no
        # mailing, for the upgrade's last check to refuse: nothing is lost unnoticed)
        op.execute(
            f"INSERT INTO attempt_new ({kept}, mailing_id) "
            f"SELECT {', '.join('a.' + c for c in kept.split(', '))}, "
            "COALESCE(m.mailing_id, 0) "
            "FROM attempt AS a LEFT JOIN message AS m ON m.id = a.message_id"
        )
    else:
        op.execute(f"INSERT INTO attempt_new ({kept}) SELECT {kept} FROM attempt")
    op.drop_index("ix_attempt_message_id", table_name="attempt")
    op.drop_table("attempt")
    op.rename_table("attempt_new", "attempt")
    op.create_index("ix_attempt_message_id", "attempt", ["message_id"])
    top = max(seq or 0, bind.exec_driver_sql("SELECT MAX(id) FROM attempt").scalar() or 0)
    op.execute("DELETE FROM sqlite_sequence WHERE name IN ('attempt', 'attempt_new')")
    if top:
        op.execute(f"INSERT INTO sqlite_sequence (name, seq) VALUES ('attempt', {top})")


# --- PostgreSQL ----------------------------------------------------------------------


def _swap_postgres_tables(*, partitioned: bool) -> None:
    """Make ``message`` and ``attempt`` anew (partitioned or plain), copy every row, drop
    the old tables and give the new ones the old sequences, keys and indexes."""
    bind = op.get_bind()
    run = bind.exec_driver_sql
    run("ALTER TABLE attempt RENAME TO attempt_old")
    run("ALTER TABLE message RENAME TO message_old")
    by = " PARTITION BY RANGE (mailing_id)" if partitioned else ""
    # LIKE … INCLUDING DEFAULTS: the same columns, types and NOT NULLs, and the ids'
    # defaults still draw from the old tables' sequences.
    run(f"CREATE TABLE message (LIKE message_old INCLUDING DEFAULTS){by}")
    if partitioned:
        run(
            "CREATE TABLE attempt (LIKE attempt_old INCLUDING DEFAULTS, "
            f"mailing_id integer NOT NULL){by}"
        )
        for first in _ranges(bind):
            for table in ("message", "attempt"):
                run(
                    f"CREATE TABLE {table}_p{first // PARTITION_MAILINGS} PARTITION OF "
                    f"{table} FOR VALUES FROM ({first}) TO ({first + PARTITION_MAILINGS})"
                )
    else:
        run("CREATE TABLE attempt (LIKE attempt_old INCLUDING DEFAULTS)")
        run("ALTER TABLE attempt DROP COLUMN mailing_id")
    run("INSERT INTO message SELECT * FROM message_old")
    kept = "id, message_id, started_at, duration_ms, http_status, response_excerpt, error"
    if partitioned:
        run(
            f"INSERT INTO attempt ({kept}, mailing_id) "
            f"SELECT {', '.join('a.' + c for c in kept.split(', '))}, m.mailing_id "
            "FROM attempt_old AS a JOIN message_old AS m ON m.id = a.message_id"
        )
    else:
        run(f"INSERT INTO attempt ({kept}) SELECT {kept} FROM attempt_old")
    for table in ("message", "attempt"):
        # The sequence goes with the new table (dropping the old one would drop it).
        sequence = run(f"SELECT pg_get_serial_sequence('{table}_old', 'id')").scalar()
        run(f"ALTER SEQUENCE {sequence} OWNED BY {table}.id")
    run("DROP TABLE attempt_old")
    run("DROP TABLE message_old")
    key = "id, mailing_id" if partitioned else "id"
    run(f"ALTER TABLE message ADD CONSTRAINT message_pkey PRIMARY KEY ({key})")
    run(
        "ALTER TABLE message ADD CONSTRAINT uq_message_mailing_client "
        "UNIQUE (mailing_id, client_id)"
    )
    run(
        "ALTER TABLE message ADD CONSTRAINT message_mailing_id_fkey FOREIGN KEY (mailing_id) "
        "REFERENCES mailing (id) ON DELETE CASCADE"
    )
    _create_indexes(KEPT_INDEXES + (NEW_INDEXES if partitioned else OLD_INDEXES))
    run(f"ALTER TABLE attempt ADD CONSTRAINT attempt_pkey PRIMARY KEY ({key})")
    if partitioned:
        run(
            "ALTER TABLE attempt ADD CONSTRAINT fk_attempt_message FOREIGN KEY "
            "(message_id, mailing_id) REFERENCES message (id, mailing_id) ON DELETE CASCADE"
        )
    else:
        run(
            "ALTER TABLE attempt ADD CONSTRAINT attempt_message_id_fkey FOREIGN KEY "
            "(message_id) REFERENCES message (id) ON DELETE CASCADE"
        )
    op.create_index("ix_attempt_message_id", "attempt", ["message_id"])
    run("ANALYZE message")
    run("ANALYZE attempt")


def _ranges(bind: sa.Connection) -> list[int]:
    """First mailing id of every range a partition is needed for: each stored mailing's,
    and those of the next ids the mailing sequence will hand out."""
    size = PARTITION_MAILINGS
    sequence = bind.exec_driver_sql("SELECT pg_get_serial_sequence('mailing', 'id')").scalar()
    next_id = bind.exec_driver_sql(
        f"SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM {sequence}"
    ).scalar()
    firsts = {next_id // size * size, (next_id // size + 1) * size}
    firsts |= {
        first
        for (first,) in bind.exec_driver_sql(f"SELECT DISTINCT id / {size} * {size} FROM mailing")
    }
    return sorted(firsts)
