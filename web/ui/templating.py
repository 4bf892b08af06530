"""Jinja2 templates of the admin UI and the context every page gets."""

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from notifyctl.config import Settings
from notifyctl.render import STATUS_ORDER

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def make_templates(settings: Settings) -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES)
    zone = ZoneInfo(settings.default_timezone)

    def local(value, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return value.astimezone(zone).strftime(fmt) if value else "—"

    templates.env.filters["local"] = local
    templates.env.globals.update(
        STATUSES=STATUS_ORDER, display_zone=settings.default_timezone, app_name="notifyctl"
    )
    return templates


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    """Render ``template`` with the signed-in user and the session's CSRF token."""
    from web.ui.auth import csrf_token

    base = {"user": request.session.get("user"), "csrf": csrf_token(request)}
    return request.app.state.templates.TemplateResponse(
        request, template, base | (context or {}), status_code=status
    )


def is_htmx(request: Request) -> bool:
    """Whether HTMX asked for a fragment rather than a page."""
    return request.headers.get("hx-request") == "true"
