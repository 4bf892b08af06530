"""operator features: mailing names, transactional mailings, client opt-out

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 20:30:00

Columns for what operators of SMS campaigns need beyond the assignment (issue 17): a
mailing's optional ``name``; ``transactional`` mailings (one-time codes, service notices)
that reach opted-out clients and are not capped; a client's ``opted_out_at``. Existing
rows: no name, not transactional, not opted out.

Plain ``ADD COLUMN`` on both databases. Not batch mode: on SQLite, batch mode rebuilds a
table to add a column whose default is an expression (``false()``), and the rebuilt table
lost its ``AUTOINCREMENT`` (migration 0004), so deleted mailings' ids came back. The
downgrade has to rebuild (older SQLite cannot drop a column): it keeps ``AUTOINCREMENT``
and the table's place in ``sqlite_sequence``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mailing", sa.Column("name", sa.String(length=200), nullable=True))
    op.add_column(
        "mailing",
        sa.Column("transactional", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("client", sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table, columns in (("client", ["opted_out_at"]), ("mailing", ["transactional", "name"])):
        seq = _sqlite_sequence(table)
        with op.batch_alter_table(table, table_kwargs={"sqlite_autoincrement": True}) as batch:
            for column in columns:
                batch.drop_column(column)
        if seq is not None:
            op.execute(
                sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = :t").bindparams(
                    seq=seq, t=table
                )
            )


def _sqlite_sequence(table: str) -> int | None:
    """The last id SQLite handed out for ``table`` (None: not SQLite, or none yet)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return None
    return bind.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).scalar()
