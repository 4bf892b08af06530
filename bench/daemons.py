"""Several daemons on one PostgreSQL database: faster than one, and never over the rate limit."""

import asyncio
from collections import Counter
from datetime import datetime
from pathlib import Path

from bench.common import POSTGRES, SIZES, Row, run_mailing
from bench.loadgen import load
from bench.runner import mock_process

RATE_LIMIT = 1000  # messages/s, all daemons together, for the rate-limited run
#: the scale-out run: the API's latency is the limit, not the machine's CPU
SLOW_API_MS = 200  # mock latency per request
SLOW_API_IN_FLIGHT = 20  # NOTIFY_CONCURRENCY of each daemon
SLOW_API_MESSAGES = {"full": 6_000, "small": 1_500}


def peak_second(mock) -> int:
    """The most requests the mock accepted within one wall-clock second."""
    seconds = Counter(
        int(datetime.fromisoformat(item["first_at"]).timestamp()) for item in mock.all_received()
    )
    return max(seconds.values())


def bench_daemons(size, _work: Path) -> list[Row]:
    clients = SIZES[size]["throughput"]
    command = f"python -m bench --only daemons --size {size}"
    rows: list[Row] = []
    with mock_process() as mock:
        rates = {}
        for daemons in (1, 2, 3):
            ceiling = asyncio.run(load(mock.send_url, requests=20_000, concurrency=200))[
                "per_second"
            ]
            result = run_mailing(POSTGRES, clients, mock, daemons=daemons)
            assert result["counts"] == {"sent": clients}, result
            rates[daemons] = result["rate"]
            target = "(the baseline)" if daemons == 1 else "no slower than one daemon"
            rows.append(
                (
                    f"{clients:,}-message mailing, PostgreSQL, {daemons} daemon"
                    + ("s" if daemons > 1 else ""),
                    target,
                    f"{result['rate']:,.0f} msg/s = {result['rate'] / ceiling:.2f} x ceiling "
                    f"({ceiling:,.0f} req/s same run)"
                    + (f"; {result['rate'] / rates[1]:.2f} x one daemon" if daemons > 1 else ""),
                    command,
                )
            )
        limited = min(clients, RATE_LIMIT * 20)
        result = run_mailing(POSTGRES, limited, mock, daemons=3, NOTIFY_RATE_LIMIT=str(RATE_LIMIT))
        assert result["counts"] == {"sent": limited}, result
        rows.append(
            (
                f"{limited:,}-message mailing, PostgreSQL, 3 daemons, "
                f"NOTIFY_RATE_LIMIT={RATE_LIMIT}",
                f"never above {RATE_LIMIT:,} msg/s (+ the bucket's 0.2 s burst)",
                f"busiest second {peak_second(mock):,} requests; "
                f"{result['rate']:,.0f} msg/s on average",
                command,
            )
        )
    rows += _scale_out(size, command)
    return rows


def _scale_out(size, command: str) -> list[Row]:
    """With the API's latency as the limit, three daemons send about three times as fast."""
    messages = SLOW_API_MESSAGES[size]
    rates = {}
    rows: list[Row] = []
    with mock_process("--latency-ms", str(SLOW_API_MS)) as mock:
        for daemons in (1, 3):
            result = run_mailing(
                POSTGRES, messages, mock, concurrency=SLOW_API_IN_FLIGHT, daemons=daemons
            )
            assert result["counts"] == {"sent": messages}, result
            rates[daemons] = result["rate"]
        rows.append(
            (
                f"{messages:,}-message mailing, PostgreSQL, API latency {SLOW_API_MS} ms, "
                f"{SLOW_API_IN_FLIGHT} in flight per daemon: 3 daemons against 1",
                ">= 2.5 x one daemon",
                f"1 daemon {rates[1]:,.0f} msg/s, 3 daemons {rates[3]:,.0f} msg/s = "
                f"{rates[3] / rates[1]:.2f} x",
                command,
            )
        )
    return rows
