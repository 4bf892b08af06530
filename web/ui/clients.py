"""Client pages: a searchable, paged list; a client's page (its messages, the opt-out
toggle); create, edit, delete; CSV import."""

import codecs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from notifyctl.errors import InvalidInput, NotifyError
from notifyctl.models import Client, ClientCreate, ClientUpdate
from notifyctl.services import clients, history, imports, optout
from web.deps import SessionDep
from web.ui.forms import FormDep, FormErrors, text
from web.ui.templating import is_htmx, render

router = APIRouter(prefix="/clients")
PAGE_SIZE = 50
MESSAGES_PER_PAGE = 50
FIELDS = ("phone", "operator_code", "tag", "timezone")


@router.get("", name="ui_clients")
def listing(
    request: Request,
    session: SessionDep,
    phone: str = "",
    tag: str = "",
    operator_code: str = "",
    offset: int = 0,
) -> HTMLResponse:
    """Filter by phone prefix, exact tag, exact operator code."""
    page = clients.list_clients(
        session=session,
        phone=phone.strip() or None,
        tag=tag.strip() or None,
        operator_code=operator_code.strip() or None,
        limit=PAGE_SIZE,
        offset=max(offset, 0),
    )
    context = {
        "page": page,
        "search": {"phone": phone, "tag": tag, "operator_code": operator_code},
    }
    template = "admin/_clients_rows.html" if is_htmx(request) else "admin/clients.html"
    return render(request, template, context)


def _form_page(request: Request, *, client: Client | None, fields, errors, status=200):
    context = {"client": client, "fields": fields, "errors": errors}
    return render(request, "admin/client_form.html", context, status)


@router.get("/new", name="ui_client_new")
def new_form(request: Request) -> HTMLResponse:
    return _form_page(request, client=None, fields={}, errors=FormErrors())


@router.post("/new")
def create(request: Request, session: SessionDep, form: FormDep) -> Response:
    errors = FormErrors()
    try:
        client_in = ClientCreate(
            phone=text(form, "phone"),
            operator_code=text(form, "operator_code") or None,  # empty: from the phone
            tag=text(form, "tag"),
            timezone=text(form, "timezone") or None,  # empty: the default zone
        )
        clients.create_client(
            session=session,
            client_in=client_in,
            default_timezone=request.app.state.settings.default_timezone,
        )
        return RedirectResponse("/admin/clients", 303)
    except (NotifyError, ValidationError) as exc:
        session.rollback()
        errors.add(exc)
    return _form_page(request, client=None, fields=dict(form), errors=errors, status=422)


@router.get("/import", name="ui_clients_import")
def import_form(request: Request) -> HTMLResponse:
    return render(request, "admin/clients_import.html", {"report": None})


@router.post("/import")
def import_file(request: Request, session: SessionDep, form: FormDep) -> HTMLResponse:
    """Import a CSV upload; the report lists every bad row by line number.

    The upload has been streamed to a temporary file (up to NOTIFY_MAX_UPLOAD_BYTES) before
    this runs, in FastAPI's thread pool: rows are read from that file and written in
    batches, and the write transaction never waits on a slow client's upload.
    """
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        error = "Choose a CSV file to import."
        return render(request, "admin/clients_import.html", {"report": None, "error": error}, 422)
    source = codecs.getreader("utf-8-sig")(upload.file, errors="strict")
    try:
        report = imports.import_clients(
            session=session,
            source=source,
            default_timezone=request.app.state.settings.default_timezone,
            skip_invalid=form.get("skip_invalid") == "on",
        )
    except (InvalidInput, UnicodeDecodeError) as exc:
        session.rollback()
        message = str(exc) if isinstance(exc, InvalidInput) else "The file is not UTF-8 text."
        return render(request, "admin/clients_import.html", {"report": None, "error": message}, 422)
    status = 200 if report.committed else 422
    return render(request, "admin/clients_import.html", {"report": report}, status)


@router.get("/{client_id}/edit", name="ui_client_edit")
def edit_form(request: Request, session: SessionDep, client_id: int) -> HTMLResponse:
    client = clients.get_client(session=session, client_id=client_id)
    fields = {name: getattr(client, name) for name in FIELDS}
    return _form_page(request, client=client, fields=fields, errors=FormErrors())


@router.post("/{client_id}/edit")
def edit(request: Request, session: SessionDep, client_id: int, form: FormDep) -> Response:
    client = clients.get_client(session=session, client_id=client_id)
    errors = FormErrors()
    try:
        if not text(form, "phone"):
            raise InvalidInput("is required", field="phone")
        # An empty operator code or timezone keeps the stored one; an empty tag clears it.
        change = ClientUpdate(
            **{name: text(form, name) or None for name in ("phone", "operator_code", "timezone")},
            tag=text(form, "tag"),
        )
        clients.update_client(session=session, client_id=client_id, client_in=change)
        return RedirectResponse("/admin/clients", 303)
    except (NotifyError, ValidationError) as exc:
        session.rollback()
        errors.add(exc)
    return _form_page(request, client=client, fields=dict(form), errors=errors, status=422)


@router.get("/{client_id}/delete", name="ui_client_delete")
def confirm_delete(request: Request, session: SessionDep, client_id: int) -> HTMLResponse:
    client = clients.get_client(session=session, client_id=client_id)
    context = {
        "verb": "delete",
        "what": f"client {client.id} ({client.phone})",
        "detail": "Its pending messages are cancelled; sent ones stay in the statistics.",
        "action": f"/admin/clients/{client.id}/delete",
        "back": "/admin/clients",
    }
    return render(request, "admin/confirm.html", context)


@router.post("/{client_id}/delete")
def delete(session: SessionDep, client_id: int) -> Response:
    clients.delete_client(session=session, client_id=client_id)
    return RedirectResponse("/admin/clients", 303)


@router.get("/{client_id}", name="ui_client")
def show(request: Request, session: SessionDep, client_id: int, offset: int = 0) -> HTMLResponse:
    """A client's fields, its opt-out state with the toggle, and its messages, newest first."""
    client = clients.get_client(session=session, client_id=client_id)
    messages = history.client_messages(
        session=session, client_id=client_id, limit=MESSAGES_PER_PAGE, offset=max(offset, 0)
    )
    return render(request, "admin/client.html", {"client": client, "messages": messages})


@router.post("/{client_id}/opt-out", name="ui_client_opt_out")
def opt_out(session: SessionDep, client_id: int) -> Response:
    optout.opt_out(session=session, client_id=client_id)
    return RedirectResponse(f"/admin/clients/{client_id}", 303)


@router.post("/{client_id}/opt-in", name="ui_client_opt_in")
def opt_in(session: SessionDep, client_id: int) -> Response:
    optout.opt_in(session=session, client_id=client_id)
    return RedirectResponse(f"/admin/clients/{client_id}", 303)
