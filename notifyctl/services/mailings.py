"""Mailings: create, change, pause, cancel, delete, and their derived state."""

from datetime import datetime

import sqlalchemy as sa
from loguru import logger
from sqlmodel import Session

from notifyctl.db import locked
from notifyctl.errors import Conflict, InvalidInput, NotFound
from notifyctl.models import (
    Client,
    Mailing,
    MailingCreate,
    MailingFilter,
    MailingPublic,
    MailingState,
    MailingUpdate,
    Message,
    MessageStatus,
    Page,
    SegmentsPublic,
    SendWindow,
)
from notifyctl.services import audience, audit, partitions, validation
from notifyctl.services.segments import SegmentCount, count_segments
from notifyctl.services.state import mailing_state as mailing_state
from notifyctl.timeutil import as_utc, utcnow


def to_public(mailing: Mailing, *, now: datetime | None = None) -> MailingPublic:
    window = None
    if mailing.window_start and mailing.window_end:
        window = SendWindow(start=mailing.window_start, end=mailing.window_end)
    return MailingPublic(
        id=mailing.id,
        name=mailing.name,
        text=mailing.text,
        start_at=mailing.start_at,
        end_at=mailing.end_at,
        filter=MailingFilter(operator_codes=mailing.operator_codes, tags=mailing.tags),
        send_window=window,
        transactional=mailing.transactional,
        state=mailing_state(mailing, now=now),
        created_at=mailing.created_at,
        updated_at=mailing.updated_at,
        segments=segments_public(count_segments(mailing.text)),
    )


def segments_public(count: SegmentCount) -> SegmentsPublic:
    return SegmentsPublic(
        encoding=count.encoding.value, characters=count.characters, segments=count.segments
    )


def get_mailing(*, session: Session, mailing_id: int) -> Mailing:
    mailing = session.get(Mailing, mailing_id) if validation.storable_id(mailing_id) else None
    if mailing is None:
        raise NotFound(f"no mailing with id {mailing_id}", field="id")
    return mailing


def _check_times(start_at: datetime, end_at: datetime) -> tuple[datetime, datetime]:
    start_at, end_at = as_utc(start_at, field="start_at"), as_utc(end_at, field="end_at")
    if end_at <= start_at:
        raise InvalidInput("must be later than the start", field="end_at")
    return start_at, end_at


def _new_mailing(mailing_in: MailingCreate, *, now: datetime) -> Mailing:
    """The mailing ``mailing_in`` describes, every field checked; not yet stored."""
    start_at, end_at = _check_times(mailing_in.start_at, mailing_in.end_at)
    if end_at <= now:
        raise InvalidInput("is already in the past; the mailing could send nothing", field="end_at")
    filter_ = validation.mailing_filter(mailing_in.filter)
    window = validation.send_window(mailing_in.send_window)
    return Mailing(
        created_at=now,
        updated_at=now,
        name=validation.name(mailing_in.name),
        transactional=mailing_in.transactional,
        text=validation.text(mailing_in.text),
        start_at=start_at,
        end_at=end_at,
        operator_codes=filter_.operator_codes,
        tags=filter_.tags,
        window_start=window.start if window else None,
        window_end=window.end if window else None,
    )


def create_mailing(
    *, session: Session, mailing_in: MailingCreate, now: datetime | None = None
) -> Mailing:
    """Validate and store a new mailing. The daemon activates it at ``start_at``.

    A mailing whose end has already passed (at ``now``, the current time unless given)
    is refused: it could never send anything.
    """
    mailing = _new_mailing(mailing_in, now=now or utcnow())
    session.add(mailing)
    session.flush()
    # Its messages' partitions, ahead of them (and of the next mailings'): PostgreSQL
    # refuses a row with no partition for it (services.partitions).
    partitions.ensure_for(session=session, mailing_id=mailing.id)
    _record(session, "created", mailing.id, audit.diff({}, audit.snapshot(mailing)))
    _log(mailing).info(
        "mailing created: starts {start}, ends {end}, operators {ops}, tags {tags}, "
        "window {window}, transactional {transactional}",
        start=mailing.start_at.isoformat(),
        end=mailing.end_at.isoformat(),
        ops=_few(mailing.operator_codes),
        tags=_few(mailing.tags),
        window=f"{mailing.window_start}-{mailing.window_end}" if mailing.window_start else "none",
        transactional=mailing.transactional,
    )
    return mailing


def mailing_audience(*, session: Session, mailing: Mailing) -> int:
    """How many clients the mailing's filter matches now (its audience, were it to start)."""
    return audience.count_audience(
        session=session,
        operator_codes=mailing.operator_codes,
        tags=mailing.tags,
        transactional=bool(mailing.transactional),
    )


