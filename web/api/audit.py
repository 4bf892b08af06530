"""``/api/v1/audit``: who changed what."""

from typing import Annotated

from fastapi import APIRouter, Query

from notifyctl.models import AuditPublic, PagePublic
from notifyctl.services import audit
from notifyctl.services.validation import MAX_ID
from notifyctl.services.views import audit_public, page_public
from web.deps import Limit, Offset, SessionDep

router = APIRouter(tags=["audit"])


@router.get("/audit", summary="Who changed what, newest first")
def list_audit(
    session: SessionDep,
    mailing_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only entries about this mailing")
    ] = None,
    client_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only entries about this client")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PagePublic[AuditPublic]:
    """Every change made through the CLI, the REST API or the admin UI, and the daemon's
    own (`activated`, `completed`, `expired`): when (`at`), who (`actor`: `cli:<os user>`,
    `token:<name>`, `login-token`, `oidc:<email or subject>`, `daemon`), what (`action`,
    `object_type`, `object_id`) and `changes` (field -> `[old, new]`). Given both a mailing
    and a client, the entries about either."""
    page = audit.list_entries(
        session=session, mailing_id=mailing_id, client_id=client_id, limit=limit, offset=offset
    )
    return page_public(page, audit_public)
