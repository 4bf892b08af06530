"""The API's Prometheus metrics and its request log line, recorded by one middleware.

Every request gets both, a 5xx too: an exception that no handler knew becomes a 500
here (``web.errors.unexpected``: logged with its traceback), inside the request id's
logging context, and is counted with ``status="500"``.
"""

import re
import time
import uuid

from fastapi import FastAPI, Request, Response
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from notifyctl import metrics as standard
from web import errors

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
#: Path parameters that name a mailing, message or client, bound to the request's lines.
ID_PARAMS = ("mailing_id", "message_id", "client_id")


class HttpMetrics:
    """Requests by route and status, and their latency; one registry per app, which
    also holds the standard ``process_*`` and ``python_*`` series and
    ``notifyctl_build_info`` (``notifyctl.metrics``)."""

    def __init__(self) -> None:
        self.registry = standard.registry()
        self.requests = Counter(
            "notifyctl_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "notifyctl_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _route(request: Request) -> str:
    """The route template ("/api/v1/mailings/{mailing_id}"), never the raw path: the
    label stays bounded. (A nested router's route knows only its own part of the path.)"""
    if request.scope.get("route") is None:
        return "unmatched"
    names = {str(value): name for name, value in request.scope.get("path_params", {}).items()}
    parts = request.url.path.split("/")
    return "/".join(f"{{{names[part]}}}" if part in names else part for part in parts)


#: A caller's X-Request-ID is kept only when it is this plain; otherwise a new one is made.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def install(app: FastAPI) -> HttpMetrics:
    """Add the middleware (request id, metrics, one log line per request) and /metrics."""
    metrics = HttpMetrics()

    @app.middleware("http")
    async def observe(request: Request, call_next) -> Response:
        given = request.headers.get("x-request-id", "")
        rid = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        began = time.perf_counter()
        with logger.contextualize(request_id=rid):
            try:
                response = await call_next(request)
            except Exception as exc:  # no handler knew it: still a logged, counted answer
                response = errors.unexpected(request, exc, rid)
            elapsed = time.perf_counter() - began
            route = _route(request)
            ids = {
                key: int(value)
                for key, value in request.scope.get("path_params", {}).items()
                if key in ID_PARAMS and str(value).isdigit()
            }
            if route != "/metrics":
                logger.bind(**ids).log(
                    "ERROR" if response.status_code >= 500 else "INFO",
                    "{method} {path} -> {http_status} in {duration_ms} ms",
                    method=request.method,
                    path=request.url.path,  # no query string: a login link carries a token
                    http_status=response.status_code,  # the daemon's name for the same thing
                    duration_ms=round(elapsed * 1000, 1),
                )
        response.headers["X-Request-ID"] = rid
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        metrics.latency.labels(request.method, route).observe(elapsed)
        return response

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        tags=["operations"],
        response_class=Response,
        responses={
            200: {
                "content": {CONTENT_TYPE_LATEST.split(";")[0]: {}},
                "description": "The text exposition",
            }
        },
    )
    def prometheus() -> Response:
        """Requests by route and status, and their latency (docs/metrics.md)."""
        return metrics.exposition()

    return metrics
