"""The stored datetime type, and Core views of the tables read without the ORM.

``notifyctl stats`` reads three tables and nothing else: through these ``sa.table`` views
(no MetaData, no mapper) it never loads SQLAlchemy's ORM or the SQLModel classes, a
third of a start-up. They name only the columns such reads use; ``models`` defines the
tables, and ``tests/test_services_stats.py`` keeps the two in step.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend.

    PostgreSQL keeps them in ``timestamptz``. SQLite has no zone support, so they are
    stored as naive UTC text (which sorts chronologically) and made aware on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: A mailing's id and name, and the times its state is derived from (``services.state``).
mailing = sa.table(
    "mailing",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("start_at", UTCDateTime()),
    sa.column("end_at", UTCDateTime()),
    sa.column("paused_at", UTCDateTime()),
    sa.column("cancelled_at", UTCDateTime()),
    sa.column("completed_at", UTCDateTime()),
)
#: The counts of a mailing whose message rows were pruned (``models.MailingSummary``).
mailing_summary = sa.table(
    "mailing_summary",
    sa.column("mailing_id", sa.Integer),
    *(
        sa.column(name, sa.Integer)
        for name in ("pending", "sending", "sent", "failed", "expired", "cancelled", "total")
    ),
    sa.column("pruned_at", UTCDateTime()),
)
#: What the counts by status group on.
message = sa.table(
    "message",
    sa.column("mailing_id", sa.Integer),
    sa.column("status", sa.String),
)