def dry_run_mailing(
    *, session: Session, mailing_in: MailingCreate, now: datetime | None = None
) -> int:
    """Check a new mailing as ``create_mailing`` would and return its audience now;
    nothing is stored."""
    mailing = _new_mailing(mailing_in, now=now or utcnow())
    return mailing_audience(session=session, mailing=mailing)


def _record(session: Session, action: str, mailing_id: int | None, changes: dict) -> None:
    audit.record(
        session=session, action=action, object_type="mailing", object_id=mailing_id, changes=changes
    )


def _log(mailing: Mailing):
    return logger.bind(mailing_id=mailing.id)


LOGGED_VALUES = 10  # values of a filter list a log line names; the rest are counted


def _few(values: list[str]) -> str:
    """A filter list for a log line: "any", or its first values and how many more."""
    if not values:
        return "any"
    shown = ", ".join(repr(v) for v in values[:LOGGED_VALUES])
    rest = len(values) - LOGGED_VALUES
    return f"[{shown}, … {rest} more]" if rest > 0 else f"[{shown}]"


def _refuse_if_over(mailing: Mailing, action: str) -> MailingState:
    state = mailing_state(mailing)
    if state in (MailingState.finished, MailingState.cancelled):
        raise Conflict(f"mailing {mailing.id} is {state}; it cannot be {action}", field="state")
    return state


def update_mailing(*, session: Session, mailing_id: int, mailing_in: MailingUpdate) -> Mailing:
    """Change the given fields of a mailing that has not ended.

    Unsent messages pick up a new text or window at once. A new filter on an activated
    mailing adds messages for newly matching clients and cancels pending messages of
    clients that no longer match. A ``name`` given as None or blank removes the name.
    ``transactional`` changes only until the mailing is activated: its audience (who is
    opted out) is chosen with it.
    """
    flag = mailing_in.transactional
    if flag is not None:
        mailing = _locked_mailing(session=session, mailing_id=mailing_id)
    else:
        mailing = get_mailing(session=session, mailing_id=mailing_id)
    _refuse_if_over(mailing, "changed")
    before = audit.snapshot(mailing)
    if flag is not None and flag != mailing.transactional:
        if mailing.activated_at is not None:
            raise Conflict(
                f"mailing {mailing.id} has started: whether it is transactional was settled "
                "when its audience was chosen, and cannot change now",
                field="transactional",
            )
        mailing.transactional = flag
    if "name" in mailing_in.model_fields_set:
        mailing.name = validation.name(mailing_in.name)
    if mailing_in.text is not None:
        mailing.text = validation.text(mailing_in.text)
    start_at = mailing_in.start_at if mailing_in.start_at is not None else mailing.start_at
    end_at = mailing_in.end_at if mailing_in.end_at is not None else mailing.end_at
    mailing.start_at, mailing.end_at = _check_times(start_at, end_at)
    if mailing_in.end_at is not None and mailing.end_at <= utcnow():
        raise InvalidInput("is already in the past", field="end_at")
    if mailing_in.clear_window:
        mailing.window_start = mailing.window_end = None
    elif mailing_in.send_window is not None:
        window = validation.send_window(mailing_in.send_window)
        mailing.window_start, mailing.window_end = window.start, window.end
    filter_changed = False
    if mailing_in.filter is not None:
        filter_ = validation.mailing_filter(mailing_in.filter)
        filter_changed = (filter_.operator_codes, filter_.tags) != (
            mailing.operator_codes,
            mailing.tags,
        )
        mailing.operator_codes, mailing.tags = filter_.operator_codes, filter_.tags
    mailing.updated_at = utcnow()
    session.add(mailing)
    session.flush()
    if mailing.activated_at is not None:
        if filter_changed:
            audience.drop_unmatched(session=session, mailing=mailing)
            audience.materialise(session=session, mailing=mailing)
        _reschedule_pending(session, mailing)
    if changes := audit.diff(before, audit.snapshot(mailing)):
        _record(session, "updated", mailing.id, changes)
    changed = set(mailing_in.model_dump(exclude_unset=True, exclude_defaults=True))
    changed |= {"name"} & mailing_in.model_fields_set
    _log(mailing).info("mailing updated: {fields}", fields=", ".join(sorted(changed)) or "nothing")
    return mailing


def _locked_mailing(*, session: Session, mailing_id: int) -> Mailing:
    """The mailing as stored now, its row locked until the transaction ends (PostgreSQL).

    The daemon activates a mailing under the same lock (``delivery.due_for_activation``):
    an activation under way finishes first and is seen here; one not begun waits for
    this change. SQLite has one writer at a time.
    """
    get_mailing(session=session, mailing_id=mailing_id)
    query = sa.select(Mailing).where(Mailing.id == mailing_id)
    query = query.execution_options(populate_existing=True)
    return session.execute(locked(query, session, skip_locked=False)).scalar_one()


