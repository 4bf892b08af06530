"""retention: summaries of pruned mailings, and the claims of each day's pruning

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 10:00:00

``mailing_summary`` keeps the counts of a mailing whose message rows were pruned
(``notifyctl.services.retention``); ``prune_run`` lets one daemon a day prune, as
``report_run`` lets one send the daily report. Nothing existing changes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailing_summary",
        sa.Column("mailing_id", sa.Integer(), autoincrement=False, nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("pending", "sending", "sent", "failed", "expired", "cancelled", "total")
        ),
        sa.Column("first_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("timeline", sa.JSON(), nullable=True),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["mailing_id"], ["mailing.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("mailing_id"),
    )
    op.create_table(
        "prune_run",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("day"),
    )


def downgrade() -> None:
    op.drop_table("prune_run")
    op.drop_table("mailing_summary")
