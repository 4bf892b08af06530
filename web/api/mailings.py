"""``/api/v1/mailings``: create and steer mailings; their messages."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from notifyctl.models import (
    MailingCreate,
    MailingPublic,
    MailingUpdate,
    MessageDetail,
    MessagePublic,
    PagePublic,
    TestSendCreate,
    TestSendPublic,
)
from notifyctl.sendapi import poster
from notifyctl.services import mailings, stats, test_sends
from notifyctl.services.validation import message_status
from notifyctl.services.views import mailing_public, message_detail, message_public, page_public
from web.deps import Limit, Offset, SessionDep, SessionOpenerDep, SettingsDep
from web.errors import ErrorBody

router = APIRouter(tags=["mailings"])
NOT_FOUND = {404: {"model": ErrorBody, "description": "No mailing with this id"}}
CONFLICT = {409: {"model": ErrorBody, "description": "Not allowed in the mailing's state"}}


@router.post("/mailings", status_code=201, summary="Create a mailing")
def create_mailing(mailing_in: MailingCreate, session: SessionDep) -> MailingPublic:
    """Starts by itself at `start_at` (at once when that has passed); nothing is sent at or
    after `end_at`. Times without an offset are refused by the schema: send ISO-8601 with
    `Z` or an offset."""
    return mailing_public(mailings.create_mailing(session=session, mailing_in=mailing_in))


@router.get("/mailings", summary="List mailings")
def list_mailings(
    session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> PagePublic[MailingPublic]:
    """Newest first."""
    page = mailings.list_mailings(session=session, limit=limit, offset=offset)
    return page_public(page, mailing_public)


@router.get("/mailings/{mailing_id}", summary="Get a mailing", responses=NOT_FOUND)
def get_mailing(mailing_id: int, session: SessionDep) -> MailingPublic:
    return mailing_public(mailings.get_mailing(session=session, mailing_id=mailing_id))


@router.patch("/mailings/{mailing_id}", summary="Change a mailing", responses=NOT_FOUND | CONFLICT)
def update_mailing(
    mailing_id: int, mailing_in: MailingUpdate, session: SessionDep
) -> MailingPublic:
    """Only the fields given change; refused (409) once the mailing has ended or was
    cancelled. Unsent messages follow the change within a second."""
    mailing = mailings.update_mailing(session=session, mailing_id=mailing_id, mailing_in=mailing_in)
    return mailing_public(mailing)


@router.delete(
    "/mailings/{mailing_id}", status_code=204, summary="Delete a mailing", responses=NOT_FOUND
)
def delete_mailing(mailing_id: int, session: SessionDep) -> Response:
    """With its messages and their statistics."""
    mailings.delete_mailing(session=session, mailing_id=mailing_id)
    return Response(status_code=204)


def _steer(action: str, summary: str, doc: str):
    service = getattr(mailings, f"{action}_mailing")

    def route(mailing_id: int, session: SessionDep) -> MailingPublic:
        return mailing_public(service(session=session, mailing_id=mailing_id))

    route.__doc__ = doc
    route.__name__ = f"{action}_mailing"
    router.post(
        f"/mailings/{{mailing_id}}/{action}", summary=summary, responses=NOT_FOUND | CONFLICT
    )(route)


_steer("cancel", "Cancel a mailing", "For good: its pending messages become `cancelled`.")
_steer("pause", "Pause a mailing", "Nothing is sent until it is resumed; its end still holds.")
_steer("resume", "Resume a paused mailing", "Sending goes on where it stopped.")


@router.post(
    "/mailings/{mailing_id}/retry",
    summary="Queue failed messages again",
    responses=NOT_FOUND | CONFLICT,
)
def retry_mailing(mailing_id: int, session: SessionDep) -> MailingPublic:
    """Failed messages become `pending` again, while the mailing has not ended."""
    mailings.retry_failed(session=session, mailing_id=mailing_id)
    return mailing_public(mailings.get_mailing(session=session, mailing_id=mailing_id))


@router.post(
    "/mailings/{mailing_id}/test",
    summary="Send the text to one phone now (a test send)",
    responses=NOT_FOUND | {409: {"model": ErrorBody, "description": "The phone opted out"}},
)
def test_mailing(
    mailing_id: int, test_in: TestSendCreate, sessions: SessionOpenerDep, settings: SettingsDep
) -> TestSendPublic:
    """The mailing's current text goes to `phone` now through the sending API, once (no
    retry, at most `NOTIFY_REQUEST_TIMEOUT` seconds), in any state of the mailing. It is no
    message of the mailing (not in its statistics); its `id` is the message id the API
    got, never any message's. The API's answer is the data of a 200: `accepted` false
    with its `http_status` and `error` when it did not take the text."""
    return test_sends.send_test(
        open_session=sessions, mailing_id=mailing_id, phone=test_in.phone, post=poster(settings)
    )


@router.get(
    "/mailings/{mailing_id}/tests",
    summary="List a mailing's test sends, newest first",
    responses=NOT_FOUND,
)
def list_test_sends(
    mailing_id: int, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> PagePublic[TestSendPublic]:
    """Each as `POST /mailings/{id}/test` answered it: the phone, when, and the sending
    API's answer (`accepted`, `http_status`, `response_excerpt`, `duration_ms`, `error`)."""
    page = test_sends.list_test_sends(
        session=session, mailing_id=mailing_id, limit=limit, offset=offset
    )
    return page_public(page, test_sends.to_public)


@router.get(
    "/mailings/{mailing_id}/messages", summary="List a mailing's messages", responses=NOT_FOUND
)
def list_messages(
    mailing_id: int,
    session: SessionDep,
    status: Annotated[str | None, Query(description="only this status")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PagePublic[MessagePublic]:
    """In id order; `status` is one of pending, sending, sent, failed, expired, cancelled."""
    wanted = message_status(status) if status else None
    page = stats.list_messages(
        session=session, mailing_id=mailing_id, status=wanted, limit=limit, offset=offset
    )
    return page_public(page, message_public)


@router.get(
    "/messages/{message_id}",
    summary="A message with its attempts",
    responses={404: {"model": ErrorBody, "description": "No message with this id"}},
)
def get_message(message_id: int, session: SessionDep) -> MessageDetail:
    """Every request made for it: time, HTTP status, body excerpt, duration, error."""
    message, attempts = stats.get_message(session=session, message_id=message_id)
    return message_detail(message, attempts)
