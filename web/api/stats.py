"""``/api/v1/stats``: message counts by status."""

from typing import Annotated

from fastapi import APIRouter, Query

from notifyctl.models import MailingStatsDetail, MailingStatsPublic
from notifyctl.services import cost, stats
from notifyctl.services.validation import message_status
from notifyctl.services.views import stats_detail, stats_public
from web.deps import Limit, Offset, SessionDep, SettingsDep
from web.errors import ErrorBody

router = APIRouter(tags=["statistics"])


@router.get("/stats", summary="Every mailing with its message counts by status")
def overall(session: SessionDep) -> list[MailingStatsPublic]:
    """Newest mailing first; `by_status` always lists all six statuses."""
    return [stats_public(row) for row in stats.overall_stats(session=session)]


@router.get(
    "/mailings/{mailing_id}/stats",
    summary="One mailing's counts and its messages",
    responses={404: {"model": ErrorBody, "description": "No mailing with this id"}},
)
def one(
    mailing_id: int,
    session: SessionDep,
    settings: SettingsDep,
    status: Annotated[str | None, Query(description="only messages of this status")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> MailingStatsDetail:
    """Counts by status, one page of the messages (`messages_total` in all), and with
    NOTIFY_SEGMENT_PRICE set the estimated and spent `cost` (else null)."""
    wanted = message_status(status) if status else None
    counts = stats.mailing_stats(session=session, mailing_id=mailing_id)
    page = stats.list_messages(
        session=session, mailing_id=mailing_id, status=wanted, limit=limit, offset=offset
    )
    costs = cost.mailing_cost(session=session, stats=counts, price=settings.segment_price)
    return stats_detail(counts, page, costs)
