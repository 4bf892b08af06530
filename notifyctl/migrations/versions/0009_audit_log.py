"""audit log: who changed what, one row per change

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 21:00:00

Every change made through the CLI, the REST API or the admin UI, and every state change
the daemon makes by itself (activation, completion, expiry), is written in the
transaction of the change (``notifyctl.services.audit``). Ids are never reused, as in
the other tables (AUTOINCREMENT on SQLite). ``object_id`` has no foreign key: the
history of a deleted client or mailing stays.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=400), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_object", "audit", ["object_type", "object_id", "at"])
    op.create_index("ix_audit_at", "audit", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_at", table_name="audit")
    op.drop_index("ix_audit_object", table_name="audit")
    op.drop_table("audit")
