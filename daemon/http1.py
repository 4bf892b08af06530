"""A lean HTTP/1.1 keep-alive client under httpx's transport API, parsed by httptools.

Why: aiohttp's high-level client costs ~120 µs of CPU per request. Here a request is one
``transport.write()`` and its answer is parsed by httptools' C parser in an
``asyncio.Protocol``: about a third of that, kernel included (bench/transports.py).

We send to one API, so it does that and nothing more: no proxies, redirects, cookies,
compression (bodies come back as sent), HTTP/2, ``Expect: 100-continue``, upgrades or HEAD
(its answer's length would be misread). A streaming request body is read whole first.

An answer is read whole, up to ``body_cap`` bytes (``error_body_cap`` for one other than
2xx): beyond that the body is cut and the connection closed, so a huge answer costs no
more memory than the cap (and one read of ``READ_SIZE``).
Failures are httpx's exceptions, as from httpx's own transport:

    ConnectError, ConnectTimeout   connecting (or the TLS handshake) failed / took too long
    PoolTimeout                    no connection came free within the pool timeout
    WriteTimeout, ReadTimeout      the request was not taken / not answered in time
    RemoteProtocolError            closed before a complete answer, or an unparsable one
    ReadError                      the connection broke (reset) while answering

A caller that gives up (cancellation, ``asyncio.timeout``) closes the connection in use.
This module keeps the pools; one socket's requests and answers are
``daemon.http1_connection``'s.
"""

import asyncio
import functools
import ssl
from collections import deque

import httpx

from daemon.http1_connection import FRAMING, Connection, within

DEFAULT_PORTS = {b"http": 80, b"https": 443}

Origin = tuple[bytes, bytes, int]  # scheme, host, port


class Http1Transport(httpx.AsyncBaseTransport):
    """Keep-alive connections per origin, at most ``max_connections`` open to each."""

    def __init__(
        self,
        *,
        max_connections: int,
        body_cap: int = 64 * 1024,
        error_body_cap: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._limit = max_connections
        self._body_cap = body_cap
        #: of an answer other than 2xx (only an excerpt of it is kept): the body cap if None
        self._error_body_cap = error_body_cap
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

    async def _connect(self, origin: Origin, timeout: float | None) -> "Connection":
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == b"https":
            if self._ssl_context is None:  # built on first use: it reads the CA bundle
                self._ssl_context = ssl.create_default_context()
            tls = self._ssl_context
        hostname = host.decode("ascii")
        factory = functools.partial(Connection, loop, self._body_cap, self._error_body_cap)
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
        self.idle: list[Connection] = []
        self.waiters: deque[asyncio.Future] = deque()
        self.closed = False

    async def acquire(self, timeout: float | None) -> "Connection | None":
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
            return await within(loop, waiter, timeout, httpx.PoolTimeout)
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())  # handed over just as we gave up: pass it on
            raise

    def release(self, conn: "Connection | None") -> None:
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

    def _hand_on(self, conn: "Connection | None") -> None:
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
