"""The daily statistics report: what happened to the mailings of the last 24 hours.

``build_report`` gathers it, ``render_text`` / ``render_html`` write it, and the
``claim_day`` / ``mark_sent`` / ``release_day`` trio makes sure one day's email goes out
once, however many daemons run or restart (the day is the primary key of ``report_run``).
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from notifyctl.models import Mailing, MailingState, MessageStatus, PruneRun, ReportRun
from notifyctl.services.counts import counts_by_status, zero_counts
from notifyctl.services.mailings import mailing_state

#: A claim whose sender never said "sent" (it died mid-send) may be taken over after this.
STALE_CLAIM = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class ReportRow:
    mailing_id: int
    text: str
    state: MailingState
    total: int
    by_status: dict[str, int]
    name: str | None = None  #: shown before everything else of the mailing

    @property
    def delivery_rate(self) -> float | None:
        """Sent over all messages; None for a mailing without messages."""
        return self.by_status[MessageStatus.sent] / self.total if self.total else None


@dataclass(frozen=True, slots=True)
class Report:
    since: datetime
    until: datetime
    rows: list[ReportRow]

    @property
    def totals(self) -> dict[str, int]:
        return {s.value: sum(r.by_status[s.value] for r in self.rows) for s in MessageStatus}


def build_report(*, session: Session, now: datetime, hours: int = 24) -> Report:
    """Mailings that were sending at some moment of the last ``hours`` (started by then,
    not ended, completed or cancelled before it), with their message counts by status."""
    since = now - timedelta(hours=hours)
    over = sa.func.coalesce(Mailing.completed_at, Mailing.cancelled_at, Mailing.end_at)
    mailings = list(
        session.execute(
            sa.select(Mailing)
            .where(Mailing.activated_at.is_not(None), Mailing.start_at <= now, over >= since)
            .order_by(Mailing.id)
        ).scalars()
    )
    counts: dict[int, dict[str, int]] = {m.id: zero_counts() for m in mailings}
    if mailings:  # (a pruned mailing's come from its summary)
        counts.update(counts_by_status(session=session, mailing_ids=list(counts))[0])
    rows = [
        ReportRow(
            m.id,
            m.text,
            mailing_state(m, now=now),
            sum(counts[m.id].values()),
            counts[m.id],
            name=m.name,
        )
        for m in mailings
    ]
    return Report(since=since, until=now, rows=rows)


def _rate(row: ReportRow) -> str:
    return "—" if row.delivery_rate is None else f"{row.delivery_rate:.1%}"


def render_text(report: Report, *, tz: str) -> str:
    """The plain-text body."""
    zone = ZoneInfo(tz)
    fmt = "%Y-%m-%d %H:%M %Z"
    since, until = (
        moment.astimezone(zone).strftime(fmt) for moment in (report.since, report.until)
    )
    lines = ["notifyctl: mailings of the last 24 hours", f"{since} - {until}", ""]
    if not report.rows:
        lines.append("No mailing was sending in this period.")
    statuses = [s.value for s in MessageStatus]
    for row in report.rows:
        counts = ", ".join(f"{s} {row.by_status[s]}" for s in statuses if row.by_status[s])
        named = f"{row.name} " if row.name else ""
        lines.append(
            f"{named}#{row.mailing_id} {row.text[:60]!r} ({row.state}): {row.total} messages, "
            f"delivered {_rate(row)}" + (f" - {counts}" if counts else "")
        )
    totals = report.totals
    lines += ["", "All: " + ", ".join(f"{s} {totals[s]}" for s in statuses)]
    return "\n".join(lines) + "\n"


HTML = """<!doctype html>
<html><body style="font-family: sans-serif">
<h2>notifyctl: mailings of the last 24 hours</h2>
<p>{{ since }} &ndash; {{ until }}</p>
{% if not rows %}<p>No mailing was sending in this period.</p>{% else %}
<table cellpadding="4" cellspacing="0" border="1" style="border-collapse: collapse">
<thead><tr><th>Name</th><th>#</th><th>Text</th><th>State</th><th>Messages</th>
{% for s in statuses %}<th>{{ s }}</th>{% endfor %}<th>Delivered</th></tr></thead>
<tbody>{% for r in rows %}<tr><td>{{ r.name or "" }}</td><td>{{ r.mailing_id }}</td>
<td>{{ r.text|truncate(60) }}</td>
<td>{{ r.state }}</td><td>{{ r.total }}</td>
{% for s in statuses %}<td align="right">{{ r.by_status[s] }}</td>{% endfor %}
<td align="right">{{ rate(r) }}</td></tr>{% endfor %}</tbody>
</table>{% endif %}
</body></html>
"""


def render_html(report: Report, *, tz: str) -> str:
    """The HTML body (values escaped)."""
    from jinja2 import Environment

    zone = ZoneInfo(tz)
    fmt = "%Y-%m-%d %H:%M %Z"
    template = Environment(autoescape=True).from_string(HTML)
    return template.render(
        since=report.since.astimezone(zone).strftime(fmt),
        until=report.until.astimezone(zone).strftime(fmt),
        rows=report.rows,
        statuses=[s.value for s in MessageStatus],
        rate=_rate,
    )


def claim_day(
    *,
    session: Session,
    day: date,
    owner: str,
    now: datetime,
    table: type[ReportRun] | type[PruneRun] = ReportRun,
) -> bool:
    """Take the day's report for ``owner``; False when it is sent or another holds it.

    ``table`` is whose day: the report's (``report_run``) or the pruning's (``prune_run``,
    where ``sent_at`` says it finished), tables of the same columns.
    """
    key = day.isoformat()
    try:
        with session.begin_nested():
            session.add(table(day=key, owner=owner, claimed_at=now))
        return True
    except IntegrityError:
        pass
    # A claim left by a sender that died mid-send is taken over once it is stale.
    taken = session.execute(
        sa.update(table)
        .where(
            table.day == key,
            table.sent_at.is_(None),
            table.claimed_at < now - STALE_CLAIM,
        )
        .values(owner=owner, claimed_at=now),
        execution_options={"preserve_rowcount": True},
    ).rowcount
    return taken == 1


def mark_sent(
    *,
    session: Session,
    day: date,
    owner: str,
    now: datetime,
    table: type[ReportRun] | type[PruneRun] = ReportRun,
) -> None:
    session.execute(
        sa.update(table)
        .where(table.day == day.isoformat(), table.owner == owner)
        .values(sent_at=now)
    )


def release_day(
    *,
    session: Session,
    day: date,
    owner: str,
    table: type[ReportRun] | type[PruneRun] = ReportRun,
) -> None:
    """Give the claim back (the email could not be sent): the next attempt may claim it."""
    session.execute(
        sa.delete(table).where(
            table.day == day.isoformat(), table.owner == owner, table.sent_at.is_(None)
        )
    )


def renew_day(*, session: Session, day: date, owner: str, now: datetime) -> None:
    """Say that ``owner`` still works on the day's pruning: a claim renewed within
    ``STALE_CLAIM`` is never taken over, however long the work takes."""
    session.execute(
        sa.update(PruneRun)
        .where(PruneRun.day == day.isoformat(), PruneRun.owner == owner)
        .values(claimed_at=now)
    )
