"""One error shape for every failure: ``{"detail": message, "code": kind, "field": name}``."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from notifyctl.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    NotifyError,
    StorageError,
    Unavailable,
)

STATUS = {InvalidInput: 422, NotFound: 404, Conflict: 409, StorageError: 503, Unavailable: 502}
UI_PREFIX = "/admin"
CODES = {
    422: "invalid_input",
    404: "not_found",
    409: "conflict",
    503: "unavailable",
    502: "upstream_failed",
}


class ErrorBody(BaseModel):
    """What every 4xx and 5xx answer carries."""

    detail: str
    code: str
    field: str | None = None


ERROR_RESPONSES = {
    401: {"model": ErrorBody, "description": "No token, or an unknown or revoked one"},
    422: {"model": ErrorBody, "description": "A field is invalid; `field` names it"},
}


def _body(status: int, detail: str, field: str | None = None) -> dict:
    return {"detail": detail, "code": CODES.get(status, f"http_{status}"), "field": field}


def _page(request: Request, status: int, message: str) -> Response | None:
    """The admin UI's error page for its own paths (it answers people, not programs)."""
    if not request.url.path.startswith(UI_PREFIX):
        return None
    from web.ui.templating import render

    return render(request, "admin/error.html", {"status": status, "message": message}, status)


def install(app: FastAPI) -> None:
    """Map domain errors, validation errors and HTTP errors to ``ErrorBody``."""

    @app.exception_handler(NotifyError)
    async def domain_error(request: Request, exc: NotifyError) -> Response:
        status = next((s for kind, s in STATUS.items() if isinstance(exc, kind)), 400)
        return _page(request, status, str(exc)) or JSONResponse(
            _body(status, exc.message, exc.field), status
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
