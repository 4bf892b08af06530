"""SQLModel tables and the public shapes of clients, mailings and messages.

Families follow the full-stack FastAPI template: ``XBase`` holds the shared fields,
``XCreate``/``XUpdate`` are what callers send, ``XPublic`` is what they get back, and
``X(XBase, table=True)`` is the stored row.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, StrictBool
from sqlmodel import JSON, Column, Field, SQLModel

# Statuses, states and the datetime type have modules of their own, for what reads the
# database without the ORM (`notifyctl stats`); the rest of the code takes them from here.
from notifyctl.states import FINAL_STATUSES as FINAL_STATUSES
from notifyctl.states import UNSENT_STATUSES as UNSENT_STATUSES
from notifyctl.states import MailingState as MailingState
from notifyctl.states import MessageStatus as MessageStatus
from notifyctl.tables import UTCDateTime as UTCDateTime
from notifyctl.timeutil import utcnow

#: Table options that keep SQLite from handing out a deleted row's id again (its default
#: is max(id) + 1). A message id is the sending API's idempotency key (DESIGN 3.9);
#: PostgreSQL sequences never go back by themselves. Existing files: migration 0004.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}

#: Table options of ``message`` and ``attempt``: on PostgreSQL they are partitioned by
#: ranges of mailing ids (``services.partitions``, migration 0011), so that the rows of
#: old mailings can go a whole partition at a time. The ORM knows ``id`` alone as their
#: key: ids come from one sequence and no two rows share one, on either backend.
PARTITIONED_BY_MAILING = {"postgresql_partition_by": "RANGE (mailing_id)"}


def _partial_index(name: str, *columns: str, when: str) -> sa.Index:
    """An index of the messages whose status is ``when``, and of no others.

    Queries must name the status as a literal (``status_is``): a bound
    parameter keeps SQLite's planner, and PostgreSQL's generic plans, off a partial index.
    """
    where = sa.text(f"status = '{when}'")
    return sa.Index(name, *columns, postgresql_where=where, sqlite_where=where)


def _utc_field(*, nullable: bool = True, index: bool = False, default_now: bool = False):
    column = Column(UTCDateTime(), nullable=nullable, index=index)
    if default_now:
        return Field(default_factory=utcnow, sa_column=column)
    return Field(default=None, sa_column=column)


# --- clients -------------------------------------------------------------------------


class ClientBase(SQLModel):
    """Fields of a client shared by input, output and storage."""

    phone: str = Field(
        max_length=11,
        description="7 followed by 10 digits",
        schema_extra={"examples": ["79161234567"]},
    )
    operator_code: str = Field(
        max_length=3, description="3 digits", schema_extra={"examples": ["916"]}
    )
    tag: str = Field(
        default="", max_length=64, description="free text label", schema_extra={"examples": ["vip"]}
    )
    timezone: str = Field(
        max_length=64, description="IANA zone", schema_extra={"examples": ["Europe/Moscow"]}
    )


class Client(ClientBase, table=True):
    """A stored client (one per phone)."""

    __table_args__ = (
        sa.Index("ix_client_operator_code", "operator_code"),
        sa.Index("ix_client_tag", "tag"),
        NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(max_length=11, sa_column_kwargs={"unique": True})
    created_at: datetime = _utc_field(nullable=False, default_now=True)
    updated_at: datetime = _utc_field(nullable=False, default_now=True)
    #: when the client asked for no more messages (transactional ones still go); None: in
    opted_out_at: datetime | None = _utc_field()


class ClientCreate(SQLModel):
    """A new client as a caller describes it; phone is normalised, the rest derived if absent."""

    phone: str = Field(schema_extra={"examples": ["+7 (916) 123-45-67"]})
    operator_code: str | None = Field(default=None, schema_extra={"examples": ["916"]})
    tag: str = Field(default="", schema_extra={"examples": ["vip"]})
    timezone: str | None = Field(default=None, schema_extra={"examples": ["Europe/Moscow"]})


class ClientUpdate(SQLModel):
    """A partial change of a client: only the fields given change."""

    phone: str | None = None
    operator_code: str | None = None
    tag: str | None = None
    timezone: str | None = None


class ClientPublic(ClientBase):
    """A client as shown to callers."""

    id: int
    created_at: datetime
    updated_at: datetime
    opted_out_at: datetime | None = Field(
        description="when the client opted out (UTC), or null: it gets only transactional "
        "mailings while set"
    )


# --- mailings ------------------------------------------------------------------------


class MailingFilter(BaseModel):
    """Which clients a mailing reaches: each non-empty list must contain the client's value."""

    model_config = ConfigDict(extra="forbid")

    operator_codes: list[str] = []
    tags: list[str] = []


