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


# Plain ALTER TABLE, not batch mode: on SQLite a batch with a column whose default is an
# expression (``false``) or a dropped column rebuilds the table, and the rebuild loses
# AUTOINCREMENT and the table's ``sqlite_sequence`` row, so deleted ids would come again
# (see 0004). SQLite adds such a column in place, and drops one in place since 3.35.


def upgrade() -> None:
    op.add_column("mailing", sa.Column("name", sa.String(length=200), nullable=True))
    op.add_column(
        "mailing",
        sa.Column("transactional", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("client", sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("client", "opted_out_at")
    op.drop_column("mailing", "transactional")
    op.drop_column("mailing", "name")
