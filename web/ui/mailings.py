"""Mailing pages: create (with audience and segment previews), edit, steer, delete, inspect."""

from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from notifyctl.errors import Conflict, InvalidInput, NotFound, NotifyError
from notifyctl.models import (
    Mailing,
    MailingCreate,
    MailingFilter,
    MailingState,
    MailingUpdate,
    MessageStatus,
    SendWindow,
)
from notifyctl.sendapi import poster
from notifyctl.services import audience, cost, mailings, segments, stats, test_sends, validation
from notifyctl.services.views import page_public
from web.deps import SessionDep, SessionOpenerDep, SettingsDep
from web.ui.forms import FormDep, FormErrors, local_datetime, text, words
from web.ui.templating import is_htmx, render

router = APIRouter(prefix="/mailings")
MESSAGES_PER_PAGE = 50
TESTS_SHOWN = 5  # the newest test sends under the "Send test" form (all: the REST API, CLI)
ACTIONS = {
    "cancel": mailings.cancel_mailing,
    "pause": mailings.pause_mailing,
    "resume": mailings.resume_mailing,
    "retry": mailings.retry_failed,
    "delete": mailings.delete_mailing,
}


def _fields(mailing: Mailing | None, zone: str) -> dict[str, str]:
    """A mailing as the form's field values (times in the display zone)."""
    if mailing is None:
        return {"zone": zone}
    fmt = "%Y-%m-%dT%H:%M:%S"
    return {
        "name": mailing.name or "",
        "transactional": "true" if mailing.transactional else "",
        "text": mailing.text,
        "start_at": mailing.start_at.astimezone(ZoneInfo(zone)).strftime(fmt),
        "end_at": mailing.end_at.astimezone(ZoneInfo(zone)).strftime(fmt),
        "zone": zone,
        "operator_codes": " ".join(mailing.operator_codes),
        "tags": " ".join(mailing.tags),
        "window_start": mailing.window_start or "",
        "window_end": mailing.window_end or "",
    }


def _read(form, errors: FormErrors) -> dict:
    """The form's values as MailingCreate fields; problems go to ``errors``."""
    zone = text(form, "zone")
    values: dict = {
        "name": text(form, "name"),
        # (a checkbox: sent when ticked, whatever its value; absent when not)
        "transactional": bool(text(form, "transactional")),
        "text": text(form, "text"),
        "filter": MailingFilter(
            operator_codes=words(form, "operator_codes"), tags=words(form, "tags")
        ),
    }
    for name in ("start_at", "end_at"):
        try:
            values[name] = local_datetime(form, name, zone)
        except InvalidInput as exc:
            errors.add(exc)
    start, end = text(form, "window_start"), text(form, "window_end")
    if start or end:
        if not (start and end):
            errors.add(
                InvalidInput("give both ends of the window, or neither", field="window_start")
            )
        values["send_window"] = SendWindow(start=start, end=end)
    else:
        values["send_window"] = None
    return values


def _form_page(request: Request, *, mailing: Mailing | None, fields, errors, status=200):
    context = {"mailing": mailing, "fields": fields, "errors": errors}
    return render(request, "admin/mailing_form.html", context, status)


@router.get("/new", name="ui_mailing_new")
def new_form(request: Request) -> HTMLResponse:
    zone = request.app.state.settings.default_timezone
    return _form_page(request, mailing=None, fields=_fields(None, zone), errors=FormErrors())


@router.post("/new")
def create(request: Request, session: SessionDep, form: FormDep) -> Response:
    errors = FormErrors()
    values = _read(form, errors)
    if not errors:
        try:
            mailing = mailings.create_mailing(session=session, mailing_in=MailingCreate(**values))
            return RedirectResponse(f"/admin/mailings/{mailing.id}", 303)
        except (NotifyError, ValidationError) as exc:
            session.rollback()
            errors.add(exc)
    return _form_page(request, mailing=None, fields=dict(form), errors=errors, status=422)


