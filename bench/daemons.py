"""Several daemons on one PostgreSQL database: faster than one, and never over the rate limit."""

import asyncio
from collections import Counter
from datetime import datetime
from pathlib import Path

from bench.common import POSTGRES, SIZES, Row, run_mailing
from bench.loadgen import load
from bench.runner import mock_process

RATE_LIMIT = 1000  # messages/s, all daemons together, for the rate-limited run


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
    return rows