def _reschedule_pending(session: Session, mailing: Mailing) -> None:
    """Let every pending message be looked at again now (new window, new start)."""
    session.execute(
        sa.update(Message)
        .where(Message.mailing_id == mailing.id, Message.status == MessageStatus.pending)
        .values(next_attempt_at=max(mailing.start_at, utcnow()))
    )


def cancel_mailing(*, session: Session, mailing_id: int) -> Mailing:
    """Stop a mailing for good: its pending messages become ``cancelled``.

    A message whose request is in flight keeps the outcome of that request.
    """
    mailing = get_mailing(session=session, mailing_id=mailing_id)
    _refuse_if_over(mailing, "cancelled")
    before = audit.snapshot(mailing)
    now = utcnow()
    mailing.cancelled_at = mailing.updated_at = now
    session.add(mailing)
    session.execute(
        sa.update(Message)
        .where(Message.mailing_id == mailing.id, Message.status == MessageStatus.pending)
        .values(status=MessageStatus.cancelled, next_attempt_at=None)
    )
    session.flush()
    _record(session, "cancelled", mailing.id, audit.diff(before, audit.snapshot(mailing)))
    _log(mailing).info("mailing cancelled: its pending messages are cancelled")
    return mailing


def pause_mailing(*, session: Session, mailing_id: int) -> Mailing:
    """Hold a mailing that has not ended: nothing is sent until it is resumed."""
    mailing = get_mailing(session=session, mailing_id=mailing_id)
    if _refuse_if_over(mailing, "paused") is MailingState.paused:
        raise Conflict(f"mailing {mailing_id} is already paused", field="state")
    before = audit.snapshot(mailing)
    mailing.paused_at = mailing.updated_at = utcnow()
    session.add(mailing)
    session.flush()
    _record(session, "paused", mailing.id, audit.diff(before, audit.snapshot(mailing)))
    _log(mailing).info("mailing paused")
    return mailing


def resume_mailing(*, session: Session, mailing_id: int) -> Mailing:
    """Let a paused mailing send again; its end time has held all along."""
    mailing = get_mailing(session=session, mailing_id=mailing_id)
    if _refuse_if_over(mailing, "resumed") is not MailingState.paused:
        raise Conflict(f"mailing {mailing_id} is not paused", field="state")
    before = audit.snapshot(mailing)
    mailing.paused_at = None
    mailing.updated_at = utcnow()
    session.add(mailing)
    session.flush()
    _reschedule_pending(session, mailing)
    _record(session, "resumed", mailing.id, audit.diff(before, audit.snapshot(mailing)))
    _log(mailing).info("mailing resumed")
    return mailing


def retry_failed(*, session: Session, mailing_id: int) -> int:
    """Queue the failed messages of a mailing that has not ended again; returns how many."""
    mailing = get_mailing(session=session, mailing_id=mailing_id)
    # A mailing whose every message is final counts as finished, yet may still be retried
    # until its end: only cancellation and end_at rule a retry out.
    if mailing.cancelled_at is not None or utcnow() >= mailing.end_at:
        _refuse_if_over(mailing, "retried")
    before = audit.snapshot(mailing)
    mailing.completed_at = None
    mailing.updated_at = utcnow()
    session.add(mailing)
    conditions = [Message.mailing_id == mailing.id, Message.status == MessageStatus.failed]
    if not mailing.transactional:  # a client who opted out since is not tried again
        opted_out = sa.select(Client.id).where(Client.opted_out_at.is_not(None))
        conditions.append(Message.client_id.not_in(opted_out.scalar_subquery()))
    retried = session.execute(
        sa.update(Message)
        .where(*conditions)
        .values(status=MessageStatus.pending, next_attempt_at=utcnow(), last_error=None)
    ).rowcount
    changes = audit.diff(before, audit.snapshot(mailing)) | {"messages_retried": [None, retried]}
    _record(session, "retried", mailing.id, changes)
    _log(mailing).info(
        "mailing retry: {retried} failed messages are pending again", retried=retried
    )
    return retried


def delete_mailing(*, session: Session, mailing_id: int) -> None:
    """Delete a mailing with its messages and their attempts."""
    mailing = get_mailing(session=session, mailing_id=mailing_id)
    before = audit.snapshot(mailing)
    session.delete(mailing)
    session.flush()
    _record(session, "deleted", mailing_id, audit.diff(before, {}))
    _log(mailing).info("mailing deleted with its messages")


def list_mailings(*, session: Session, limit: int = 100, offset: int = 0) -> Page[Mailing]:
    """One page of mailings, newest first."""
    limit, offset = validation.page_bounds(limit, offset)
    total = session.execute(sa.select(sa.func.count()).select_from(Mailing)).scalar_one()
    rows = session.execute(
        sa.select(Mailing).order_by(Mailing.id.desc()).limit(limit).offset(offset)
    ).scalars()
    return Page(total=total, limit=limit, offset=offset, items=list(rows))
