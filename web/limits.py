"""Bounded request bodies, and REST callers known before a byte of their body is read.

One pure ASGI middleware, inside the request log and metrics (its refusals are logged and
counted like any answer) and outside everything that reads a body:

1. Under ``/api/v1`` the bearer token is checked first (``web.deps.require_caller``, in a
   worker thread: it may query the database). FastAPI reads and parses a route's body
   *before* it solves the route's dependencies, so the dependency alone came too late: a
   100 MB anonymous body was read, parsed, and only then refused. Now a caller that is
   refused reaches its route with an empty body, and the route's own ``require_caller``
   answers it (401, or 503 when the database is down) as before; the client's body is
   never read. A caller that is let in is kept in the request's state, where
   ``require_caller`` finds it instead of checking the token twice.
2. Every body is counted as the app reads it: a ``Content-Length`` over the limit is
   refused before the first byte is read, a chunked body as soon as it passes the limit.
   The refusal is an ``HTTPException(413)`` raised from ``receive``, so the app's own
   handler answers it: the JSON error shape under ``/api/v1``, the error page in the
   admin UI. The limit is ``NOTIFY_MAX_BODY_BYTES``, or ``NOTIFY_MAX_UPLOAD_BYTES`` for
   the file uploads in ``UPLOAD_PATHS``.

Starlette's own ``RequestBodyLimitMiddleware`` (FastAPI's ``max_body_size``) counts bytes
too, but answers in plain text, and it turns any answer to an oversize declared body into
its 413: an anonymous caller would be told the limit instead of being refused.
"""

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifyctl.config import Settings
from web.deps import bearer, require_caller

API_PREFIX = "/api/v1"
#: Routes whose body is a file upload: bounded by NOTIFY_MAX_UPLOAD_BYTES instead.
UPLOAD_PATHS = frozenset({"/admin/clients/import"})


class BodyTooLarge(HTTPException):
    """A request body over its limit: 413, before it is read or while it streams."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {_size(limit)}")


class RequestLimits:
    """The middleware: authenticate REST callers first, then bound every body."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        if (path == API_PREFIX or path.startswith(API_PREFIX + "/")) and not (await _let_in(scope)):
            await self.app(scope, _no_body(), send)
            return
        limit = self.max_upload_bytes if path in UPLOAD_PATHS else self.max_body_bytes
        await self.app(scope, _bounded(receive, limit, _declared_length(scope)), send)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the middleware; call it before the other middlewares so that it sits inside them."""
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )


async def _let_in(scope: Scope) -> bool:
    """Whether the request's bearer token is good; if so its caller goes in the state."""
    request = Request(scope)
    try:
        credentials = await bearer(request)
        request.state.caller = await run_in_threadpool(require_caller, request, credentials)
    except Exception as exc:  # refused, or the check failed: the route answers with it
        request.state.refusal = exc  # (not checked twice: a slow provider costs one wait)
        return False
    return True


def _no_body() -> Receive:
    """``receive`` for a refused caller: an empty body, then (as ASGI servers do) a disconnect."""
    given = False

    async def receive() -> Message:
        nonlocal given
        if given:
            return {"type": "http.disconnect"}
        given = True
        return {"type": "http.request", "body": b"", "more_body": False}

    return receive


def _bounded(receive: Receive, limit: int, declared: int | None) -> Receive:
    """``receive`` refusing a body over ``limit`` bytes: declared so, before reading any of
    it; chunked, as soon as the bytes read pass the limit (nothing more is read)."""
    seen = 0

    async def receive_within_limit() -> Message:
        nonlocal seen
        if declared is not None and declared > limit:
            raise BodyTooLarge(limit)
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return receive_within_limit


def _route_path(scope: Scope) -> str:
    """The path the app routes on: without the ``root_path`` a proxy may put in front."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def _size(count: int) -> str:
    """1048576 -> "1 MiB": a limit as people write it."""
    for unit, factor in (("MiB", 2**20), ("KiB", 2**10)):
        if count % factor == 0:
            return f"{count // factor} {unit}"
    return f"{count:,} bytes"
