"""One request to the external sending API, outside the daemon: a test send.

The daemon's ``daemon/sender.py`` keeps a pool of keep-alive connections, retries and
caps every request at its mailing's end; the REST API may not import it (``web`` and
``daemon`` are independent), and an operator's test send needs none of that: one
request, one try, a short total timeout (``NOTIFY_REQUEST_TIMEOUT``), the answer at once.
The request is the daemon's, byte for byte (``POST {NOTIFY_SENDER_URL}/{msgId}``, bearer
token, ``{"id", "phone", "text"}``; ``tests/test_sendapi.py`` compares the two), and
an answer counts as accepted exactly when the daemon would record the message ``sent``.

Nothing here raises for what the API does: every outcome (a refusal, a 5xx, a timeout, a
refused connection) is an ``AttemptRecord`` whose ``error`` says why it was not accepted.
"""

import asyncio
import functools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

import httpx

from notifyctl.config import Settings
from notifyctl.services.delivery import AttemptRecord

EXCERPT = 200  # characters of the answer's body kept, as for a message's attempt
BODY_CAP = 64 * 1024  # bytes of a 200's body read at most (as the daemon reads)
ERROR_BODY_CAP = 4 * 1024  # bytes of any other answer's body read: the excerpt needs 200


def message_body(message_id: int, phone: str, text: str) -> bytes:
    """The JSON the API takes: ``{"id": <msgId>, "phone": <int>, "text": <str>}``."""
    return b'{"id": %d, "phone": %d, "text": %s}' % (message_id, int(phone), _json_text(text))


@functools.lru_cache(maxsize=64)
def _json_text(text: str) -> bytes:
    """A mailing's text as a JSON string: the same for each of its messages, encoded once."""
    return json.dumps(text).encode()


def build_request(settings: Settings, *, message_id: int, phone: str, text: str) -> httpx.Request:
    """``POST {NOTIFY_SENDER_URL}/{message_id}`` sending ``text`` to ``phone``: the
    daemon's request (URL, headers, body), which nothing is added to on the way (it goes
    straight to a transport, as the daemon's do: no client headers, no proxy variables)."""
    body = message_body(message_id, phone, text)
    timeout = settings.request_timeout
    return httpx.Request(
        "POST",
        f"{settings.sender_url.rstrip('/')}/{message_id}",
        headers={
            "Authorization": f"Bearer {settings.sender_token.get_secret_value()}",
            "Content-Type": "application/json",
        },
        content=body,
        extensions={"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)},
    )


class Reading(StrEnum):
    """What a 200's body says (``read_body``)."""

    accepted = "accepted"  #: ``{"code": 0}``
    malformed = "malformed"  #: not JSON, or no integer ``code``: the daemon tries again
    refused = "refused"  #: a well-formed answer with another code: the message fails


def read_body(body: bytes) -> tuple[Reading, str | None]:
    """A 200's body read as the API's verdict, with the reason when it is no acceptance.

    The one reading of an answer: the daemon's (``daemon.sender.classify``) and a test
    send's (``refusal``) alike.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # (nested deeper than json.loads recurses)
        return Reading.malformed, f"malformed body: {body[:60]!r}"
    code = data.get("code") if isinstance(data, dict) else None
    if type(code) is not int:
        return Reading.malformed, f"malformed body: {body[:60]!r}"
    if code != 0:
        return Reading.refused, f"code {code}: {data.get('message', '')}"[:EXCERPT]
    return Reading.accepted, None


def refusal(status: int, body: bytes) -> str | None:
    """Why an answer does not accept the message; None when it does (HTTP 200 with
    ``{"code": 0}``), as ``daemon.sender.classify`` decides."""
    if status == 200:
        return read_body(body)[1]
    if status == 401:
        return "HTTP 401: the API refused our token (NOTIFY_SENDER_TOKEN)"
    return f"HTTP {status}"


def post_once(settings: Settings, *, message_id: int, phone: str, text: str) -> AttemptRecord:
    """Send once, with no retry, within ``NOTIFY_REQUEST_TIMEOUT`` seconds in all."""
    return asyncio.run(_post(settings, message_id=message_id, phone=phone, text=text))


def poster(settings: Settings) -> Callable[[int, str, str], AttemptRecord]:
    """``post_once`` with the settings bound: what ``services.test_sends`` calls."""

    def post(message_id: int, phone: str, text: str) -> AttemptRecord:
        return post_once(settings, message_id=message_id, phone=phone, text=text)

    return post


async def _post(settings: Settings, *, message_id: int, phone: str, text: str) -> AttemptRecord:
    request = build_request(settings, message_id=message_id, phone=phone, text=text)
    timeout = settings.request_timeout
    started_at = datetime.now(UTC)
    began = time.perf_counter()
    status: int | None = None
    answer = b""

    def record(error: str | None) -> AttemptRecord:
        return AttemptRecord(
            started_at=started_at,
            duration_ms=(time.perf_counter() - began) * 1000,
            http_status=status,
            response_excerpt=answer[:EXCERPT].decode(errors="replace") if answer else None,
            error=error,
        )

    try:
        # asyncio.timeout bounds the whole exchange; httpx's timeouts are per phase.
        async with asyncio.timeout(timeout), httpx.AsyncHTTPTransport() as transport:
            response = await transport.handle_async_request(request)
            try:
                status = response.status_code
                cap = BODY_CAP if status == 200 else ERROR_BODY_CAP
                async for chunk in response.aiter_raw():
                    answer += chunk
                    if len(answer) >= cap:  # a huge answer costs no more than the cap
                        answer = answer[:cap]
                        break
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        return record(f"timed out after {timeout:g}s (NOTIFY_REQUEST_TIMEOUT)")
    except (httpx.HTTPError, OSError) as exc:
        return record(f"{type(exc).__name__}: {exc}"[:EXCERPT])
    return record(refusal(status, answer))
