"""A lean HTTP/1.1 keep-alive client under httpx's transport API, parsed by httptools.

Why: aiohttp's high-level client costs ~120 µs of CPU per request. Here a request is one
``transport.write()`` and its answer is parsed by httptools' C parser in an
``asyncio.Protocol``: about a third of that, kernel included (bench/transports.py).

We send to one API, so it does that and nothing more: no proxies, redirects, cookies,
compression (bodies come back as sent), HTTP/2, ``Expect: 100-continue``, upgrades or HEAD
(its answer's length would be misread). A streaming request body is read whole first.

An answer is read whole, up to ``body_cap`` bytes: beyond that the body is cut and the
connection closed, so a huge answer costs no more memory than the cap (and one read).
Failures are httpx's exceptions, as from httpx's own transport:

    ConnectError, ConnectTimeout   connecting (or the TLS handshake) failed / took too long
    PoolTimeout                    no connection came free within the pool timeout
    WriteTimeout, ReadTimeout      the request was not taken / not answered in time
    RemoteProtocolError            closed before a complete answer, or an unparsable one
    ReadError                      the connection broke (reset) while answering

A caller that gives up (cancellation, ``asyncio.timeout``) closes the connection in use.
"""

import asyncio
import functools
import ssl
from collections import deque

import httptools
import httpx

DEFAULT_PORTS = {b"http": 80, b"https": 443}
FRAMING = (b"content-length", b"transfer-encoding")  # headers that say where a body ends
HEAD_CAP = 64 * 1024  # bytes of status lines and headers read at most for one answer

Origin = tuple[bytes, bytes, int]  # scheme, host, port
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, raw headers, body


class Http1Transport(httpx.AsyncBaseTransport):
    """Keep-alive connections per origin, at most ``max_connections`` open to each."""

    def __init__(
        self,
        *,
        max_connections: int,
        body_cap: int = 64 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._limit = max_connections
        self._body_cap = body_cap
        self._ssl_context = ssl_context
        self._pools: dict[Origin, _Pool] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.raw_scheme
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"no {scheme!r} URLs here", request=request)
        origin = (scheme, url.raw_host, url.port or DEFAULT_PORTS[scheme])
        pool = self._pools.get(origin) or self._pools.setdefault(origin, _Pool(self._limit))
        timeouts = request.extensions.get("timeout", {})
        data = await _encode(request)
        conn = await pool.acquire(timeouts.get("pool"))
        try:
            if conn is not None and conn.transport.is_closing():  # the server closed it idle
                conn = None
                await asyncio.sleep(0)  # its socket closes on this turn: before a new one
            if conn is None:
                conn = await self._connect(origin, timeouts.get("connect"))
            status, headers, body = await conn.exchange(data, timeouts)
        except BaseException as exc:
            if conn is not None:
                conn.reusable = False  # cut short (an error, a caller giving up): closed
            pool.release(conn)
            if isinstance(exc, httpx.TransportError):
                exc.request = request
            raise
        pool.release(conn)
        return httpx.Response(status, headers=headers, stream=_Body(body), request=request)

    async def aclose(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()

    async def _connect(self, origin: Origin, timeout: float | None) -> "_Connection":
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == b"https":
            if self._ssl_context is None:  # built on first use: it reads the CA bundle
                self._ssl_context = ssl.create_default_context()
            tls = self._ssl_context
        hostname = host.decode("ascii")
        factory = functools.partial(_Connection, loop, self._body_cap)
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    factory, hostname, port, ssl=tls, server_hostname=hostname if tls else None
                )
        except TimeoutError:  # before OSError: TimeoutError is one
            raise httpx.ConnectTimeout(f"no connection to {hostname}:{port} in time") from None
        except OSError as exc:  # refused, unreachable, unknown host, TLS refused
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return conn


class _Pool:
    """The connections to one origin: idle ones kept for reuse (last used first, the
    warmest), at most ``limit`` open; callers beyond wait in line for one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0  # slots taken: idle connections, ones in use, ones being opened
        self.idle: list[_Connection] = []
        self.waiters: deque[asyncio.Future] = deque()
        self.closed = False

    async def acquire(self, timeout: float | None) -> "_Connection | None":
        """An idle connection (the server may have closed it since), or None: a slot to
        open one in. Either is the caller's to release."""
        if self.idle:
            return self.idle.pop()
        if self.open < self.limit:
            self.open += 1
            return None
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.waiters.append(waiter)
        try:
            return await _within(loop, waiter, timeout, httpx.PoolTimeout)
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())  # handed over just as we gave up: pass it on
            raise

    def release(self, conn: "_Connection | None") -> None:
        """Take back a connection, or a bare slot (None); the first caller in line gets it.

        A connection unfit for another request is closed, and its slot handed on a turn
        of the loop later: the socket itself closes on the next turn, and until then a
        new one in its slot would make one more than the limit.
        """
        fit = conn is not None and conn.reusable and not conn.transport.is_closing()
        if fit and not self.closed:
            self._hand_on(conn)
            return
        if conn is not None:
            conn.close()
        asyncio.get_running_loop().call_soon(self._hand_on, None)

    def _hand_on(self, conn: "_Connection | None") -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():  # not timed out or cancelled
                waiter.set_result(conn)
                return
        if conn is None:
            self.open -= 1
        else:
            self.idle.append(conn)

    def close(self) -> None:
        self.closed = True
        for conn in self.idle:
            conn.close()
        self.open -= len(self.idle)
        self.idle.clear()