class SendWindow(BaseModel):
    """Hours of the client's local day when sending is allowed; end < start wraps midnight."""

    model_config = ConfigDict(extra="forbid")

    start: str = Field(schema_extra={"examples": ["09:00"]})
    end: str = Field(schema_extra={"examples": ["21:00"]})


class Mailing(SQLModel, table=True):
    """A stored mailing. Its ``state`` is derived (see ``services.mailings.mailing_state``)."""

    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True)
    #: what operators call it (optional), shown first in every list
    name: str | None = Field(default=None, max_length=200)
    #: one-time codes and service notices: not capped, and sent to opted-out clients too
    transactional: bool = Field(
        default=False, sa_column_kwargs={"server_default": sa.false(), "nullable": False}
    )
    text: str = Field(max_length=1000)
    start_at: datetime = _utc_field(nullable=False)
    end_at: datetime = _utc_field(nullable=False)
    operator_codes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    window_start: str | None = Field(default=None, max_length=5)
    window_end: str | None = Field(default=None, max_length=5)
    created_at: datetime = _utc_field(nullable=False, default_now=True)
    updated_at: datetime = _utc_field(nullable=False, default_now=True)
    #: when its messages were created (the audience materialised)
    activated_at: datetime | None = _utc_field()
    paused_at: datetime | None = _utc_field()
    cancelled_at: datetime | None = _utc_field()
    #: when no unsent message remained (all final), set by the daemon
    completed_at: datetime | None = _utc_field()


NAME_HELP = "what operators call it, shown first in every list: up to 200 characters, one line"
TRANSACTIONAL_HELP = (
    "one-time codes and service notices: reaches opted-out clients, not frequency-capped; "
    "true or false only"
)


class MailingCreate(SQLModel):
    """A new mailing as a caller describes it."""

    name: str | None = Field(
        default=None, description=NAME_HELP, schema_extra={"examples": ["Black Friday"]}
    )
    transactional: StrictBool = Field(default=False, description=TRANSACTIONAL_HELP)
    text: str = Field(schema_extra={"examples": ["Black Friday: -30% today only"]})
    start_at: AwareDatetime = Field(schema_extra={"examples": ["2026-12-01T09:00:00+03:00"]})
    end_at: AwareDatetime = Field(schema_extra={"examples": ["2026-12-01T21:00:00+03:00"]})
    filter: MailingFilter = Field(default_factory=MailingFilter)
    send_window: SendWindow | None = None


class MailingUpdate(SQLModel):
    """A partial change of a mailing: only the fields given change."""

    #: a new name; ``null`` or ``""`` removes it (absent: unchanged)
    name: str | None = Field(default=None, description=NAME_HELP + "; null or empty removes it")
    #: only before the mailing starts (its audience is chosen with it); absent: unchanged
    transactional: StrictBool | None = Field(
        default=None, description="changeable until the mailing starts"
    )
    text: str | None = None
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    filter: MailingFilter | None = None
    send_window: SendWindow | None = None
    #: set true to remove the send window (``send_window: null`` is read as "unchanged")
    clear_window: bool = False


class SegmentsPublic(BaseModel):
    """How a mailing's text goes out as SMS (the rules: ``notifyctl.services.segments``)."""

    encoding: Literal["GSM-7", "UCS-2"]
    characters: int = Field(
        description="length in the encoding's units: septets (an extension character such "
        "as € counts 2) or UTF-16 code units (an emoji counts 2)"
    )
    segments: int = Field(description="SMS parts: 160/153 septets or 70/67 code units each")


class MailingPublic(SQLModel):
    """A mailing as shown to callers."""

    id: int
    name: str | None
    text: str
    start_at: datetime
    end_at: datetime
    filter: MailingFilter
    send_window: SendWindow | None
    transactional: bool
    state: MailingState
    created_at: datetime
    updated_at: datetime
    segments: SegmentsPublic


class CostEstimatePublic(BaseModel):
    """A cost at NOTIFY_SEGMENT_PRICE: amounts are decimal strings rounded to cents."""

    price_per_segment: str = Field(schema_extra={"examples": ["0.05"]})
    #: audience x segments x price
    estimated: str = Field(schema_extra={"examples": ["150.00"]})


