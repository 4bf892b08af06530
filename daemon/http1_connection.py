"""One HTTP/1.1 connection of ``daemon.http1``: a request out in one write, its answer
parsed by httptools' C parser, and whether the answer leaves the socket fit for another.

Framing and limits: the answer's head (status line and headers) is read up to
``HEAD_CAP`` bytes, its body up to the transport's body cap (the connection is closed
past it); bytes that no request asked for (a second answer in the same read, say) close
the connection rather than be read as the next request's answer.
"""

import asyncio

import httptools
import httpx

FRAMING = (b"content-length", b"transfer-encoding")  # headers that say where a body ends
HEAD_CAP = 64 * 1024  # bytes of status lines and headers read at most for one answer
READ_SIZE = 4 * 1024  # bytes read from the socket at a time

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, raw headers, body


class Connection(asyncio.BufferedProtocol):
    """One socket: writes a request in one call, parses its answer, and knows whether the
    answer leaves it fit for another request (``reusable``).

    The loop reads into a buffer of ours (``READ_SIZE``, 4 KiB): with hundreds of connections
    answering huge bodies at once, what each read holds is what the daemon's memory holds
    (the loop's own reads are up to 256 KiB each).
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, body_cap: int, error_body_cap: int | None = None
    ) -> None:
        self._buffer = memoryview(bytearray(READ_SIZE))
        self._loop = loop
        self._body_cap = body_cap
        self._error_body_cap = body_cap if error_body_cap is None else error_body_cap
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
        self._cap = self._body_cap  # of the answer being read: by its status
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
                await within(self._loop, self._drained, timeouts.get("write"), httpx.WriteTimeout)
            return await within(self._loop, answer, timeouts.get("read"), httpx.ReadTimeout)
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

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._buffer[:nbytes]))

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
        if not 200 <= self._status < 300:
            self._cap = self._error_body_cap

    def on_body(self, body: bytes) -> None:
        room = self._cap - self._size
        if len(body) <= room:
            self._chunks.append(body)
            self._size += len(body)
        else:
            self._chunks.append(body[:room])
            self._size = self._cap
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


async def within(loop, future: asyncio.Future, seconds: float | None, error: type) -> object:
    """Await ``future``, failing it with ``error`` after ``seconds`` (None: no limit).

    One timer handle rather than ``asyncio.timeout``: a cheaper object on every request.
    """
    if seconds is None:
        return await future
    timer = loop.call_later(seconds, expire, future, error, seconds)
    try:
        return await future
    finally:
        timer.cancel()


def expire(future: asyncio.Future, error: type, seconds: float) -> None:
    if not future.done():
        future.set_exception(error(f"timed out after {seconds:g}s"))
