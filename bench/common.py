"""What the benchmark parts share: sizes, the PostgreSQL URL, running one mailing."""

import os
import subprocess
from datetime import UTC, datetime

import sqlalchemy as sa

from bench import data
from bench.runner import notifyctl, timed
from notifyctl.db import make_engine

POSTGRES = os.environ.get(
    "NOTIFY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/notifyctl_bench"
)
SIZES = {
    "full": {
        "import": 1_000_000,
        "stats": 1_000_000,
        "throughput": 100_000,
        "memory": 1_000_000,
        "bodies": 2_000,
    },
    "small": {
        "import": 100_000,
        "stats": 100_000,
        "throughput": 10_000,
        "memory": 100_000,
        "bodies": 500,
    },
}
Row = tuple[str, str, str, str]  # figure, target, result, command


def env_for(url: str, **extra: str) -> dict:
    return dict(os.environ) | {"NOTIFY_DATABASE_URL": url, "NOTIFY_LOG_LEVEL": "WARNING"} | extra


def mailing_figures(url: str) -> tuple[datetime, datetime, dict[str, int]]:
    engine = make_engine(url)
    with engine.connect() as connection:
        activated = connection.execute(sa.text("SELECT activated_at FROM mailing")).scalar()
        last = connection.execute(sa.text("SELECT max(sent_at) FROM message")).scalar()
        counts = dict(
            connection.execute(
                sa.text("SELECT status, count(*) FROM message GROUP BY status")
            ).all()
        )
    engine.dispose()
    parse = (
        (lambda v: datetime.fromisoformat(v).replace(tzinfo=UTC))
        if isinstance(activated, str)
        else (lambda v: v if v.tzinfo else v.replace(tzinfo=UTC))
    )
    # (nothing sent, as when every answer is an error: the mailing's time is zero)
    return parse(activated), parse(last if last is not None else activated), counts


def run_mailing(
    url: str,
    clients: int,
    mock,
    *,
    concurrency: int = 200,
    workers: int = 1,
    daemons: int = 1,
    **env_extra: str,
) -> dict:
    """A fresh database with ``clients`` clients, one mailing, ``daemon --burst``: figures.

    ``workers`` sender processes under one daemon, or ``daemons`` separate daemons.
    """
    data.fresh_database(url)
    data.add_clients(url, clients)
    mock.forget()
    env = env_for(
        url, NOTIFY_SENDER_URL=mock.send_url, NOTIFY_CONCURRENCY=str(concurrency), **env_extra
    )
    subprocess.run(
        notifyctl("mailing", "create", "--text", "bench", "--start", "now", "--end", "now+2h"),
        env=env,
        check=True,
        capture_output=True,
    )
    command = notifyctl("daemon", "--burst", "--workers", str(workers))
    if daemons == 1:
        run = timed(command, env=env)
        assert run.returncode == 0, run.stderr
        rss, cpu = run.peak_rss_mb, run.cpu_seconds
    else:
        processes = [
            subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(daemons)
        ]
        for process in processes:
            _, err = process.communicate()
            assert process.returncode == 0, err
        rss = cpu = float("nan")
    activated, last, counts = mailing_figures(url)
    elapsed = (last - activated).total_seconds()
    return {
        "rate": clients / elapsed if elapsed else float("nan"),
        "seconds": elapsed,
        "rss": rss,
        "cpu": cpu,  #: the daemon's CPU seconds, start-up included (one daemon only)
        "counts": counts,
        "received": mock.received(limit=1)["total"],
    }
