"""Talking to the external sending API: one shared keep-alive client, requests that never
outlive the mailing's end or the claim's lease, bodies read up to a cap.

Exceptions a request can end in (``failure`` names the kind for ``daemon.rules``):

    SendError            base
    ├── Transient        worth retrying: timeouts, connection errors, 5xx, 408, 429,
    │                    malformed bodies (``retry_after`` from a 429's Retry-After)
    ├── Rejected         the API refused this message (4xx other than 401/408/429,
    │                    or a well-formed answer with a non-zero code)
    └── Unauthorized     401: our token is wrong; no message can go out
"""

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import httpx
from loguru import logger
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from daemon import rules
from daemon.clock import SystemClock
from daemon.http1 import Http1Transport
from daemon.retry import RetryPolicy
from daemon.rules import Failure
from notifyctl.config import Settings, Transport
from notifyctl.services.delivery import AttemptRecord

EXCERPT = 200  # characters of a response body kept per attempt
BODY_CAP = 64 * 1024  # bytes of a 200's body read at most; the connection is closed after
ERROR_BODY_CAP = 4 * 1024  # bytes of any other answer's body read (the excerpt needs 200)
READ_BUFFER = 16 * 1024  # bytes aiohttp buffers per connection before it stops reading


class SendError(Exception):
    #: the request this error ended, when one was made
    attempt: AttemptRecord | None = None
    failure: Failure = Failure.transient
    retry_after: float | None = None

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transient(SendError):
    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Rejected(SendError):
    failure = Failure.rejected


class Unauthorized(SendError):
    failure = Failure.unauthorized


def classify(status: int, body: bytes, headers: httpx.Headers) -> None:
    """Return when the answer means "sent"; otherwise raise what it means."""
    if status == 200:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # (nested deeper than json.loads recurses)
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


RETRY_AFTER_MAX = 86_400.0  # seconds: a longer (or absurd) Retry-After is read as a day


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from a Retry-After header: a number, or an HTTP date; None if unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError, IndexError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), RETRY_AFTER_MAX)


def _make_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """The pool under the httpx API, by measurement (bench/RESULTS.md, bench/transports.py).

    Requests go straight to the transport (``handle_async_request``), skipping the
    client's auth, redirect and cookie layers we do not use. Our ``Http1Transport`` (the
    default) costs about 100 µs of CPU per request with httpx's request objects on top,
    aiohttp's pool under httpx-aiohttp about 220 µs; httpx's own pool slows as
    concurrency grows (encode/httpx#3215).
    """
    limits = httpx.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    if settings.sender_transport is Transport.aiohttp:
        from httpx_aiohttp import AiohttpTransport

        def session() -> aiohttp.ClientSession:
            # A small read buffer: with hundreds of connections answering huge bodies at
            # once, what each buffers before we close it is what the daemon's memory holds.
            connector = aiohttp.TCPConnector(limit=settings.concurrency)
            return aiohttp.ClientSession(connector=connector, read_bufsize=READ_BUFFER)

        return AiohttpTransport(limits=limits, client=session)
    if settings.sender_transport is Transport.httptools:
        return Http1Transport(
            max_connections=settings.concurrency, body_cap=BODY_CAP, error_body_cap=ERROR_BODY_CAP
        )
    return httpx.AsyncHTTPTransport(limits=limits)


