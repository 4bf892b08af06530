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
    with op.batch_alter_table("mailing") as table:
        table.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        table.add_column(
            sa.Column("transactional", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("client") as table:
        table.add_column(sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("client") as table:
        table.drop_column("opted_out_at")
    with op.batch_alter_table("mailing") as table:
        table.drop_column("transactional")
        table.drop_column("name")
