"""Talking to the external sending API: one shared keep-alive client and one retry policy.

Exceptions a request can end in:

    SendError            base
    ├── Transient        worth retrying: timeouts, connection errors, 5xx, 408, 429,
    │                    malformed bodies (``retry_after`` from a 429's Retry-After)
    ├── Rejected         the API refused this message (4xx other than 401/408/429,
    │                    or a well-formed answer with a non-zero code)
    └── Unauthorized     401: our token is wrong; no message can go out
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import httpx
from loguru import logger
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from notifyctl.config import Settings, Transport
from notifyctl.services.delivery import AttemptRecord

INLINE_ATTEMPTS = 3  # quick retries inside one claim, before the message is rescheduled
INLINE_WAIT_MULTIPLIER = 0.1  # seconds: base of the quick retries' exponential backoff
INLINE_WAIT_MAX = 2.0  # seconds: the longest quick-retry pause
MIN_REQUEST_SECONDS = 0.05  # no request starts with less time than this before the deadline
EXCERPT = 200  # characters of a response body kept per attempt


class SendError(Exception):
    #: the request this error ended, when one was made
    attempt: AttemptRecord | None = None

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transient(SendError):
    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Rejected(SendError):
    pass


class Unauthorized(SendError):
    pass


def classify(status: int, body: bytes, headers: httpx.Headers) -> None:
    """Return when the answer means "sent"; otherwise raise what it means."""
    if status == 200:
        try:
            data = json.loads(body)
        except ValueError:
            raise Transient(f"malformed body: {body[:60]!r}") from None
        code = data.get("code") if isinstance(data, dict) else None
        if type(code) is not int:
            raise Transient(f"malformed body: {body[:60]!r}")
        if code != 0:
            raise Rejected(f"code {code}: {data.get('message', '')}"[:EXCERPT])
        return
    if status == 401:
        raise Unauthorized("401: the API refused our token")
    if status in (408, 429) or status >= 500:
        raise Transient(
            f"HTTP {status}", retry_after=_retry_after(headers) if status == 429 else None
        )
    if 400 <= status < 500:
        raise Rejected(f"HTTP {status}: {body[:EXCERPT].decode(errors='replace')}")
    raise Transient(f"unexpected HTTP {status}")


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def backoff(attempt_number: int, *, maximum: float, multiplier: float = 1.0) -> float:
    """Seconds to wait before attempt ``attempt_number + 1`` (random exponential)."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    state.attempt_number = max(1, attempt_number)
    return wait_random_exponential(multiplier=multiplier, max=maximum)(state)


def _make_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """The pool under the httpx API, by measurement (bench/RESULTS.md).

    Requests go straight to the transport (``handle_async_request``), skipping the
    client's auth, redirect and cookie layers we do not use: 5,600 against 3,400
    requests/s over aiohttp's pool here. httpx's own pool slows as concurrency grows
    (encode/httpx#3215), so aiohttp's is the default.
    """
    limits = httpx.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    if settings.sender_transport is Transport.aiohttp:
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=limits)
    return httpx.AsyncHTTPTransport(limits=limits)


