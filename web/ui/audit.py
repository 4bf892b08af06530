"""The audit log page: who changed what, newest first, filtered by mailing or client."""

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from notifyctl.errors import InvalidInput, quoted
from notifyctl.models import Page
from notifyctl.services import audit
from web.deps import SessionDep
from web.ui.templating import is_htmx, render

router = APIRouter(prefix="/audit")
PAGE_SIZE = 50
SHOWN_CHARS = 120  # of one value in the table; a longer one opens in full on a click


@router.get("", name="ui_audit")
def listing(
    request: Request,
    session: SessionDep,
    mailing_id: str = "",
    client_id: str = "",
    offset: int = 0,
) -> HTMLResponse:
    """Entries about a mailing or a client (the search fields take an id; empty: all)."""
    search = {"mailing_id": mailing_id.strip(), "client_id": client_id.strip()}
    error, status = None, 200
    try:
        page = audit.list_entries(
            session=session,
            mailing_id=_id(search["mailing_id"], "mailing_id"),
            client_id=_id(search["client_id"], "client_id"),
            limit=PAGE_SIZE,
            offset=max(offset, 0),
        )
    except InvalidInput as exc:
        error, status = str(exc), 422
        page = Page(total=0, limit=PAGE_SIZE, offset=0, items=[])
    rows = [
        (entry, [(field, _value(old), _value(new)) for field, (old, new) in entry.changes.items()])
        for entry in page.items
    ]
    context = {"page": page, "rows": rows, "search": search, "error": error}
    template = "admin/_audit_rows.html" if is_htmx(request) else "admin/audit.html"
    return render(request, template, context, status)


def _id(raw: str, field: str) -> int | None:
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidInput(f"{quoted(raw)} is not an id (a whole number)", field=field)
    return int(raw)


def _value(value: object) -> tuple[str, str | None]:
    """What a cell shows of a value, and the whole of it when that was cut."""
    short, whole = audit.shown(value, limit=SHOWN_CHARS), json.dumps(value, ensure_ascii=False)
    return short, (whole if short != whole else None)
