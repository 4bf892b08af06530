"""operator features: mailing names, transactional mailings, client opt-out

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 20:30:00

Columns for what operators of SMS campaigns need beyond the assignment (issue 17): a
mailing's optional ``name``; ``transactional`` mailings (one-time codes, service notices)
that reach opted-out clients and are not capped; a client's ``opted_out_at``. Existing
rows: no name, not transactional, not opted out.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A server default that is an expression (false) makes SQLite's batch mode copy the
    # table; the copy must stay AUTOINCREMENT and keep its sequence (migration 0004), or
    # a deleted mailing's id, and its messages' ids, would be given again.
    used = _sequence("mailing")
    with op.batch_alter_table("mailing", table_kwargs={"sqlite_autoincrement": True}) as table:
        table.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        table.add_column(
            sa.Column("transactional", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    _restore_sequence("mailing", used)
    with op.batch_alter_table("client") as table:
        table.add_column(sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("client") as table:
        table.drop_column("opted_out_at")
    with op.batch_alter_table("mailing") as table:
        table.drop_column("transactional")
        table.drop_column("name")


def _sequence(table: str) -> int | None:
    """The last id SQLite's AUTOINCREMENT gave in ``table`` (None elsewhere)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return None
    query = sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t").bindparams(t=table)
    return bind.execute(query).scalar() or 0


def _restore_sequence(table: str, used: int | None) -> None:
    """Make the next id of the copied ``table`` larger than any it gave before the copy."""
    if not used:
        return
    bind = op.get_bind()
    seq = max(used, bind.exec_driver_sql(f"SELECT MAX(id) FROM {table}").scalar() or 0)
    op.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :t").bindparams(t=table))
    op.execute(
        sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :seq)").bindparams(
            t=table, seq=seq
        )
    )