class _Connection(asyncio.Protocol):
    """One socket: writes a request in one call, parses its answer, and knows whether the
    answer leaves it fit for another request (``reusable``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, body_cap: int) -> None:
        self._loop = loop
        self._body_cap = body_cap
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport
        self.reusable = False
        self._answer: asyncio.Future[Answer] | None = None  # None while idle
        self._drained: asyncio.Future[None] | None = None  # set while the kernel lags
        self._reset()
        self._head_size = 0  # bytes received before the answer's headers ended

    def _reset(self) -> None:
        self._status = 0  # of the answer being read
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._headers_done = False

    async def exchange(self, data: bytes, timeouts: dict) -> Answer:
        """Send the request, return the whole answer."""
        self._reset()
        self._head_size = 0
        self.reusable = False
        self._answer = answer = self._loop.create_future()
        try:
            self.transport.write(data)
            if self._drained is not None:
                await _within(self._loop, self._drained, timeouts.get("write"), httpx.WriteTimeout)
            return await _within(self._loop, answer, timeouts.get("read"), httpx.ReadTimeout)
        finally:
            self._answer = None

    def close(self) -> None:
        self.reusable = False
        self.transport.abort()  # nothing of ours is worth flushing on a dropped connection

    # --- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # Pause at any backlog, so a write the kernel did not take whole has a timeout.
        self.transport.set_write_buffer_limits(high=0)

    def pause_writing(self) -> None:
        self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self.close()  # bytes nobody asked for, or past the cap: out of step
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(httpx.RemoteProtocolError(f"unparsable answer: {exc!r}"))
            self.close()
            return
        if not self._headers_done:
            # httptools gathers a header whole before handing it over, and sets no limit:
            # a server sending headers without end would fill the memory until the timeout.
            self._head_size += len(data)
            if self._head_size > HEAD_CAP:
                self._fail(httpx.RemoteProtocolError(f"headers over {HEAD_CAP} bytes"))
                self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._answer is None or self._answer.done():
            return
        if exc is not None:
            self._fail(httpx.ReadError(f"{type(exc).__name__}: {exc}"))
        elif self._headers_done and not any(n.lower() in FRAMING for n, _ in self._headers):
            self._complete(keep_alive=False)  # no length given: the body ends with the connection
        else:
            self._fail(httpx.RemoteProtocolError("the server closed before answering in full"))

    # --- httptools callbacks ------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._answer is None or self._answer.done():
            # More bytes after the whole answer, in the same read: a second answer nobody
            # asked for. Parsed on, it would add its headers to the answer handed over and
            # leave the parser inside it for the next request (out of step): stop, close.
            raise _OutOfStep

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._headers_done:  # (a chunked body's trailers are dropped, as by httpx)
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        room = self._body_cap - self._size
        if len(body) <= room:
            self._chunks.append(body)
            self._size += len(body)
        else:
            self._chunks.append(body[:room])
            self._size = self._body_cap
            self._complete(keep_alive=False)  # closes: the rest is never read

    def on_message_complete(self) -> None:
        if self._status < 200:  # an interim answer (100 Continue): the real one follows
            self._reset()
            return
        self._complete(self._parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        answer = self._answer
        drained = self._drained
        if drained is not None and not drained.done():
            # Answered before taking the whole request (a 413, say): the answer stands,
            # the rest of the request is never sent, and the connection is not reused.
            keep_alive = False
            drained.set_result(None)
        if answer is not None and not answer.done():
            self.reusable = keep_alive
            answer.set_result((self._status, self._headers, b"".join(self._chunks)))
        if not keep_alive:
            self.close()

    def _fail(self, error: Exception) -> None:
        for future in (self._answer, self._drained):
            if future is not None and not future.done():
                future.set_exception(error)


class _OutOfStep(Exception):
    """An answer began that no request is waiting for (httptools reports it as a
    ``HttpParserCallbackError``)."""


class _Body(httpx.AsyncByteStream):
    """An answer's body, already read, as a stream: callers read it as from any transport
    (a Response built with ``content=`` counts as consumed: ``aiter_raw`` would refuse)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self):
        if self._body:
            yield self._body


async def _encode(request: httpx.Request) -> bytes:
    """Request line, headers and body in one buffer: one write, one send."""
    headers = request.headers.raw
    try:
        body = request.content
    except httpx.RequestNotRead:  # a streaming body: read it, then send it with its length
        body = await request.aread()
        headers = [(k, v) for k, v in headers if k.lower() not in FRAMING]
        headers.append((b"Content-Length", b"%d" % len(body)))
    parts = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
    parts += [b"%s: %s\r\n" % header for header in headers]
    parts += (b"\r\n", body)
    return b"".join(parts)


async def _within(loop, future: asyncio.Future, seconds: float | None, error: type) -> object:
    """Await ``future``, failing it with ``error`` after ``seconds`` (None: no limit).

    One timer handle rather than ``asyncio.timeout``: a cheaper object on every request.
    """
    if seconds is None:
        return await future
    timer = loop.call_later(seconds, _expire, future, error, seconds)
    try:
        return await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future, error: type, seconds: float) -> None:
    if not future.done():
        future.set_exception(error(f"timed out after {seconds:g}s"))
