"""CPU per request of the sender's HTTP clients, against the mock: which transport to use.

python -m bench.transports [--requests 20000] [--concurrency 200]

Each client sends the same POSTs (200 in flight) to a mock in its own process; the CPU
is this process's (user + system, from getrusage), so the mock's is not counted. The
httpx cases build an ``httpx.Request`` per message and read the body as daemon/sender.py
does; the bare aiohttp client (bench/loadgen.py's approach) is the floor to compare with.
"""

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import uvloop

from bench.loadgen import DEMO_TOKEN
from bench.runner import mock_process
from daemon.http1 import Http1Transport
from daemon.sender import BODY_CAP, _read_capped

WARM_UP = 1_000  # requests sent before each measurement (connections opened, caches warm)
TIMEOUT = 10.0  # seconds per request, as NOTIFY_REQUEST_TIMEOUT's default

Send = Callable[[int], Awaitable[int]]  # message id -> HTTP status


def _body(msg_id: int) -> bytes:
    return json.dumps({"id": msg_id, "phone": 79000000000 + msg_id, "text": "bench"}).encode()


async def _drive(send: Send, *, first_id: int, requests: int, concurrency: int) -> int:
    """Send ``requests`` messages, ``concurrency`` at a time; return the failures."""
    ids = iter(range(first_id, first_id + requests))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for msg_id in ids:
            if await send(msg_id) != 200:
                failures += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


async def bare_aiohttp(url: str, concurrency: int):
    headers = {"Authorization": f"Bearer {DEMO_TOKEN}", "Content-Type": "application/json"}
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    async def send(msg_id: int) -> int:
        async with session.post(f"{url}/{msg_id}", data=_body(msg_id), headers=headers) as r:
            await r.read()
            return r.status

    return send, session.close


def _httpx_sender(url: str, transport: httpx.AsyncBaseTransport):
    """Requests built and read as daemon/sender.py builds and reads them."""
    headers = httpx.Headers(
        {"Authorization": f"Bearer {DEMO_TOKEN}", "Content-Type": "application/json"}
    )
    timeout = httpx.Timeout(TIMEOUT).as_dict()

    async def send(msg_id: int) -> int:
        request = httpx.Request(
            "POST",
            f"{url}/{msg_id}",
            headers=headers,
            content=_body(msg_id),
            extensions={"timeout": timeout},
        )
        response = await transport.handle_async_request(request)
        try:
            await _read_capped(response, BODY_CAP)
        finally:
            if not response.is_closed:
                await response.aclose()
        return response.status_code

    return send, transport.aclose


async def httpx_aiohttp(url: str, concurrency: int):
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    return _httpx_sender(url, AiohttpTransport(limits=limits, client=session))


async def httpx_http1(url: str, concurrency: int):
    return _httpx_sender(url, Http1Transport(max_connections=concurrency, body_cap=BODY_CAP))


CLIENTS = {
    "bare aiohttp": bare_aiohttp,
    "httpx + AiohttpTransport": httpx_aiohttp,
    "httpx + Http1Transport": httpx_http1,
}
LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


def measure(client, url: str, *, loop_factory, first_id: int, requests: int, concurrency: int):
    """Requests per second, CPU µs per request and failures of one client on one loop."""

    async def run() -> tuple[float, float, int]:
        send, close = await client(url, concurrency)
        try:
            await _drive(send, first_id=first_id, requests=WARM_UP, concurrency=concurrency)
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            failures = await _drive(
                send, first_id=first_id + WARM_UP, requests=requests, concurrency=concurrency
            )
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
        finally:
            await close()
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return requests / elapsed, cpu / requests * 1e6, failures

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    print(f"{args.requests} POSTs, {args.concurrency} in flight, against the mock\n")
    print(f"| {'client':<26} | {'loop':<7} | {'req/s':>6} | {'CPU µs/req':>10} | failures |")
    print(f"|{'-' * 28}|{'-' * 9}|{'-' * 8}|{'-' * 12}|{'-' * 10}|")
    first_id = 20_000_000
    with mock_process() as mock:
        for loop_name, loop_factory in LOOPS.items():
            for name, client in CLIENTS.items():
                rate, cpu, failures = measure(
                    client,
                    mock.send_url,
                    loop_factory=loop_factory,
                    first_id=first_id,
                    requests=args.requests,
                    concurrency=args.concurrency,
                )
                first_id += WARM_UP + args.requests
                mock.forget()
                row = f"| {name:<26} | {loop_name:<7} | {rate:>6.0f} | {cpu:>10.1f} |"
                print(f"{row} {failures:>8} |")


if __name__ == "__main__":
    main()