class MailingCostPublic(CostEstimatePublic):
    """A mailing's estimated and spent cost (``services.cost`` says how each is counted)."""

    segments: int
    audience: int
    #: sent messages x segments x price
    spent: str = Field(schema_extra={"examples": ["49.95"]})


class DryRunPublic(BaseModel):
    """What ``mailing create --dry-run --json`` prints: nothing was created."""

    audience: int
    segments: SegmentsPublic
    #: null when NOTIFY_SEGMENT_PRICE is unset
    cost: CostEstimatePublic | None


# --- messages ------------------------------------------------------------------------


class Message(SQLModel, table=True):
    """One mailing's text for one client; at most one per (mailing, client).

    ``client_id`` carries no foreign key on purpose: a deleted client's sent messages
    stay in the statistics.
    """

    __table_args__ = (
        sa.UniqueConstraint("mailing_id", "client_id", name="uq_message_mailing_client"),
        # Claims: the due pending messages of a mailing, oldest due first. Partial, so
        # that it holds only what is still to send, never the history (migration 0011).
        _partial_index("ix_message_pending_due", "mailing_id", "next_attempt_at", when="pending"),
        # Messages in flight (few at any time): lease reaping, a mailing's in-flight count.
        _partial_index("ix_message_sending_lease", "mailing_id", "lease_until", when="sending"),
        # The statistics: counts by status per mailing (an index-only scan).
        sa.Index("ix_message_mailing_status", "mailing_id", "status"),
        # The dashboard's failed messages of the last day (services.dashboard).
        _partial_index("ix_message_failed", "id", when="failed"),
        sa.Index("ix_message_client", "client_id"),
        # The frequency cap: what a client was sent within the period, and has in flight,
        # without reading every message it was ever sent (migration 0012).
        _partial_index("ix_message_client_sent", "client_id", "sent_at", when="sent"),
        _partial_index("ix_message_client_sending", "client_id", when="sending"),
        # the dashboard's messages sent in the last day (services.dashboard); partial, so
        # that a message enters it once, when sent, not at every claim (migration 0007).
        _partial_index("ix_message_sent_at", "sent_at", when="sent"),
        # What an attempt's foreign key (message_id, mailing_id) points at. On PostgreSQL
        # the primary key is (id, mailing_id) - a partitioned table's keys must hold its
        # partition key - and is this index; SQLite keeps ``id`` alone as its primary key
        # (AUTOINCREMENT needs it) and gets this index beside it (migration 0011).
        sa.Index("uq_message_id_mailing", "id", "mailing_id", unique=True).ddl_if(dialect="sqlite"),
        NEVER_REUSE_IDS | PARTITIONED_BY_MAILING,
    )

    id: int | None = Field(default=None, primary_key=True)
    mailing_id: int = Field(
        sa_column=Column(sa.ForeignKey("mailing.id", ondelete="CASCADE"), nullable=False)
    )
    client_id: int = Field(nullable=False)
    created_at: datetime = _utc_field(nullable=False, default_now=True)
    status: str = Field(default=MessageStatus.pending, max_length=16)
    sent_at: datetime | None = _utc_field()
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=500)
    #: earliest time of the next attempt (backoff, or the client's window opening)
    next_attempt_at: datetime | None = _utc_field()
    #: while ``sending``: the claim holds until then, after which another daemon may take it
    lease_until: datetime | None = _utc_field()
    lease_owner: str | None = Field(default=None, max_length=64)


def status_is(status: MessageStatus) -> sa.ColumnElement[bool]:
    """``message.status = '<status>'`` with the status written out, not bound: only then
    may SQLite's planner, and PostgreSQL's generic plans, use the partial indexes of
    ``Message`` (migrations 0011, 0012)."""
    return Message.__table__.c.status == sa.literal_column(f"'{status.value}'")


class MessagePublic(SQLModel):
    """A message as shown to callers."""

    id: int
    mailing_id: int
    client_id: int
    created_at: datetime
    status: MessageStatus
    sent_at: datetime | None
    attempts: int
    last_error: str | None


