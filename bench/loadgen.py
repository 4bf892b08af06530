"""A minimal async load generator over keep-alive connections: the mock's ceiling.

python -m bench.loadgen --url http://127.0.0.1:8001/v1/send --requests 20000 --concurrency 100
"""

import argparse
import asyncio
import json
import time

import aiohttp

DEMO_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJub3RpZnljdGwtZGVtbyJ9."
    "rdw16DqBQndLMQWnkBF1F5Ri_KkNvTDUSFJzo5twAgA"
)


async def load(url: str, *, requests: int, concurrency: int, first_id: int = 10_000_000) -> dict:
    """POST ``requests`` messages with ``concurrency`` in flight; return rate and failures."""
    headers = {"Authorization": f"Bearer {DEMO_TOKEN}", "Content-Type": "application/json"}
    ids = iter(range(first_id, first_id + requests))
    failures = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for msg_id in ids:
            body = json.dumps(
                {"id": msg_id, "phone": 79000000000 + msg_id % 10**9, "text": "ceiling"}
            )
            async with session.post(f"{url}/{msg_id}", data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    failures += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests": requests,
        "seconds": elapsed,
        "per_second": requests / elapsed,
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8001/v1/send")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    print(
        json.dumps(
            asyncio.run(load(args.url, requests=args.requests, concurrency=args.concurrency))
        )
    )


if __name__ == "__main__":
    main()
