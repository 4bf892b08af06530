"""``/api/v1/clients``: the client directory."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from notifyctl.models import ClientCreate, ClientPublic, ClientUpdate, PagePublic
from notifyctl.services import clients, optout
from notifyctl.services.views import client_public, page_public
from web.deps import Limit, Offset, SessionDep, SettingsDep
from web.errors import ErrorBody

router = APIRouter(prefix="/clients", tags=["clients"])
NOT_FOUND = {404: {"model": ErrorBody, "description": "No client with this id"}}
CONFLICT = {409: {"model": ErrorBody, "description": "The phone belongs to another client"}}


@router.post("", status_code=201, summary="Add a client", responses=CONFLICT)
def create_client(
    client_in: ClientCreate, session: SessionDep, settings: SettingsDep
) -> ClientPublic:
    """The phone is normalised (`+7 (916) 123-45-67` → `79161234567`); the operator code
    defaults to the phone's digits 2-4 and the timezone to `NOTIFY_DEFAULT_TIMEZONE`."""
    client = clients.create_client(
        session=session, client_in=client_in, default_timezone=settings.default_timezone
    )
    return client_public(client)


@router.get("", summary="List clients")
def list_clients(
    session: SessionDep,
    tag: Annotated[str | None, Query(description="exact tag")] = None,
    operator_code: Annotated[str | None, Query(description="exact operator code")] = None,
    phone: Annotated[str | None, Query(description="phone prefix")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PagePublic[ClientPublic]:
    """Clients in id order, a page at a time, filtered by tag, operator code or phone prefix."""
    page = clients.list_clients(
        session=session,
        tag=tag,
        operator_code=operator_code,
        phone=phone,
        limit=limit,
        offset=offset,
    )
    return page_public(page, client_public)


@router.get("/{client_id}", summary="Get a client", responses=NOT_FOUND)
def get_client(client_id: int, session: SessionDep) -> ClientPublic:
    return client_public(clients.get_client(session=session, client_id=client_id))


@router.patch("/{client_id}", summary="Change a client", responses=NOT_FOUND | CONFLICT)
def update_client(client_id: int, client_in: ClientUpdate, session: SessionDep) -> ClientPublic:
    """Only the fields given change; a new phone without an operator code re-derives it."""
    client = clients.update_client(session=session, client_id=client_id, client_in=client_in)
    return client_public(client)


@router.delete("/{client_id}", status_code=204, summary="Delete a client", responses=NOT_FOUND)
def delete_client(client_id: int, session: SessionDep) -> Response:
    """Its unsent messages are cancelled; what was sent stays in the statistics."""
    clients.delete_client(session=session, client_id=client_id)
    return Response(status_code=204)


@router.post("/{client_id}/opt-out", summary="Opt a client out", responses=NOT_FOUND)
def opt_out(client_id: int, session: SessionDep) -> ClientPublic:
    """Only transactional mailings reach it from now on: its pending messages of other
    mailings are cancelled (`last_error`: `opted out`), and no daemon starts a request for
    one later than a second after this answers. Idempotent: `opted_out_at` keeps the time
    of the first opt-out."""
    client, _cancelled = optout.opt_out(session=session, client_id=client_id)
    return client_public(client)


@router.post("/{client_id}/opt-in", summary="Opt a client in again", responses=NOT_FOUND)
def opt_in(client_id: int, session: SessionDep) -> ClientPublic:
    """Every mailing that starts from now on may reach it; messages cancelled by its
    opt-out stay cancelled. Idempotent."""
    return client_public(optout.opt_in(session=session, client_id=client_id))
