"""A mailing's state, derived from its stored times.

Apart from ``services.mailings`` (which re-exports it) so that ``notifyctl stats`` can
derive states from rows read through SQLAlchemy Core, without the ORM.
"""

from datetime import datetime
from typing import Protocol

from notifyctl.states import MailingState
from notifyctl.timeutil import utcnow


class MailingTimes(Protocol):
    """What a state is derived from: a ``Mailing``, or a row of ``tables.mailing``."""

    start_at: datetime
    end_at: datetime
    paused_at: datetime | None
    cancelled_at: datetime | None
    completed_at: datetime | None


def mailing_state(mailing: MailingTimes, *, now: datetime | None = None) -> MailingState:
    """Derive the state from the stored times (see ``MailingState``)."""
    now = now or utcnow()
    if mailing.cancelled_at is not None:
        return MailingState.cancelled
    if mailing.completed_at is not None or now >= mailing.end_at:
        return MailingState.finished
    if mailing.paused_at is not None:
        return MailingState.paused
    if now >= mailing.start_at:
        return MailingState.running
    return MailingState.scheduled