class Sender:
    """Posts messages to ``{NOTIFY_SENDER_URL}/{msgId}``, with quick retries by the rules.

    The clock tells how much real time is left before a deadline and sleeps the pauses.
    """

    def __init__(self, settings: Settings, *, clock: SystemClock, policy: RetryPolicy) -> None:
        self.url = settings.sender_url.rstrip("/")
        self.request_timeout = settings.request_timeout
        self._transport = _make_transport(settings)
        # What every request shares, built once: a message's request only adds its id to
        # the path and its body's length (httpx would parse the URL and the headers anew).
        self._base = httpx.URL(f"{self.url}/")
        self._head = [
            (b"Host", self._base.netloc),
            (b"Authorization", f"Bearer {settings.sender_token.get_secret_value()}".encode()),
            (b"Content-Type", b"application/json"),
        ]
        self._clock = clock
        self._policy = policy
        fast, slow = self._fast_url(12345), self._slow_url(12345)
        same = str(fast) == str(slow) and fast.raw_path == slow.raw_path
        self._url = self._fast_url if same else self._slow_url

    def _fast_url(self, message_id: int) -> httpx.URL:
        """``{url}/{message_id}``: the base URL's parse with the path replaced.

        httpx parses and checks a whole URL again for every copy (a tenth of a message's
        CPU here); the message's URL differs from the base only in its path. The shortcut
        reaches into httpx's parse result, so it is taken only when it gives exactly what
        httpx's own way gives (checked at start; a base URL with a query, say, does not).
        """
        url = httpx.URL.__new__(httpx.URL)
        url._uri_reference = self._base._uri_reference._replace(
            path=f"{self._base.path}{message_id}"
        )
        return url

    def _slow_url(self, message_id: int) -> httpx.URL:
        return httpx.URL(self._base, raw_path=b"%s%d" % (self._base.raw_path, message_id))

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def post(
        self, message_id: int, phone: str, text: str, *, deadline: datetime, lease_until: datetime
    ) -> AttemptRecord:
        """One request, outliving neither ``deadline`` nor the claim's lease (less
        ``rules.LEASE_MARGIN``). Raises a SendError, carrying its record in ``.attempt``,
        unless sent."""
        started_at = datetime.now(UTC)
        left = self._clock.seconds_until(deadline)
        lease_left = self._clock.seconds_until(lease_until) - rules.LEASE_MARGIN
        if min(left, lease_left) < rules.MIN_REQUEST_SECONDS:
            raise Transient("no time left before the mailing ends or the claim runs out")
        timeout = min(self.request_timeout, left, lease_left)
        request = self._request(message_id, phone, text, timeout)
        began = time.perf_counter()
        status: int | None = None
        body = b""
        response = None
        try:
            # asyncio.timeout bounds the whole exchange; httpx's timeouts are per phase.
            async with asyncio.timeout(timeout):
                response = await self._transport.handle_async_request(request)
                status = response.status_code
                body = await _read_capped(response, BODY_CAP if status == 200 else ERROR_BODY_CAP)
            classify(status, body, response.headers)
        # An error's traceback keeps this frame alive until the garbage collector runs:
        # the body and the response (with what aiohttp buffered of it) are let go first.
        except SendError as exc:
            exc.attempt = self._record(started_at, began, status, body, exc.reason)
            body = b""
            raise
        except (TimeoutError, httpx.TimeoutException) as cause:
            exc = Transient(_timeout_reason(cause, timeout, time.perf_counter() - began))
            exc.attempt = self._record(started_at, began, status, body, exc.reason)
            body = b""
            raise exc from None
        except (httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
            # (aiohttp errors the transport does not map to httpx ones are transient too)
            error = Transient(f"{type(exc).__name__}: {exc}"[:EXCERPT])
            error.attempt = self._record(started_at, began, status, body, error.reason)
            body = b""
            raise error from None
        finally:
            if response is not None and not response.is_closed:
                # Cut short (timeout, a body over the cap): close rather than leak it.
                with contextlib.suppress(Exception):
                    await response.aclose()
            response = None
        return self._record(started_at, began, status, body, None)

    def _request(self, message_id: int, phone: str, text: str, timeout: float) -> httpx.Request:
        """``POST {url}/{message_id}`` with the message as JSON, built from the shared parts."""
        body = b'{"id": %d, "phone": %d, "text": %s}' % (message_id, int(phone), _json_text(text))
        request = httpx.Request(
            "POST",
            self._url(message_id),
            headers=[*self._head, (b"Content-Length", b"%d" % len(body))],
            stream=httpx.ByteStream(body),
            extensions={
                "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
            },
        )
        request.read()  # (the body is at hand: transports may take it as ``content``)
        return request

    @staticmethod
    def _record(started_at, began, status, body: bytes, error: str | None) -> AttemptRecord:
        return AttemptRecord(
            started_at=started_at,
            duration_ms=(time.perf_counter() - began) * 1000,
            http_status=status,
            response_excerpt=body[:EXCERPT].decode(errors="replace") if body else None,
            error=error,
        )

    async def deliver(
        self,
        message_id: int,
        phone: str,
        text: str,
        *,
        deadline: datetime,
        lease_until: datetime,
        attempts: list[AttemptRecord],
        earlier_attempts: int,
        may_try: Callable[[], bool],
        still_wanted: Callable[[], bool] = lambda: True,
        log=logger,
    ) -> None:
        """Send, retrying transient failures quickly while the rules allow; every request
        goes to ``attempts``. Raises the last SendError when the message was not sent.

        ``rules.quick_retry_pause`` decides each retry: it stops at the policy's quick
        budget, at ``max_attempts`` (``earlier_attempts`` were made before this claim),
        before the deadline or the lease could be passed, and on a Retry-After longer
        than a claim may sleep; ``may_try`` (the circuit breaker) can stop it too, before
        the pause, and ``still_wanted`` (the client's consent) after it, right before the
        retry's request.
        """
        failed: list[SendError] = []  # this call's last failure

        async def one_try() -> None:
            if failed and not still_wanted():
                raise failed[-1]  # (the pause is over: no request, the last failure stands)
            try:
                attempts.append(
                    await self.post(
                        message_id, phone, text, deadline=deadline, lease_until=lease_until
                    )
                )
            except SendError as exc:
                if exc.attempt is not None:
                    attempts.append(exc.attempt)
                failed[:] = [exc]
                raise

        def next_pause(error: BaseException | None, failures: int) -> float | None:
            return rules.quick_retry_pause(
                policy=self._policy,
                failures=failures,
                attempts=earlier_attempts + failures,
                retry_after=getattr(error, "retry_after", None),
                seconds_to_deadline=self._clock.seconds_until(deadline),
                lease_seconds_left=self._clock.seconds_until(lease_until),
                request_timeout=self.request_timeout,
            )

        # Most requests succeed at once: the retry machinery is built only after a failure.
        try:
            await one_try()
            return
        except Transient as exc:
            error = exc
        first_pause = next_pause(error, 1)
        if first_pause is None or not may_try():
            raise error
        pauses: dict[int, float | None] = {}

        def wait(state: RetryCallState) -> float:
            failures = state.attempt_number + 1  # the first try came before tenacity's
            pause = next_pause(state.outcome.exception(), failures)
            pauses[state.attempt_number] = pause
            return pause or 0.0

        def stop(state: RetryCallState) -> bool:
            return pauses.get(state.attempt_number) is None or not may_try()

        def before_sleep(state: RetryCallState) -> None:
            log.info(
                "attempt {attempt} failed ({reason}); retrying in {pause}s",
                attempt=state.attempt_number + 1,
                reason=getattr(state.outcome.exception(), "reason", ""),
                pause=round(state.upcoming_sleep, 2),
            )

        log.info(
            "attempt {attempt} failed ({reason}); retrying in {pause}s",
            attempt=1,
            reason=error.reason,
            pause=round(first_pause, 2),
        )
        await self._clock.sleep(first_pause)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Transient),
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            sleep=self._clock.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await one_try()


@functools.lru_cache(maxsize=64)
def _json_text(text: str) -> bytes:
    """A mailing's text as a JSON string: the same for each of its messages, encoded once."""
    return json.dumps(text).encode()


def _timeout_reason(error: BaseException, timeout: float, took: float) -> str:
    """ "timed out after …", unless it was no timeout at all.

    httpx-aiohttp maps every aiohttp connection error (refused, reset) to ConnectTimeout;
    one that came long before the timeout names its real cause.
    """
    cause = error.__cause__
    if isinstance(error, httpx.TimeoutException) and cause is not None and took < timeout * 0.9:
        return f"{type(cause).__name__}: {cause}"[:EXCERPT]
    return f"timed out after {timeout:.3f}s"


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    """The body up to ``cap`` bytes: a huge answer costs no more memory than that.

    The stream is left unfinished beyond the cap; closing it closes the connection. A
    transport that read the body already (capped itself) hands it over as it is.
    """
    try:
        return response.content[:cap]
    except httpx.ResponseNotRead:
        pass
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= cap:
            break
    return b"".join(chunks)[:cap]
