"""The statuses of a message and the states of a mailing.

Apart from ``models`` (which re-exports them) so that what reads them without the ORM
(``notifyctl stats``, through SQLAlchemy Core) need not load SQLModel for two enums.
"""

from enum import StrEnum


class MessageStatus(StrEnum):
    pending = "pending"  #: created, waiting for its turn, its client's window, or a retry
    sending = "sending"  #: claimed by a daemon, request in flight (lease with expiry)
    sent = "sent"  #: the external API accepted it (code == 0)
    failed = "failed"  #: permanent failure (rejected by the API, or attempts exhausted)
    expired = "expired"  #: end_at passed before it could be sent
    cancelled = "cancelled"  #: the mailing was cancelled or the client deleted first


#: Statuses after which nothing more happens to a message.
FINAL_STATUSES = frozenset(
    {MessageStatus.sent, MessageStatus.failed, MessageStatus.expired, MessageStatus.cancelled}
)
#: Statuses of a message that may still be sent.
UNSENT_STATUSES = frozenset({MessageStatus.pending, MessageStatus.sending})


class MailingState(StrEnum):
    scheduled = "scheduled"  #: start_at is still ahead
    running = "running"  #: between start_at and end_at, sending
    paused = "paused"  #: between start_at and end_at, nothing is sent until resumed
    finished = "finished"  #: end_at passed, or every message reached a final status
    cancelled = "cancelled"  #: stopped for good by a user
