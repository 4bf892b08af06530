"""daemon.http1, the lean HTTP/1.1 transport: against tiny servers that answer exact bytes
(lengths, chunks, closes, garbage, silence, huge bodies, TLS) and against the mock."""

import asyncio
import contextlib
import datetime
import ipaddress
import json
import random
import ssl
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from daemon.clock import SystemClock
from daemon.http1 import Http1Transport
from daemon.retry import RetryPolicy
from daemon.sender import Sender
from notifyctl.config import Settings, Transport
from tests.daemon_helpers import AUTH, MockApi
from tests.servers import free_port

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 25\r\n\r\n"
OK += b'{"code":0,"message":"OK"}'

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A server on 127.0.0.1 whose ``handler`` writes exact bytes; it counts connections."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.accepted = 0
        self.open = 0
        self.most_open = 0
        self._serving: set[asyncio.Task] = set()

    async def __aenter__(self) -> "RawServer":
        self._stopping = asyncio.Event()
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.server.close()
        self._stopping.set()
        await asyncio.gather(*self._serving)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        # The handler runs in a task of its own, cancelled at the stop: cancelling the
        # stream's task would make Python 3.11 log an error.
        handling = asyncio.ensure_future(self.handler(reader, writer))
        self._serving.add(asyncio.current_task())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([handling, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            handling.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, EOFError):
                await handling
            self.open -= 1
            self._serving.discard(asyncio.current_task())
            writer.transport.abort()

    def url(self, path: str = "/v1/send/1", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One whole request (head and Content-Length body), or b"" at the end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


def answering(
    *answers: bytes, then_close: bool = False, into: list[bytes] | None = None
) -> Handler:
    """A handler that answers each request on a connection with the next of ``answers``
    (the last one repeated), keeping each request in ``into`` when given."""

    async def handler(reader, writer) -> None:
        for n in range(1_000_000):
            request = await read_request(reader)
            if not request:
                return
            if into is not None:
                into.append(request)
            writer.write(answers[min(n, len(answers) - 1)])
            await writer.drain()
            if then_close:
                return

    return handler


def post(url: str, content: bytes = b'{"id": 1}', timeout: float = 5.0, **headers) -> httpx.Request:
    return httpx.Request(
        "POST",
        url,
        headers={"Content-Type": "application/json", **headers},
        content=content,
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )


def run(scenario: Callable[[], Awaitable[object]]) -> object:
    return asyncio.run(scenario())


def client_sockets(port: int) -> int:
    """Open sockets connected to ``port``: the client's side of each connection, from
    /proc/net/tcp (a closed one has no inode; one moved mid-read may be listed twice)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and fields[9] != "0":
            inodes.add(fields[9])
    return len(inodes)


def test_a_200_with_json_from_the_mock(mock_api: MockApi) -> None:
    async def scenario():
        transport = Http1Transport(max_connections=4)
        request = post(f"{mock_api.send_url}/7", b'{"id": 7, "phone": 79000000007, "text": "hi"}')
        request.headers.update(AUTH)
        response = await transport.handle_async_request(request)
        await transport.aclose()
        return response.status_code, await response.aread(), response.headers

    status, body, headers = run(scenario)
    assert status == 200
    assert json.loads(body) == {"code": 0, "message": "OK"}
    assert headers["content-type"] == "application/json"


def test_sequential_requests_to_the_mock_share_one_connection(mock_api: MockApi) -> None:
    port = int(mock_api.base_url.rsplit(":", 1)[1])

    async def scenario():
        transport = Http1Transport(max_connections=4)
        for n in range(50):
            request = post(
                f"{mock_api.send_url}/{n}",
                json.dumps({"id": n, "phone": 79000000000 + n, "text": "x"}).encode(),
            )
            request.headers.update(AUTH)
            assert (await transport.handle_async_request(request)).status_code == 200
        sockets = client_sockets(port)
        await transport.aclose()
        return sockets

    assert run(scenario) == 1


def test_the_sender_sends_through_it(mock_api: MockApi) -> None:
    settings = Settings(sender_url=mock_api.send_url, sender_transport=Transport.httptools)

    async def scenario():
        sender = Sender(settings, clock=SystemClock(), policy=RetryPolicy.from_settings(settings))
        soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1)
        record = await sender.post(5, "79000000005", "привет", deadline=soon, lease_until=soon)
        await sender.aclose()
        return record

    record = run(scenario)
    assert (record.http_status, record.error) == (200, None)
    assert [m["text"] for m in mock_api.received()] == ["привет"]


def test_keep_alive_reuses_one_connection() -> None:
    async def scenario():
        async with RawServer(answering(OK)) as server:
            transport = Http1Transport(max_connections=4)
            for _ in range(100):
                response = await transport.handle_async_request(post(server.url()))
                assert response.status_code == 200
            await transport.aclose()
            return server.accepted

    assert run(scenario) == 1


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
            b"hello",
        ),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
    ids=["content-length", "chunked", "interim-100", "no-content"],
)
def test_framed_bodies_arrive_whole_and_keep_the_connection(answer: bytes, body: bytes) -> None:
    async def scenario():
        async with RawServer(answering(answer)) as server:
            transport = Http1Transport(max_connections=2)
            bodies = [
                await (await transport.handle_async_request(post(server.url()))).aread()
                for _ in range(3)
            ]
            await transport.aclose()
            return bodies, server.accepted

    assert run(scenario) == ([body] * 3, 1)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\nuntil the end",
    ],
    ids=["http/1.0", "no-length", "connection-close"],
)
def test_answers_that_close_the_connection_are_read_and_not_reused(answer: bytes) -> None:
    async def scenario():
        async with RawServer(answering(answer, then_close=True)) as server:
            transport = Http1Transport(max_connections=2)
            bodies = [
                await (await transport.handle_async_request(post(server.url()))).aread()
                for _ in range(3)
            ]
            await transport.aclose()
            return bodies, server.accepted

    assert run(scenario) == ([b"until the end"] * 3, 3)


def test_a_huge_body_is_cut_at_the_cap_and_its_connection_closed() -> None:
    size = 10 * 1024 * 1024
    piece = b"x" * 65536

    async def huge(reader, writer) -> None:
        while await read_request(reader):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(size // len(piece)):
                writer.write(piece)
                await writer.drain()

    async def scenario():
        async with RawServer(huge) as server:
            transport = Http1Transport(max_connections=2, body_cap=32 * 1024)
            tracemalloc.start()
            response = await transport.handle_async_request(post(server.url()))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            body = await response.aread()
            await transport.handle_async_request(post(server.url()))
            await transport.aclose()
            return body, peak, server.accepted

    body, peak, accepted = run(scenario)
    assert body == b"x" * 32 * 1024
    assert peak < 2 * 1024 * 1024
    assert accepted == 2  # the first connection was not reused


@pytest.mark.parametrize(("status", "kept"), [(b"503 Busy", 4096), (b"200 OK", 32 * 1024)])
def test_an_answer_other_than_2xx_is_cut_at_the_error_cap(status, kept) -> None:
    size = 1024 * 1024

    async def big(reader, writer) -> None:
        while await read_request(reader):
            writer.write(b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n" % (status, size))
            writer.write(b"y" * size)
            await writer.drain()

    async def scenario():
        async with RawServer(big) as server:
            transport = Http1Transport(max_connections=1, body_cap=32 * 1024, error_body_cap=4096)
            response = await transport.handle_async_request(post(server.url()))
            body = await response.aread()
            await transport.handle_async_request(post(server.url()))
            await transport.aclose()
            return body, server.accepted

    body, accepted = run(scenario)
    assert body == b"y" * kept
    assert accepted == 2  # cut short: the connection was closed, not reused


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def one_answer_then_close(reader, writer) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.05)

    async def scenario():
        async with RawServer(one_answer_then_close) as server:
            transport = Http1Transport(max_connections=1)
            first = await transport.handle_async_request(post(server.url()))
            await asyncio.sleep(0.2)
            second = await transport.handle_async_request(post(server.url(), timeout=2))
            await transport.aclose()
            return first.status_code, second.status_code, server.accepted

    assert run(scenario) == (200, 200, 2)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", httpx.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", httpx.RemoteProtocolError),
        (b"", httpx.RemoteProtocolError),
    ],
    ids=["garbage", "cut-short", "closed-without-answer"],
)
def test_broken_answers_are_protocol_errors(answer: bytes, error: type) -> None:
    async def scenario():
        async with RawServer(answering(answer, then_close=True)) as server:
            transport = Http1Transport(max_connections=1)
            with pytest.raises(error) as caught:
                await transport.handle_async_request(post(server.url()))
            # and the slot is free again
            with pytest.raises(error):
                await transport.handle_async_request(post(server.url(), timeout=1))
            await transport.aclose()
            return caught.value

    assert run(scenario).request.url.path == "/v1/send/1"


def test_a_refused_connection_is_a_connect_error() -> None:
    async def scenario():
        transport = Http1Transport(max_connections=1)
        with pytest.raises(httpx.ConnectError):
            await transport.handle_async_request(post(f"http://127.0.0.1:{free_port()}/x"))

    run(scenario)


def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    async def silent(reader, writer) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    async def scenario():
        async with RawServer(silent) as server:
            transport = Http1Transport(max_connections=1)
            began = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await transport.handle_async_request(post(server.url(), timeout=0.2))
            took = time.monotonic() - began
            await transport.aclose()
            return took

    assert 0.2 <= run(scenario) < 1.0


def test_no_free_connection_within_the_pool_timeout_is_a_pool_timeout() -> None:
    async def silent(reader, writer) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    async def scenario():
        async with RawServer(silent) as server:
            transport = Http1Transport(max_connections=1)
            hanging = asyncio.ensure_future(transport.handle_async_request(post(server.url())))
            await asyncio.sleep(0.05)
            with pytest.raises(httpx.PoolTimeout):
                await transport.handle_async_request(post(server.url(), timeout=0.1))
            hanging.cancel()
            await transport.aclose()

    run(scenario)


def test_a_thousand_cancellations_leak_no_connection() -> None:
    """Callers give up at random moments (waiting for a slot, connecting, writing,
    reading): never more than max_connections sockets, and the pool still works."""
    limit = 5

    async def sometimes_silent(reader, writer) -> None:
        while request := await read_request(reader):
            if b"/hang" in request.split(b"\r\n")[0]:
                await asyncio.sleep(10)
            writer.write(OK)

    async def scenario():
        async with RawServer(sometimes_silent) as server:
            transport = Http1Transport(max_connections=limit)
            dice = random.Random(7)
            most = 0
            gave_up = 0

            async def caller(n: int) -> None:
                nonlocal gave_up
                for _ in range(n):
                    path = "/hang" if dice.random() < 0.5 else "/ok"
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(dice.uniform(0, 0.01)):
                            await transport.handle_async_request(post(server.url(path)))
                        continue
                    gave_up += 1

            async def watch() -> None:
                nonlocal most
                while True:
                    most = max(most, client_sockets(server.port))
                    await asyncio.sleep(0.01)  # a read of /proc/net/tcp takes a few ms

            watcher = asyncio.ensure_future(watch())
            while gave_up < 1000:
                await asyncio.gather(*(caller(10) for _ in range(20)))
            watcher.cancel()
            response = await transport.handle_async_request(post(server.url("/ok")))
            await asyncio.sleep(0.05)
            left = client_sockets(server.port)
            await transport.aclose()
            return most, left, response.status_code

    most, left, status = run(scenario)
    assert most <= limit
    assert left <= limit
    assert status == 200


def test_never_more_connections_than_the_limit() -> None:
    async def slow(reader, writer) -> None:
        while await read_request(reader):
            await asyncio.sleep(0.005)
            writer.write(OK)

    async def scenario():
        async with RawServer(slow) as server:
            transport = Http1Transport(max_connections=4)
            answers = await asyncio.gather(
                *(transport.handle_async_request(post(server.url())) for _ in range(200))
            )
            await transport.aclose()
            return {a.status_code for a in answers}, server.most_open, server.accepted

    assert run(scenario) == ({200}, 4, 4)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("trust", ["context", "SSL_CERT_FILE"])
def test_https_with_a_trusted_self_signed_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trust: str
) -> None:
    cert, key = make_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = None
    if trust == "context":
        client_context = ssl.create_default_context(cafile=str(cert))
    else:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))

    async def scenario():
        async with RawServer(answering(OK), tls=server_context) as server:
            transport = Http1Transport(max_connections=2, ssl_context=client_context)
            bodies = [
                await (
                    await transport.handle_async_request(post(server.url(scheme="https")))
                ).aread()
                for _ in range(3)
            ]
            await transport.aclose()
            return bodies, server.accepted

    bodies, accepted = run(scenario)
    assert bodies == [b'{"code":0,"message":"OK"}'] * 3
    assert accepted == 1


def test_an_untrusted_certificate_is_a_connect_error(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def scenario():
        async with RawServer(answering(OK), tls=server_context) as server:
            transport = Http1Transport(max_connections=1)
            with pytest.raises(httpx.ConnectError):
                await transport.handle_async_request(post(server.url(scheme="https")))

    run(scenario)


def test_headers_and_a_non_ascii_body_arrive_byte_exact() -> None:
    body = json.dumps({"id": 1, "text": "Привет, 世界 ✓"}, ensure_ascii=False).encode()
    answer = (
        b'HTTP/1.1 200 OK\r\nX-Reply: caf\xc3\xa9  "quoted"\r\nContent-Length: %d\r\n\r\n%s'
        % (len(body), body)
    )

    received: list[bytes] = []
    server = RawServer(answering(answer, into=received))

    async def scenario():
        async with server:
            transport = Http1Transport(max_connections=1)
            request = post(server.url("/v1/send/1?x=%20y"), body, **{"X-Token": 'a "b";c=d'})
            response = await transport.handle_async_request(request)
            await transport.aclose()
            return response.headers.raw, await response.aread()

    headers, reply = run(scenario)
    sent = received[0]
    assert sent.startswith(b"POST /v1/send/1?x=%20y HTTP/1.1\r\n")
    assert b'\r\nX-Token: a "b";c=d\r\n' in sent
    assert sent.endswith(b"\r\n\r\n" + body)
    assert (b"X-Reply", b'caf\xc3\xa9  "quoted"') in headers
    assert reply == body


def test_a_streaming_body_is_sent_with_its_length() -> None:
    async def parts():
        yield b'{"id": '
        yield b"1}"

    received: list[bytes] = []
    server = RawServer(answering(OK, into=received))

    async def scenario():
        async with server:
            transport = Http1Transport(max_connections=1)
            request = httpx.Request("POST", server.url(), content=parts())
            await transport.handle_async_request(request)
            await transport.aclose()

    run(scenario)
    sent = received[0]
    assert b"Content-Length: 9\r\n" in sent
    assert b"transfer-encoding" not in sent.lower()
    assert sent.endswith(b'\r\n\r\n{"id": 1}')


@pytest.mark.parametrize(
    "stray",
    [
        b"HTTP/1.1 429 Too Many\r\nRetry-After: 999\r\nContent-Length: 2\r\n\r\nZZ",
        b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n",  # a head whose body never came
    ],
    ids=["whole-second-answer", "head-of-a-second-answer"],
)
def test_bytes_after_the_answer_in_the_same_read_close_the_connection(stray: bytes) -> None:
    """A second answer nobody asked for, in the same packet as the first: its headers must
    not join the first answer's (a Retry-After, say), and the parser must not stay inside
    it for the next request (which would get the wrong bytes as its answer)."""

    async def scenario():
        async with RawServer(answering(OK + stray, OK)) as server:
            transport = Http1Transport(max_connections=1)
            first = await transport.handle_async_request(post(server.url()))
            second = await transport.handle_async_request(post(server.url(), timeout=2))
            await transport.aclose()
            return first, await first.aread(), second.status_code, server.accepted

    first, body, second, accepted = run(scenario)
    assert first.status_code == 200
    assert "retry-after" not in first.headers
    assert first.headers.get_list("content-length") == ["25"]
    assert body == b'{"code":0,"message":"OK"}'
    assert second == 200
    assert accepted == 2  # the out-of-step connection was not reused


def test_endless_headers_are_a_protocol_error_and_cost_little_memory() -> None:
    """httptools sets no limit on a head: 100 MB of headers would be held whole."""

    async def endless_headers(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        line = b"X-A: " + b"a" * 8000 + b"\r\n"
        for _ in range(12_000):
            writer.write(line)
            await writer.drain()

    async def scenario():
        async with RawServer(endless_headers) as server:
            transport = Http1Transport(max_connections=1)
            tracemalloc.start()
            with pytest.raises(httpx.RemoteProtocolError, match="headers over"):
                await transport.handle_async_request(post(server.url(), timeout=30))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            await transport.aclose()
            return peak

    assert run(scenario) < 2 * 1024 * 1024


def test_an_answer_before_the_whole_request_was_taken_is_returned() -> None:
    """A server answering (413) before reading a big body, then closing: the answer, at
    once, not a write timeout (the rest of the body never drains)."""

    async def early(reader, writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 3\r\n\r\nbig")
        await writer.drain()
        await asyncio.sleep(30)  # reads nothing more, keeps the connection open

    async def scenario():
        async with RawServer(early) as server:
            transport = Http1Transport(max_connections=1)
            began = time.monotonic()
            response = await transport.handle_async_request(
                post(server.url(), content=b"x" * 50_000_000, timeout=3)
            )
            took = time.monotonic() - began
            body = await response.aread()
            again = await transport.handle_async_request(post(server.url(), timeout=3))
            await transport.aclose()
            return response.status_code, body, took, server.accepted, again.status_code

    status, body, took, accepted, _ = run(scenario)
    assert (status, body) == (413, b"big")
    assert took < 2
    assert accepted == 2  # the half-written connection was not reused


def test_trailers_of_a_chunked_answer_are_not_headers() -> None:
    """httpx's own transport drops trailers: a Retry-After (or a second Content-Length)
    after a chunked body must not read as one of the answer's headers."""
    answer = (
        b"HTTP/1.1 429 Too Many\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nno\r\n0\r\nRetry-After: 86400\r\n\r\n"
    )

    async def scenario():
        async with RawServer(answering(answer)) as server:
            transport = Http1Transport(max_connections=1)
            response = await transport.handle_async_request(post(server.url()))
            await transport.aclose()
            return response, await response.aread()

    response, body = run(scenario)
    assert (response.status_code, body) == (429, b"no")
    assert "retry-after" not in response.headers