class Attempt(SQLModel, table=True):
    """One request to the external API for a message, and what came of it."""

    __table_args__ = (
        # (message_id, mailing_id): on PostgreSQL the key of a partitioned message; the
        # recorder relies on it failing for a message deleted meanwhile (daemon.store).
        sa.ForeignKeyConstraint(
            ["message_id", "mailing_id"],
            ["message.id", "message.mailing_id"],
            name="fk_attempt_message",
            ondelete="CASCADE",
        ),
        NEVER_REUSE_IDS | PARTITIONED_BY_MAILING,
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(sa_column=Column(sa.Integer, nullable=False, index=True))
    #: its message's mailing: the partition key on PostgreSQL (migration 0011)
    mailing_id: int = Field(nullable=False)
    started_at: datetime = _utc_field(nullable=False, default_now=True)
    duration_ms: float = 0.0
    http_status: int | None = None
    response_excerpt: str | None = Field(default=None, max_length=500)
    error: str | None = Field(default=None, max_length=500)


class AttemptPublic(SQLModel):
    """An attempt as shown to callers."""

    started_at: datetime
    duration_ms: float
    http_status: int | None
    response_excerpt: str | None
    error: str | None


T = TypeVar("T")


class MailingStatsPublic(BaseModel):
    """One mailing's message counts by status (``GET /stats`` items, ``notifyctl stats --json``)."""

    mailing_id: int
    state: MailingState
    total: int
    by_status: dict[str, int] = Field(
        schema_extra={
            "examples": [
                {"pending": 0, "sending": 0, "sent": 98, "failed": 1, "expired": 1, "cancelled": 0}
            ]
        }
    )
    pruned_at: datetime | None = Field(
        default=None,
        description="when its message rows were pruned (NOTIFY_RETENTION_MESSAGES), UTC; "
        "the counts stay, the messages are gone; null: not pruned",
    )


class MailingStatsDetail(MailingStatsPublic):
    """One mailing's counts and one page of its messages (``GET /mailings/{id}/stats``)."""

    #: null when NOTIFY_SEGMENT_PRICE is unset
    cost: MailingCostPublic | None = None
    messages: list[MessagePublic]
    messages_total: int
    limit: int
    offset: int


class MessageDetail(MessagePublic):
    """A message with every request made for it (``attempts`` is their count)."""

    attempt_history: list[AttemptPublic]


class PagePublic(BaseModel, Generic[T]):
    """One page of a longer list: ``items`` from ``offset``, ``total`` in all."""

    total: int
    limit: int
    offset: int
    items: list[T]


class TestSend(SQLModel, table=True):
    """One text sent to one phone by an operator to see how it arrives (``mailing test``).

    Not a message of its mailing (never in its statistics). Its id is the message id the
    API was given, taken from the message table's own sequence so that no message ever
    gets it (``services.test_sends``); it has no sequence of its own.
    """

    __tablename__ = "test_send"
    __test__ = False  # (a name pytest would otherwise try to collect)

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    mailing_id: int = Field(
        sa_column=Column(
            sa.ForeignKey("mailing.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    phone: str = Field(max_length=11)
    at: datetime = _utc_field(nullable=False, default_now=True)
    #: the request and its answer, as for a message's attempt
    duration_ms: float | None = None
    http_status: int | None = None
    response_excerpt: str | None = Field(default=None, max_length=500)
    #: why the API did not accept it; None once accepted
    error: str | None = Field(default=None, max_length=500)


class TestSendCreate(SQLModel):
    """A test send as a caller asks for it: the phone to send the mailing's text to."""

    __test__ = False

    phone: str = Field(schema_extra={"examples": ["+7 (916) 123-45-67"]})


class TestSendPublic(SQLModel):
    """A test send and the sending API's answer (``accepted`` when it took the text)."""

    __test__ = False

    id: int = Field(description="the message id given to the sending API (its idempotency key)")
    mailing_id: int
    phone: str
    at: datetime
    accepted: bool
    http_status: int | None
    response_excerpt: str | None
    duration_ms: float | None
    error: str | None


class ApiToken(SQLModel, table=True):
    """A named API token for scripts; only its SHA-256 hash is stored."""

    __tablename__ = "api_token"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    token_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    created_at: datetime = _utc_field(nullable=False, default_now=True)
    last_used_at: datetime | None = _utc_field()
    revoked_at: datetime | None = _utc_field()


class ApiTokenPublic(SQLModel):
    """A token as listed (never the token itself)."""

    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class Throttle(SQLModel, table=True):
    """The global token bucket behind NOTIFY_RATE_LIMIT, shared by every daemon (one row)."""

    id: int | None = Field(default=None, primary_key=True)
    tokens: float = 0.0
    updated_at: datetime = _utc_field(nullable=False, default_now=True)


class ReportRun(SQLModel, table=True):
    """The daily statistics email of one local day: claimed by one daemon, then sent.

    The primary key makes the claim: a second daemon's insert for the same day fails.
    """

    __tablename__ = "report_run"

    day: str = Field(primary_key=True, max_length=10)  #: YYYY-MM-DD in NOTIFY_REPORT_TIMEZONE
    owner: str = Field(max_length=64)
    claimed_at: datetime = _utc_field(nullable=False, default_now=True)
    sent_at: datetime | None = _utc_field()


class AdminSession(SQLModel, table=True):
    """A sign-in to the admin UI. Its cookie names it; logout deletes it, so a copy of
    the cookie is worthless afterwards (on every API replica: they share this table).
    """

    __tablename__ = "admin_session"

    #: SHA-256 of the id in the cookie: this table alone opens no session
    id_hash: str = Field(primary_key=True, max_length=64)
    user_name: str = Field(max_length=320)  #: e-mail or subject, as shown in the UI
    created_at: datetime = _utc_field(nullable=False, default_now=True)
    expires_at: datetime = _utc_field(nullable=False, index=True)


class PruneRun(SQLModel, table=True):
    """One local day's pruning (``services.retention``), claimed like the daily report
    (``services.report.claim_day``): one daemon prunes, the others skip the day."""

    __tablename__ = "prune_run"

    day: str = Field(primary_key=True, max_length=10)  #: YYYY-MM-DD in NOTIFY_REPORT_TIMEZONE
    owner: str = Field(max_length=64)
    #: renewed after every batch, so that a long pruning is not taken for a dead one's
    claimed_at: datetime = _utc_field(nullable=False, default_now=True)
    sent_at: datetime | None = _utc_field()  #: when it finished (named as in ``report_run``)


class MailingSummary(SQLModel, table=True):
    """The counts of a mailing whose message rows were pruned (``services.retention``).

    Written and committed before its first message row goes: from then on every count
    of the mailing is read here (``services.counts``), also while rows are still going.
    """

    __tablename__ = "mailing_summary"

    mailing_id: int = Field(
        sa_column=Column(
            sa.ForeignKey("mailing.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
        )
    )
    pending: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0
    total: int = 0
    first_sent_at: datetime | None = _utc_field()
    last_sent_at: datetime | None = _utc_field()
    #: requests made for its messages (the sum of ``message.attempts``: attempt rows may
    #: have gone already)
    attempts: int = 0
    #: the delivery chart as it was (``services.stats.Timeline``): start (epoch seconds),
    #: step (seconds), counts; None when nothing was sent
    timeline: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    pruned_at: datetime = _utc_field(nullable=False, default_now=True)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a longer list, as service functions return it."""

    total: int
    limit: int
    offset: int
    items: list[T]


# --- the audit log -------------------------------------------------------------------


class Audit(SQLModel, table=True):
    """One change and who made it: ``changes`` maps each field to ``[old, new]``.

    ``object_id`` carries no foreign key: the entries of a deleted client or mailing stay.
    """

    __table_args__ = (
        # `audit --mailing 3` / `--client 7`, newest first; and the plain listing, pruning.
        sa.Index("ix_audit_object", "object_type", "object_id", "at"),
        sa.Index("ix_audit_at", "at"),
        NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _utc_field(nullable=False, default_now=True)
    #: cli:<os user>, token:<api token name>, login-token, oidc:<email or subject>, daemon
    actor: str = Field(max_length=400)
    action: str = Field(max_length=32)  #: created, updated, deleted, paused, activated…
    object_type: str = Field(max_length=32)  #: client, mailing, api_token
    object_id: int | None = None  #: None for an import (it touches many clients)
    changes: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AuditPublic(SQLModel):
    """An entry of the audit log as shown to callers (``GET /audit``, ``audit --json``)."""

    id: int
    at: datetime
    actor: str = Field(schema_extra={"examples": ["token:deploy-script"]})
    action: str = Field(schema_extra={"examples": ["updated"]})
    object_type: str = Field(schema_extra={"examples": ["mailing"]})
    object_id: int | None = Field(schema_extra={"examples": [3]})
    changes: dict[str, list] = Field(
        description="field -> [old, new]: the new values for a creation, the old ones "
        "for a deletion, counts as [null, n]",
        schema_extra={"examples": [{"text": ["Sale", "Sale: -30%"], "tags": [[], ["vip"]]}]},
    )
