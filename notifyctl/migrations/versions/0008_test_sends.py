"""test sends: one row per text an operator sent to one phone (``mailing test``)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 21:00:00

A test send is no message of its mailing (it is not in its statistics), but its id is
given to the sending API as a message id, its idempotency key: so the id comes from the
message table's own sequence (``notifyctl.services.test_sends``), and this table has
none. Its request's answer is kept in the row, as a message's attempt is. Deleting the
mailing deletes its test sends.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "test_send",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("mailing_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=11), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("response_excerpt", sa.String(length=500), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["mailing_id"], ["mailing.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_test_send_mailing_id", "test_send", ["mailing_id"])


def downgrade() -> None:
    op.drop_index("ix_test_send_mailing_id", table_name="test_send")
    op.drop_table("test_send")
