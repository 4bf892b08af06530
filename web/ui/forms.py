"""Reading HTML forms and turning service errors into messages next to their fields."""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from pydantic import ValidationError
from starlette.datastructures import FormData

from notifyctl.errors import InvalidInput, NotifyError, quoted
from notifyctl.services import validation

#: Service field names (as the REST API reports them) -> the form control that shows them.
FIELD_ALIASES = {
    "filter.operator_codes": "operator_codes",
    "filter.tags": "tags",
    "send_window": "window_start",
    "send_window.start": "window_start",
    "send_window.end": "window_end",
    "state": "_form",
    "id": "_form",
}


async def read_form(request: Request) -> AsyncIterator[FormData]:
    """The posted form, read on the event loop (an upload spooled to a temporary file) and
    closed after the answer.

    Reading a body needs ``await``; the database work after it must not run on the event
    loop. With the form as a dependency, a page handler can be a plain ``def``, which
    FastAPI runs in its thread pool.
    """
    form = await request.form()  # the one check_csrf read, when it did
    try:
        yield form
    finally:
        await form.close()


FormDep = Annotated[FormData, Depends(read_form)]


class FormErrors(dict[str, str]):
    """Messages by form field; ``_form`` holds those that belong to no one field."""

    def add(self, exc: NotifyError | ValidationError) -> None:
        if isinstance(exc, ValidationError):
            for problem in exc.errors():
                field = ".".join(str(part) for part in problem.get("loc", ()))
                self.setdefault(FIELD_ALIASES.get(field, field or "_form"), problem["msg"])
            return
        field = FIELD_ALIASES.get(exc.field or "", exc.field or "_form")
        self.setdefault(field, exc.message)


def text(form: FormData, name: str) -> str:
    """A text field's value, stripped; an absent field or an upload reads as empty."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def words(form: FormData, name: str) -> list[str]:
    """A comma- or space-separated list."""
    return [part for part in text(form, name).replace(",", " ").split() if part]


def local_datetime(form: FormData, name: str, zone: str) -> datetime:
    """A ``datetime-local`` value read in ``zone``; raises InvalidInput naming the field.

    Whether the time is in range is the service's check (it names the field too).
    """
    raw = text(form, name)
    if not raw:
        raise InvalidInput("is required", field=name)
    try:
        naive = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{quoted(raw)} is not a date and time", field=name) from None
    if naive.tzinfo is not None:
        return naive
    return naive.replace(tzinfo=ZoneInfo(validation.timezone(zone, field="zone")))
