"""Message counts by status for every mailing: what ``notifyctl stats`` and ``GET /stats`` show.

Read through SQLAlchemy Core (``notifyctl.tables``), not the ORM, so that the command
that runs it starts without loading SQLAlchemy's ORM and the SQLModel classes; it takes
an ORM session (the REST API) or a plain connection (the CLI) alike.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from notifyctl.services.state import mailing_state
from notifyctl.states import MailingState, MessageStatus
from notifyctl.tables import mailing, mailing_summary, message
from notifyctl.timeutil import utcnow

if TYPE_CHECKING:
    from sqlmodel import Session


@dataclass(frozen=True, slots=True)
class MailingStats:
    mailing_id: int
    state: MailingState
    total: int
    by_status: dict[str, int]
    #: the mailing's name, for tables (not in the JSON: ``GET /stats`` has its own shape)
    name: str | None = None
    #: when its message rows were pruned (its counts come from its summary); None: not
    pruned_at: datetime | None = None


def zero_counts() -> dict[str, int]:
    return {status.value: 0 for status in MessageStatus}


def counts_by_status(
    *, session: "Session | sa.Connection", mailing_ids: list[int] | None = None
) -> tuple[dict[int, dict[str, int]], dict[int, datetime]]:
    """Message counts by status of every mailing (or those of ``mailing_ids``) that has
    any, and when each pruned one was pruned.

    A pruned mailing's counts are its summary's, as soon as the summary exists: while its
    rows are being deleted (``services.retention``) the rows left would count too few.
    One grouped scan of ``ix_message_mailing_status_next`` (an index-only scan) for all.
    """
    counts: dict[int, dict[str, int]] = {}
    grouped = sa.select(message.c.mailing_id, message.c.status, sa.func.count()).group_by(
        message.c.mailing_id, message.c.status
    )
    summaries = sa.select(mailing_summary)
    if mailing_ids is not None:
        grouped = grouped.where(message.c.mailing_id.in_(mailing_ids))
        summaries = summaries.where(mailing_summary.c.mailing_id.in_(mailing_ids))
    # Rows first, summaries after: a mailing pruned in between (its summary committed, its
    # rows deleted) is then found by the second read, whose counts replace the first's.
    for mailing_id, status, n in session.execute(grouped):
        counts.setdefault(mailing_id, zero_counts())[status] = n
    pruned: dict[int, datetime] = {}
    for row in session.execute(summaries):
        counts[row.mailing_id] = {
            status.value: row._mapping[status.value] for status in MessageStatus
        }
        pruned[row.mailing_id] = row.pruned_at
    return counts, pruned


def overall_stats(
    *, session: "Session | sa.Connection", mailing_ids: list[int] | None = None
) -> list[MailingStats]:
    """Every mailing (newest first), or those of ``mailing_ids``, with message counts by status."""
    counts, pruned = counts_by_status(session=session, mailing_ids=mailing_ids)
    mailings = sa.select(mailing).order_by(mailing.c.id.desc())
    if mailing_ids is not None:
        mailings = mailings.where(mailing.c.id.in_(mailing_ids))
    now = utcnow()
    result = []
    for row in session.execute(mailings):
        by_status = counts.get(row.id, zero_counts())
        state, total = mailing_state(row, now=now), sum(by_status.values())
        result.append(
            MailingStats(
                row.id, state, total, by_status, name=row.name, pruned_at=pruned.get(row.id)
            )
        )
    return result


def stats_json(stats: MailingStats) -> dict[str, Any]:
    """``stats`` as JSON, exactly as ``GET /stats`` shows it (``MailingStatsPublic``, which
    ``tests/test_services_stats.py`` compares it with), built without pydantic's models."""
    return {
        "mailing_id": stats.mailing_id,
        "state": stats.state.value,
        "total": stats.total,
        "by_status": dict(stats.by_status),
        "pruned_at": stats.pruned_at.isoformat().replace("+00:00", "Z")
        if stats.pruned_at
        else None,
    }
