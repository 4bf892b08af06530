"""One error shape for every failure: ``{"detail": message, "code": kind, "field": name}``.

Input that is wrong is a 4xx naming the field. A 5xx tells the caller nothing about our
insides (no database URL, user or host, no exception text): its detail is in the log,
under the request id that the answer's ``X-Request-ID`` header carries.
"""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from loguru import logger
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from notifyctl.errors import (
    Conflict,
    DataRefused,
    InvalidInput,
    NotFound,
    NotifyError,
    StorageError,
    Unavailable,
)

#: The most specific kinds first: a DataRefused is also a StorageError.
STATUS = {
    InvalidInput: 422,
    DataRefused: 422,
    NotFound: 404,
    Conflict: 409,
    StorageError: 503,
    Unavailable: 502,
}
UI_PREFIX = "/admin"
CODES = {
    422: "invalid_input",
    404: "not_found",
    409: "conflict",
    500: "internal_error",
    503: "unavailable",
    502: "upstream_failed",
}
#: What a caller learns of a database failure (the log has the rest).
DATABASE_UNAVAILABLE = "the database is unavailable; try again later"
DATA_REFUSED = "a value given cannot be stored in the database"
INTERNAL_ERROR = "internal error; it is in the server's log under request id {rid}"


class ErrorBody(BaseModel):
    """What every 4xx and 5xx answer carries."""

    detail: str
    code: str
    field: str | None = None


ERROR_RESPONSES = {
    401: {"model": ErrorBody, "description": "No token, or an unknown or revoked one"},
    422: {"model": ErrorBody, "description": "A field is invalid; `field` names it"},
}


def printable(text: str) -> str:
    """``text`` with what has no UTF-8 form (a lone surrogate a caller sent) escaped, so
    that echoing a caller's field name or value can never break the answer itself."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _body(status: int, detail: str, field: str | None = None) -> dict:
    return {
        "detail": printable(detail),
        "code": CODES.get(status, f"http_{status}"),
        "field": printable(field) if field is not None else None,
    }


def _page(request: Request, status: int, message: str) -> Response | None:
    """The admin UI's error page for its own paths (it answers people, not programs)."""
    if not request.url.path.startswith(UI_PREFIX):
        return None
    from web.ui.templating import render

    return render(
        request, "admin/error.html", {"status": status, "message": printable(message)}, status
    )


def _public(exc: NotifyError) -> tuple[str, str | None]:
    """What the caller is told: the message and field, except for database failures,
    whose message names the database; those are logged and answered in general terms."""
    if isinstance(exc, DataRefused):
        logger.warning("the database refused a value: {error}", error=str(exc))
        return DATA_REFUSED, exc.field
    if isinstance(exc, StorageError):
        logger.error("database failure: {error}", error=str(exc))
        return DATABASE_UNAVAILABLE, None
    return exc.message, exc.field


def unexpected(request: Request, exc: Exception, rid: str) -> Response:
    """A 500 for an exception no handler knew: logged with its traceback (the request id is
    in the logging context), answered without a word about it."""
    logger.opt(exception=exc).error(
        "unexpected {kind} answering {method} {path}",
        kind=type(exc).__name__,
        method=request.method,
        path=request.url.path,
    )
    detail = INTERNAL_ERROR.format(rid=rid)
    try:
        page = _page(request, 500, detail)
    except Exception:  # (the page itself may be what fails)
        page = None
    return page or JSONResponse(_body(500, detail), 500)


def install(app: FastAPI) -> None:
    """Map domain errors, validation errors and HTTP errors to ``ErrorBody``."""

    @app.exception_handler(NotifyError)
    async def domain_error(request: Request, exc: NotifyError) -> Response:
        status = next((s for kind, s in STATUS.items() if isinstance(exc, kind)), 400)
        message, field = _public(exc)
        page_message = f"{field}: {message}" if field else message
        return _page(request, status, page_message) or JSONResponse(
            _body(status, message, field), status
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problem = exc.errors()[0]
        if page := _page(request, 404, "There is no such page: a number in the address is wrong."):
            return page
        location = [str(part) for part in problem.get("loc", ()) if part not in ("body",)]
        field = ".".join(location[1:] if location[:1] in (["query"], ["path"]) else location)
        return JSONResponse(_body(422, problem.get("msg", "invalid"), field or None), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if page := _page(request, exc.status_code, str(exc.detail)):
            return page
        return JSONResponse(
            _body(exc.status_code, str(exc.detail)), exc.status_code, headers=exc.headers
        )
