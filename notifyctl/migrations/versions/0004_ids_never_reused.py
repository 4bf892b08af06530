"""ids never reused on SQLite: rebuild the tables with AUTOINCREMENT

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 15:00:00

Without AUTOINCREMENT SQLite gives a new row max(id) + 1, so deleting the newest mailing
hands its id, and its messages' ids, to the next one; a message id is the sending API's
idempotency key (DESIGN 3.9). SQLite cannot add AUTOINCREMENT to a table, so each table is
copied into a new one (batch mode, ``recreate="always"``). ``notifyctl.db.upgrade`` turns
foreign keys off for this: with them on, dropping the old ``mailing`` would cascade to
every message. PostgreSQL sequences already never go back: nothing to do there.

The next id is made larger than every id still stored, and than every client id its
messages still name. Ids deleted from the top of a table before this migration left no
other trace, so they can come once more; from here on nothing is reused.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("client", "mailing", "message", "attempt", "api_token")

# Ids once used that a table's own ids no longer show: a deleted client's messages keep
# its id (``message.client_id`` has no foreign key). The rest cascade away with their row.
USED_ELSEWHERE = {"client": ("message", "client_id")}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _refuse_with_foreign_keys_on()
    for table in TABLES:
        _rebuild(table, autoincrement=True)
    for table in TABLES:
        _seed_sequence(table)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _refuse_with_foreign_keys_on()
    for table in TABLES:
        _rebuild(table, autoincrement=False)
    op.execute(sa.text("DELETE FROM sqlite_sequence"))


def _refuse_with_foreign_keys_on() -> None:
    # The pragma is ignored inside a transaction, so check it rather than set it here.
    if op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "migration 0004 rebuilds tables and needs SQLite foreign keys off "
            "(run it through `notifyctl db upgrade`)"
        )


def _rebuild(table: str, *, autoincrement: bool) -> None:
    # Batch mode reflects the table, creates it anew with these options, copies the rows
    # (ids included), drops the old one and renames the new one; indexes are recreated.
    with op.batch_alter_table(
        table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def _seed_sequence(table: str) -> None:
    """Make the next id of ``table`` larger than every id it is known to have used."""
    bind = op.get_bind()
    columns = [(table, "id")]
    if table in USED_ELSEWHERE:
        columns.append(USED_ELSEWHERE[table])
    seq = max(bind.exec_driver_sql(f"SELECT MAX({c}) FROM {t}").scalar() or 0 for t, c in columns)
    op.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :t").bindparams(t=table))
    if seq:
        op.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :seq)").bindparams(
                t=table, seq=seq
            )
        )
