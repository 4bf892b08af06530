"""The FastAPI application: REST API under ``/api/v1``, Swagger UI at ``/docs/``, ReDoc at
``/redoc/`` (both from our own files: ``web.docs``)."""

import gc
import sys

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import RedirectResponse
from sqlalchemy.engine import Engine

from notifyctl import __version__
from notifyctl.config import Settings, get_settings
from notifyctl.db import current_revision, ensure_schema, make_engine
from web import docs, errors, limits, metrics, ui
from web.api import audit, clients, mailings, stats
from web.deps import require_caller
from web.oidc import OidcVerifier
from web.ui.headers import SecurityHeaders

#: seconds a thread waiting for the GIL lets the running one keep it (CPython's default: 0.005)
SWITCH_INTERVAL = 0.001

DESCRIPTION = """
Manage clients and mailings, and read what happened to every message.

Every route needs `Authorization: Bearer <token>`: an API token from
`notifyctl token create NAME`, or the login token that `notifyctl api` prints on start.
Errors share one shape: `{"detail": "...", "code": "invalid_input" | "not_found" |
"conflict" | ..., "field": "name of the field, when one is at fault"}`.
"""


def create_app(
    *,
    settings: Settings | None = None,
    engine: Engine | None = None,
    login_token: str | None = None,
) -> FastAPI:
    """Build the app. Tests pass their own settings and engine."""
    settings = settings or get_settings()
    if engine is None:
        engine = make_engine(settings.database_url)
        ensure_schema(engine)
    app = FastAPI(
        title="notifyctl",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # web.docs serves them from our own files, not a CDN
        redoc_url=None,
        responses=errors.ERROR_RESPONSES,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.login_token = login_token
    app.state.oidc = OidcVerifier.from_settings(settings)
    errors.install(app)
    # First of the middlewares, so the innermost: the request log and metrics see its 413s.
    limits.install(app, settings)

    api = APIRouter(
        prefix=limits.API_PREFIX,
        dependencies=[Depends(require_caller)],
        responses={
            413: {
                "model": errors.ErrorBody,
                "description": "The body is larger than `NOTIFY_MAX_BODY_BYTES`",
            }
        },
    )
    for module in (clients, mailings, stats, audit):
        api.include_router(module.router)
    app.include_router(api)

    ui.install(app, settings)
    docs.install(app)

    app.state.metrics = metrics.install(app)
    app.add_middleware(SecurityHeaders)  # last, so outermost: a 500 carries the headers too

    @app.get("/admin", include_in_schema=False)
    def admin_without_slash() -> RedirectResponse:
        return RedirectResponse("/admin/")

    @app.get("/healthz", summary="Liveness and database check", tags=["operations"])
    def healthz() -> dict:
        """`{"status": "ok", "schema": revision}`; 503 when the database is unreachable."""
        return {"status": "ok", "schema": current_revision(engine)}

    return app


#: How ``notifyctl api`` serves the app. h11, not httptools: h11 refuses a request line
#: and headers over 16 KiB (431/400) where httptools read a 100 MB query string (+200 MB)
#: or a hundred 1 MB headers, anonymous, before any middleware could say no. The API is
#: not the hot path (the daemon is), so h11's pure-Python parsing costs little here.
SERVER_OPTIONS = {"http": "h11", "h11_max_incomplete_event_size": 16 * 1024}


def prepare_to_serve() -> None:
    """Tune this process for answering requests while an admin UI import runs in a thread;
    call it once, just before serving.

    - What is loaded by now (modules, the app, its routes) lives as long as the process.
      Left in the garbage collector's oldest generation, it was walked by every full pass,
      with the GIL held: 60-95 ms every few thousand rows of a big import, in which no
      other request was answered. Frozen, a full pass walks the import's own rows (5-9 ms).
    - A request takes the GIL back a dozen times (event loop, worker thread, each database
      round trip); each time, a busy import thread keeps it for up to the switch interval.
      At 1 ms instead of CPython's 5 ms, the slowest /healthz during a 200,000-row import
      into PostgreSQL went from 76-130 ms to 36-55 ms (`python -m bench --only limits`).
    """
    gc.collect()  # so that no garbage is frozen with them
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL)
