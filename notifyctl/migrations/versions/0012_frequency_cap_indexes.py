"""frequency cap: what a client was sent lately, and has in flight, by client

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 12:00:00

The frequency cap looks, at each claim, at what the claimed clients were sent within its
period and have in flight (``services.frequency``). Through ``ix_message_client`` that
read every message each client was ever sent - a year of daily mailings is 365 rows a
client, and a claim of a hundred clients read 36,500 - so claims slowed down with the
history. Two partial indexes answer it from what counts only:
``ix_message_client_sent (client_id, sent_at) WHERE status = 'sent'`` (a client's sends
from the period's start) and ``ix_message_client_sending (client_id) WHERE status =
'sending'`` (few rows at any time). Built in the migration's transaction: on PostgreSQL
writes to ``message`` wait meanwhile (about a second per million sent messages).
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_message_client_sent", ["client_id", "sent_at"], "sent"),
    ("ix_message_client_sending", ["client_id"], "sending"),
)


def upgrade() -> None:
    for name, columns, status in INDEXES:
        where = sa.text(f"status = '{status}'")
        op.create_index(name, "message", columns, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for name, _, _ in INDEXES:
        op.drop_index(name, table_name="message")
