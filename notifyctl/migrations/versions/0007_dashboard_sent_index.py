"""dashboard: an index of sent messages by their time

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 21:00:00

The admin UI's dashboard counts the messages sent in the last 24 hours, per hour
(``services.dashboard``). Without an index that reads every sent message ever kept. The
index is partial (``status = 'sent'``): a message enters it once, when it is sent, not at
each claim and release, so the daemon's writes barely grow. Built in the migration's
transaction: on PostgreSQL it holds writes to ``message`` back while it builds (about a
second per million sent messages).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SENT = sa.text("status = 'sent'")


def upgrade() -> None:
    op.create_index(
        "ix_message_sent_at",
        "message",
        ["sent_at"],
        postgresql_where=SENT,
        sqlite_where=SENT,
    )


def downgrade() -> None:
    op.drop_index("ix_message_sent_at", table_name="message")