@router.post("/audience", name="ui_audience")
def audience_preview(request: Request, session: SessionDep, form: FormDep) -> HTMLResponse:
    """How many clients the filter being typed matches (an HTMX fragment), opted-out ones
    too when the mailing is transactional (the checkbox, or a started one's hidden flag)."""
    try:
        filter_ = validation.mailing_filter(
            MailingFilter(operator_codes=words(form, "operator_codes"), tags=words(form, "tags"))
        )
        count = audience.count_audience(  # opted-out clients count for a transactional one
            session=session,
            operator_codes=filter_.operator_codes,
            tags=filter_.tags,
            transactional=bool(text(form, "transactional")),
        )
        return render(request, "admin/_audience.html", {"count": count, "error": None})
    except NotifyError as exc:
        return render(request, "admin/_audience.html", {"count": None, "error": str(exc)})


@router.post("/segments", name="ui_segments")
def segments_preview(request: Request, form: FormDep) -> HTMLResponse:
    """How many SMS segments the text being typed takes (an HTMX fragment)."""
    typed = text(form, "text")  # stripped, as the form's text is when it is saved
    try:
        if typed:  # (blank: 0 segments, and no error while the field is still empty)
            validation.text(typed)  # too long: said, not counted (it cannot be saved)
    except InvalidInput as exc:
        return render(request, "admin/_segments.html", {"count": None, "error": str(exc)})
    count = segments.count_segments(typed)
    return render(request, "admin/_segments.html", {"count": count, "error": None})


@router.get("/{mailing_id}", name="ui_mailing")
def show(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    mailing_id: int,
    status: str = "",
    offset: int = 0,
):
    context = _page_context(session, settings, mailing_id, status=status, offset=offset)
    section = request.query_params.get("section")
    if is_htmx(request) and section in ("progress", "messages"):
        return render(request, f"admin/_mailing_{section}.html", context)
    return render(request, "admin/mailing.html", context)


def _page_context(session, settings, mailing_id: int, *, status: str = "", offset: int = 0) -> dict:
    """What the mailing's page shows."""
    mailing = mailings.get_mailing(session=session, mailing_id=mailing_id)
    counts = stats.mailing_stats(session=session, mailing_id=mailing_id)
    wanted = validation.message_status(status) if status else None
    messages = stats.list_messages(
        session=session,
        mailing_id=mailing_id,
        status=wanted,
        limit=MESSAGES_PER_PAGE,
        offset=max(offset, 0),
    )
    return {
        "mailing": mailing,
        "public": mailings.to_public(mailing),
        "counts": counts,
        "cost": cost.mailing_cost(session=session, stats=counts, price=settings.segment_price),
        "timeline": stats.delivery_timeline(session=session, mailing_id=mailing_id),
        "messages": messages,
        "status": status,
        "statuses": [s.value for s in MessageStatus],
        "tests": _recent_tests(session, mailing_id),
    }


def _recent_tests(session, mailing_id: int):
    """The newest test sends of the mailing, as the API answered them (a page)."""
    page = test_sends.list_test_sends(session=session, mailing_id=mailing_id, limit=TESTS_SHOWN)
    return page_public(page, test_sends.to_public)


@router.post("/{mailing_id}/test", name="ui_mailing_test")
def send_test(
    request: Request,
    session: SessionDep,
    sessions: SessionOpenerDep,
    settings: SettingsDep,
    mailing_id: int,
    form: FormDep,
) -> HTMLResponse:
    """Send the text to one phone now and show the API's answer (the "Send test" form).

    An unknown mailing is the app's 404 page; a bad phone is shown next to the field.
    No session is used until the answer is in: none holds a transaction meanwhile.
    """
    phone = text(form, "phone")
    errors, result = FormErrors(), None
    try:
        result = test_sends.send_test(
            open_session=sessions, mailing_id=mailing_id, phone=phone, post=poster(settings)
        )
    except (InvalidInput, Conflict) as exc:
        errors.add(exc)
    test = {"test_phone": phone, "test_result": result, "test_errors": errors}
    if is_htmx(request):  # HTMX swaps only 2xx answers: a refusal is shown, not dropped
        mailing = mailings.get_mailing(session=session, mailing_id=mailing_id)
        context = {"mailing": mailing, "tests": _recent_tests(session, mailing_id), **test}
        return render(request, "admin/_test_send.html", context)
    context = _page_context(session, settings, mailing_id) | test
    return render(request, "admin/mailing.html", context, 422 if errors else 200)


@router.get("/{mailing_id}/edit", name="ui_mailing_edit")
def edit_form(request: Request, session: SessionDep, mailing_id: int) -> HTMLResponse:
    mailing = mailings.get_mailing(session=session, mailing_id=mailing_id)
    zone = request.app.state.settings.default_timezone
    return _form_page(request, mailing=mailing, fields=_fields(mailing, zone), errors=FormErrors())


