"""The mock sending API: ``POST /v1/send/{msgId}`` plus its control routes."""

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mock.auth import DEMO_SECRET, TokenChecker
from mock.faults import FaultPlan, Faults, Outcome
from mock.received import INT64, ReceivedLog

OK_BODY = b'{"code":0,"message":"OK"}'
GARBAGE_BODIES = (
    b'{"code":0,"mess',  # cut short
    b"<html><body>502 Bad Gateway</body></html>",
    b'{"status":"queued"}',  # valid JSON, wrong shape
    b'{"code":"zero","message":"OK"}',
    b"",
)
ERROR_CODES = (500, 502, 503)
JSON = "application/json"


@dataclass
class MockState:
    """Everything the mock remembers; one per app."""

    plan: FaultPlan
    checker: TokenChecker
    received: ReceivedLog = field(default_factory=ReceivedLog)


class MockApp(FastAPI):
    """FastAPI that hands the server's raw ``send`` to the routes, so one can drop a connection."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["mock.raw_send"] = send
        await super().__call__(scope, receive, send)


def create_app(
    *, secret: str = DEMO_SECRET, faults: Faults | None = None, seed: int | None = None
) -> MockApp:
    """Build the mock. ``secret`` signs valid tokens; with the default the demo token works."""
    app = MockApp(
        title="notifyctl mock sending API",
        description="Imitates the external API: slow, flaky and sometimes down, on demand.",
        docs_url="/docs/",
    )
    state = MockState(plan=FaultPlan(faults, seed=seed), checker=TokenChecker(secret))
    app.state.mock = state

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming each field, without the value given: NaN, infinity or a lone
        surrogate have no JSON form, and echoing them made a 500 of a 422."""
        problems = [
            {
                "loc": [_printable(part) for part in problem.get("loc", ())],
                "msg": _printable(problem.get("msg", "invalid")),
                "type": problem.get("type", "value_error"),
            }
            for problem in exc.errors()
        ]
        return JSONResponse({"detail": problems}, 422)

    def authorise(authorization: str | None) -> None:
        reason = state.checker.check(authorization, now=time.time())
        if reason is not None:
            raise HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})

    @app.post("/v1/send/{msg_id}", summary="Send one message")
    async def send_message(
        msg_id: int, request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        """Accept ``{"id", "phone", "text"}``; answers ``{"code": 0, "message": "OK"}``."""
        now = time.time()
        authorise(authorization)
        message = _parse_body(await request.body(), msg_id)
        plan = state.plan
        if plan.in_outage(now):
            return Response(plan.error_body(b'{"error":"outage"}'), 503, media_type=JSON)
        if plan.over_rate():
            return Response(
                plan.error_body(b'{"error":"rate limited"}'),
                429,
                {"Retry-After": f"{plan.faults.retry_after:g}"},
                media_type=JSON,
            )
        delay = plan.delay()
        if delay:
            await asyncio.sleep(delay)
            if await request.is_disconnected():
                # The sender gave up (its timeout): nothing was accepted, nothing is logged.
                return Response(status_code=499)
        outcome = plan.outcome()
        state.received.record(
            msg_id, message[0], message[1], at=time.time(), accepted=outcome is Outcome.ok
        )
        if outcome is Outcome.ok:
            return Response(OK_BODY, media_type=JSON)
        if outcome is Outcome.error:
            body = plan.error_body(b'{"error":"internal"}')
            return Response(body, plan.pick(ERROR_CODES), media_type=JSON)
        if outcome is Outcome.garbage:
            return Response(plan.pick(GARBAGE_BODIES), 200, media_type=JSON)
        await _drop(request)
        return Response(status_code=499)

    @app.get("/v1/_received", summary="What the mock received, per message id")
    async def received(
        authorization: Annotated[str | None, Header()] = None,
        msg_id: int | None = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict:
        """``{"total", "items": [{msg_id, phone, text, first_at, last_at, count, accepted}]}``.

        Times are ISO-8601 UTC of the moment the mock answered (after any latency):
        the moment the message counts as received.
        """
        authorise(authorization)
        return state.received.page(msg_id=msg_id, limit=limit, offset=offset)

    @app.delete("/v1/_received", status_code=204, summary="Forget everything received")
    async def forget(authorization: Annotated[str | None, Header()] = None) -> Response:
        authorise(authorization)
        state.received.clear()
        return Response(status_code=204)

    @app.get("/v1/_faults", summary="The faults in force")
    async def get_faults(authorization: Annotated[str | None, Header()] = None) -> Faults:
        authorise(authorization)
        return state.plan.faults

    @app.put("/v1/_faults", summary="Change some faults now")
    async def put_faults(
        changes: Faults, authorization: Annotated[str | None, Header()] = None
    ) -> Faults:
        """Any subset of the fields; the others keep their values."""
        authorise(authorization)
        state.plan.apply(changes)
        return state.plan.faults

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict:
        return {
            "status": "ok",
            "received": len(state.received),
            "requests": state.received.requests,
        }

    return app


def _parse_body(raw: bytes, msg_id: int) -> tuple[int, str]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "body must be a JSON object")
    identifier, phone, text = body.get("id"), body.get("phone"), body.get("text")
    if not INT64[0] <= msg_id <= INT64[1]:
        raise HTTPException(400, "msgId must fit in 64 bits")
    if type(identifier) is not int or identifier != msg_id:
        raise HTTPException(400, f"body id {identifier!r} differs from the path's {msg_id}")
    if type(phone) is not int or not 70_000_000_000 <= phone <= 79_999_999_999:
        raise HTTPException(400, "phone must be an integer 7XXXXXXXXXX")
    if not isinstance(text, str) or not text:
        raise HTTPException(400, "text must be a non-empty string")
    if _printable(text) != text:  # JSON's "\ud800": no text, and no JSON answer could show it
        raise HTTPException(400, "text must be Unicode text (it has a lone surrogate)")
    return phone, text


def _printable(part: object) -> str | int:
    """A location part or message as JSON can carry it: a lone surrogate is escaped."""
    if isinstance(part, int):
        return part
    return str(part).encode("utf-8", "backslashreplace").decode("utf-8")


async def _drop(request: Request) -> None:
    """Close the TCP connection without an answer (uvicorn's transport, reached via ``send``)."""
    raw_send = request.scope.get("mock.raw_send")
    transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
    if transport is None:  # not under uvicorn: the best we can do is an error
        raise HTTPException(500, "connection drop not supported by this server")
    transport.abort()
    await asyncio.sleep(0)  # let the server see the connection is gone