class Sender:
    """Posts messages to ``{NOTIFY_SENDER_URL}/{msgId}`` with the retry policy.

    ``seconds_until`` tells how much real time is left before a deadline (the daemon's
    clock); ``wait_scale`` multiplies every retry pause (0 in tests: no waits).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        seconds_until: Callable[[datetime], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wait_scale: float = 1.0,
    ) -> None:
        self.url = settings.sender_url.rstrip("/")
        self.request_timeout = settings.request_timeout
        self._transport = _make_transport(settings)
        self._headers = httpx.Headers(
            {
                "Authorization": f"Bearer {settings.sender_token.get_secret_value()}",
                "Content-Type": "application/json",
            }
        )
        self._seconds_until = seconds_until
        self._sleep = sleep
        self._wait_scale = wait_scale

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def post(
        self, message_id: int, phone: str, text: str, *, deadline: datetime
    ) -> AttemptRecord:
        """One request, never outliving ``deadline``. Raises a SendError unless sent.

        The raised error carries the attempt record in ``.attempt``.
        """
        started_at = datetime.now(UTC)
        left = self._seconds_until(deadline)
        if left < MIN_REQUEST_SECONDS:
            raise Transient("no time left before the mailing ends")
        timeout = min(self.request_timeout, left)
        request = httpx.Request(
            "POST",
            f"{self.url}/{message_id}",
            headers=self._headers,
            content=json.dumps({"id": message_id, "phone": int(phone), "text": text}).encode(),
            extensions={"timeout": httpx.Timeout(timeout).as_dict()},
        )
        began = time.perf_counter()
        status: int | None = None
        body = b""
        response = None
        try:
            # asyncio.timeout bounds the whole exchange; httpx's timeouts are per phase.
            async with asyncio.timeout(timeout):
                response = await self._transport.handle_async_request(request)
                body = await response.aread()
                status = response.status_code
            classify(status, body, response.headers)
        except SendError as exc:
            exc.attempt = self._record(started_at, began, status, body, exc.reason)
            raise
        except (TimeoutError, httpx.TimeoutException):
            exc = Transient(f"timed out after {timeout:.3f}s")
            exc.attempt = self._record(started_at, began, status, body, exc.reason)
            raise exc from None
        except (httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
            # (aiohttp errors the transport does not map to httpx ones are transient too)
            error = Transient(f"{type(exc).__name__}: {exc}"[:EXCERPT])
            error.attempt = self._record(started_at, began, status, body, error.reason)
            raise error from None
        finally:
            if response is not None and not response.is_closed:
                # Cut short (timeout): hand the connection back instead of leaking it.
                with contextlib.suppress(Exception):
                    await response.aclose()
        return self._record(started_at, began, status, body, None)

    @staticmethod
    def _record(started_at, began, status, body: bytes, error: str | None) -> AttemptRecord:
        return AttemptRecord(
            started_at=started_at,
            duration_ms=(time.perf_counter() - began) * 1000,
            http_status=status,
            response_excerpt=body[:EXCERPT].decode(errors="replace") if body else None,
            error=error,
        )

    def _pause(self, tries_so_far: int, error: BaseException | None) -> float:
        """Seconds before the next quick retry: jittered exponential, at least Retry-After."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
        state.attempt_number = tries_so_far
        pause = wait_random_exponential(multiplier=INLINE_WAIT_MULTIPLIER, max=INLINE_WAIT_MAX)(
            state
        )
        if isinstance(error, Transient) and error.retry_after is not None:
            pause = max(pause, error.retry_after)
        return pause * self._wait_scale

    async def deliver(
        self,
        message_id: int,
        phone: str,
        text: str,
        *,
        deadline: datetime,
        attempts: list[AttemptRecord],
        may_try: Callable[[], bool],
        max_tries: int = INLINE_ATTEMPTS,
        log=logger,
    ) -> None:
        """Send with quick retries for transient failures; every attempt goes to ``attempts``.

        Stops retrying after ``max_tries`` (at most INLINE_ATTEMPTS), when the next try
        could not finish before ``deadline``, or when ``may_try`` says no (the circuit
        breaker). Raises the last SendError when the message was not sent.
        """
        tries = max(1, min(max_tries, INLINE_ATTEMPTS))

        async def one_try() -> None:
            try:
                attempts.append(await self.post(message_id, phone, text, deadline=deadline))
            except SendError as exc:
                if exc.attempt is not None:
                    attempts.append(exc.attempt)
                raise

        # Most requests succeed at once: the retry machinery is built only after a failure.
        try:
            await one_try()
            return
        except Transient as exc:
            first_error = exc
        if tries == 1 or not may_try():
            raise first_error

        def out_of_time(state: RetryCallState) -> bool:
            return self._seconds_until(deadline) - state.upcoming_sleep < MIN_REQUEST_SECONDS

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self._pause(state.attempt_number + 1, error)

        def before_sleep(state: RetryCallState) -> None:
            log.info(
                "attempt {n} failed ({reason}); retrying in {pause:.2f}s",
                n=state.attempt_number + 1,
                reason=getattr(state.outcome.exception(), "reason", ""),
                pause=state.upcoming_sleep,
            )

        first_pause = self._pause(1, first_error)
        if self._seconds_until(deadline) - first_pause < MIN_REQUEST_SECONDS:
            raise first_error
        log.info(
            "attempt 1 failed ({reason}); retrying in {pause:.2f}s",
            reason=first_error.reason,
            pause=first_pause,
        )
        await self._sleep(first_pause)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Transient),
            wait=wait,
            stop=stop_after_attempt(tries - 1) | out_of_time | (lambda _: not may_try()),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await one_try()