@router.post("/{mailing_id}/edit")
def edit(request: Request, session: SessionDep, mailing_id: int, form: FormDep) -> Response:
    mailing = mailings.get_mailing(session=session, mailing_id=mailing_id)
    errors = FormErrors()
    values = _read(form, errors)
    if not errors:
        try:
            window = values.pop("send_window")
            if "transactional_shown" not in form:  # (not offered once the mailing started)
                values["transactional"] = None
            change = MailingUpdate(**values, send_window=window, clear_window=window is None)
            mailings.update_mailing(session=session, mailing_id=mailing_id, mailing_in=change)
            return RedirectResponse(f"/admin/mailings/{mailing_id}", 303)
        except (NotifyError, ValidationError) as exc:
            session.rollback()  # nothing of a refused change is kept
            errors.add(exc)
    return _form_page(request, mailing=mailing, fields=dict(form), errors=errors, status=422)


@router.post("/{mailing_id}/{action}", name="ui_mailing_action")
def act(session: SessionDep, mailing_id: int, action: str) -> Response:
    """cancel or delete (each after its confirmation page), pause, resume, retry.

    A refusal (a mailing that has ended, say) reaches the app's error handler, which
    rolls nothing forward and shows the admin error page with its status.
    """
    step = ACTIONS.get(action)
    if step is None:
        raise NotFound(f"no action {action!r}", field="action")
    step(session=session, mailing_id=mailing_id)
    return RedirectResponse(
        "/admin/" if action == "delete" else f"/admin/mailings/{mailing_id}", 303
    )


@router.get("/{mailing_id}/delete", name="ui_mailing_delete")
def confirm_delete(request: Request, session: SessionDep, mailing_id: int) -> HTMLResponse:
    mailing = mailings.get_mailing(session=session, mailing_id=mailing_id)
    counts = stats.mailing_stats(session=session, mailing_id=mailing_id)
    context = {
        "verb": "delete",
        "what": _called(mailing),
        "detail": f"{counts.total} messages and their history go with it.",
        "action": f"/admin/mailings/{mailing.id}/delete",
        "back": f"/admin/mailings/{mailing.id}",
    }
    return render(request, "admin/confirm.html", context)


@router.get("/{mailing_id}/cancel", name="ui_mailing_cancel")
def confirm_cancel(request: Request, session: SessionDep, mailing_id: int) -> HTMLResponse:
    """Cancelling stops a mailing for good: the button leads here, and this page's form acts."""
    mailing = mailings.get_mailing(session=session, mailing_id=mailing_id)
    counts = stats.mailing_stats(session=session, mailing_id=mailing_id)
    if counts.state in (MailingState.finished, MailingState.cancelled):
        raise Conflict(f"mailing {mailing_id} is {counts.state.value}: nothing to cancel")
    unsent = counts.by_status.get(MessageStatus.pending.value, 0)
    context = {
        "verb": "cancel",
        "what": _called(mailing),
        "detail": (
            f"Nothing more is sent: its {unsent} pending messages become cancelled, and it "
            "cannot be resumed."
            if counts.total
            else "It will not start, and cannot be resumed."
        ),
        "action": f"/admin/mailings/{mailing.id}/cancel",
        "back": f"/admin/mailings/{mailing.id}",
    }
    return render(request, "admin/confirm.html", context)


def _called(mailing: Mailing) -> str:
    """How a confirmation page names a mailing: its id, and its name when it has one."""
    return f"mailing {mailing.id} ({mailing.name})" if mailing.name else f"mailing {mailing.id}"


@router.get("/{mailing_id}/messages/{message_id}", name="ui_message")
def message(request: Request, session: SessionDep, mailing_id: int, message_id: int):
    """One message and every request made for it."""
    found, attempts = stats.get_message(session=session, message_id=message_id)
    if found.mailing_id != mailing_id:
        raise NotFound(f"mailing {mailing_id} has no message {message_id}", field="id")
    mailing = mailings.get_mailing(session=session, mailing_id=mailing_id)
    context = {"message": found, "attempts": attempts, "mailing": mailing}
    return render(request, "admin/message.html", context)
