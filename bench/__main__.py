"""Run the benchmarks and rewrite bench/RESULTS.md.

python -m bench                      # everything at full size (make bench)
python -m bench --size small         # a quick pass at a tenth of the sizes
python -m bench --only throughput    # one part: startup, import, stats, throughput,
                                     # daemons, memory, scale, api, limits, chaos, prune,
                                     # claims
python -m bench --only claims --history 1000000   # claims over a smaller history
"""

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench import data
from bench.chaos import bench_chaos
from bench.claims import HISTORY, PLAN, bench_claims
from bench.common import POSTGRES, SIZES, Row, env_for, run_mailing
from bench.daemons import bench_daemons
from bench.limits import bench_limits
from bench.prune import bench_prune
from bench.runner import mock_process, notifyctl, timed, wait_http
from bench.scale import bench_scale
from notifyctl.db import make_engine

HERE = Path(__file__).resolve().parent


def bench_startup(_size, _work: Path) -> list[Row]:
    runs = sorted(timed(notifyctl("--help")).seconds for _ in range(10))
    return [
        (
            "`notifyctl --help` start-up (median of 10)",
            "< 0.15 s",
            f"{statistics.median(runs):.3f} s",
            "python -m bench --only startup",
        )
    ]


def bench_import(size, work: Path) -> list[Row]:
    count = SIZES[size]["import"]
    path = data.write_csv(work / "clients.csv", count)
    rows = []
    # PostgreSQL COPYs each batch into a staging table; SQLite inserts it.
    targets = (
        ("SQLite", f"sqlite:///{work / 'import.db'}", "< 60 s, flat memory"),
        ("PostgreSQL", POSTGRES, "< 20 s, flat memory"),
    )
    for backend, url, target in targets:
        data.fresh_database(url)
        run = timed(notifyctl("--db", url, "client", "import", str(path)), env=env_for(url))
        assert run.returncode == 0, run.stderr
        rows.append(
            (
                f"import {count:,} clients from CSV, {backend}",
                target,
                f"{run.seconds:.1f} s ({count / run.seconds:,.0f} rows/s), "
                f"peak RSS {run.peak_rss_mb:.0f} MB",
                f"python -m bench --only import --size {size}",
            )
        )
    return rows


def bench_stats(size, work: Path) -> list[Row]:
    from sqlmodel import Session

    from notifyctl.services.stats import overall_stats

    count = SIZES[size]["stats"]
    rows = []
    for backend, url in (("SQLite", f"sqlite:///{work / 'stats.db'}"), ("PostgreSQL", POSTGRES)):
        data.fresh_database(url)
        data.add_stats_data(url, mailings=100, messages=count)
        cli = min(
            timed(notifyctl("--db", url, "stats", "--json"), env=env_for(url)).seconds
            for _ in range(3)
        )
        engine = make_engine(url)
        durations = []
        for _ in range(5):
            with Session(engine) as session:
                started = time.perf_counter()
                overall_stats(session=session)
                durations.append(time.perf_counter() - started)
        engine.dispose()
        rows.append(
            (
                f"`notifyctl stats`, 100 mailings, {count:,} messages, {backend}",
                "< 0.3 s whole command",
                f"{cli:.3f} s whole command; "
                f"{statistics.median(durations) * 1000:.0f} ms the query",
                f"python -m bench --only stats --size {size}",
            )
        )
    return rows


#: what each backend's daemon must reach, as a fraction of the mock's ceiling (same run)
RATE_TARGETS = {
    ("SQLite", "defaults"): 0.6,
    ("SQLite", "logs off"): 0.7,
    ("PostgreSQL", "defaults"): 0.5,
    ("PostgreSQL", "logs off"): 0.5,
}
CPU_TARGET = 1.6  # the daemon's CPU per message, at most, in bare client CPU per request
#: the two ways a daemon runs: the defaults (a request line and a status line per
#: message, text on stderr) and NOTIFY_LOG_MESSAGES=false
LOGGING = {
    "defaults": {"NOTIFY_LOG_LEVEL": "INFO"},
    "logs off": {"NOTIFY_LOG_LEVEL": "INFO", "NOTIFY_LOG_MESSAGES": "false"},
}


def bare_client(mock, requests: int) -> tuple[float, float]:
    """The mock's ceiling and what it costs: requests/s and CPU seconds per request of a
    bare aiohttp client (bench/loadgen.py, 200 in flight), as a process of its own."""
    run = timed(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--url",
            mock.send_url,
            "--requests",
            str(requests),
            "--concurrency",
            "200",
        ]
    )
    assert run.returncode == 0, run.stderr
    mock.forget()
    return json.loads(run.stdout)["per_second"], run.cpu_seconds / requests


def bench_throughput(size, work: Path) -> list[Row]:
    clients = SIZES[size]["throughput"]
    command = f"python -m bench --only throughput --size {size}"
    rows = []
    with mock_process() as mock:
        for backend, url in (("SQLite", f"sqlite:///{work / 'send.db'}"), ("PostgreSQL", POSTGRES)):
            ceiling, bare_cpu = bare_client(mock, clients)
            for logging, settings in LOGGING.items():
                result = run_mailing(url, clients, mock, **settings)
                assert result["counts"] == {"sent": clients}, result
                cpu = result["cpu"] / clients
                rows.append(
                    (
                        f"{clients:,}-message mailing, no faults, {backend}, 1 daemon process, "
                        f"{logging}",
                        f"≥ {RATE_TARGETS[backend, logging]} x ceiling",
                        f"{result['rate']:,.0f} msg/s = {result['rate'] / ceiling:.2f} x ceiling "
                        f"({ceiling:,.0f} req/s, aiohttp load generator, same run)",
                        command,
                    )
                )
                rows.append(
                    (
                        f"daemon CPU per message, {backend}, {logging}",
                        f"≤ {CPU_TARGET} x a bare client's per request"
                        if logging == "defaults"
                        else "(for comparison)",
                        f"{cpu * 1e6:,.0f} µs = {cpu / bare_cpu:.2f} x the bare aiohttp "
                        f"client's {bare_cpu * 1e6:,.0f} µs per request (same mock, same run; "
                        "start-up included)",
                        command,
                    )
                )
            result = run_mailing(url, clients, mock, workers=2, **LOGGING["defaults"])
            assert result["counts"] == {"sent": clients}, result
            rows.append(
                (
                    f"{clients:,}-message mailing, no faults, {backend}, 2 sender processes, "
                    "defaults",
                    "≥ 0.5 x ceiling (two processes and the mock share 2 cores)",
                    f"{result['rate']:,.0f} msg/s = {result['rate'] / ceiling:.2f} x ceiling",
                    command,
                )
            )
    with mock_process("--latency-ms", "50") as mock:
        url = f"sqlite:///{work / 'latency.db'}"
        result = run_mailing(url, clients, mock, concurrency=500)
        rows.append(
            (
                f"{clients:,}-message mailing, mock latency 50 ms, SQLite, 500 in flight",
                "≥ 1,500 msg/s",
                f"{result['rate']:,.0f} msg/s",
                f"python -m bench --only throughput --size {size}",
            )
        )
        rows.append(_first_request_delay(work, mock))
    return rows


def _first_request_delay(work: Path, mock) -> Row:
    url = f"sqlite:///{work / 'delay.db'}"
    data.fresh_database(url)
    data.add_clients(url, 100)
    mock.forget()
    env = env_for(url, NOTIFY_SENDER_URL=mock.send_url)
    daemon = subprocess.Popen(notifyctl("daemon"), env=env, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
        subprocess.run(
            notifyctl(
                "mailing",
                "create",
                "--text",
                "delay",
                "--start",
                start.isoformat(),
                "--end",
                "now+1h",
            ),
            env=env,
            check=True,
            capture_output=True,
        )
        while not mock.received(limit=1)["items"]:
            time.sleep(0.05)
        first = datetime.fromisoformat(mock.received(limit=1)["items"][0]["first_at"])
    finally:
        daemon.terminate()
        daemon.wait(30)
    return (
        "delay from `start_at` to the first request (mock 50 ms latency)",
        "< 2 s",
        f"{(first - start).total_seconds():.2f} s",
        "python -m bench --only throughput",
    )


def bench_memory(size, work: Path) -> list[Row]:
    rows = []
    with mock_process() as mock:
        for clients in sorted({SIZES[size]["throughput"], SIZES[size]["memory"]}):
            result = run_mailing(f"sqlite:///{work / 'memory.db'}", clients, mock)
            rows.append(
                (
                    f"daemon peak RSS, {clients:,}-message mailing, SQLite",
                    "< 200 MB, flat",
                    f"{result['rss']:.0f} MB ({result['rate']:,.0f} msg/s)",
                    f"python -m bench --only memory --size {size}",
                )
            )
        rows.append(
            (
                f"mock peak RSS after receiving {clients:,} messages (its received log)",
                "cheap with 1,000,000 entries",
                f"{mock.peak_rss_mb():.0f} MB",
                f"python -m bench --only memory --size {size}",
            )
        )
    rows.append(_huge_error_bodies(work, SIZES[size]["bodies"], size))
    return rows


def _huge_error_bodies(work: Path, clients: int, size: str) -> Row:
    """Every answer a 503 with a 10 MB body: the daemon reads 64 KiB of each, at most."""
    with mock_process("--error-rate", "1", "--error-body-bytes", "10000000") as mock:
        result = run_mailing(
            f"sqlite:///{work / 'bodies.db'}",
            clients,
            mock,
            NOTIFY_MAX_ATTEMPTS="3",
            NOTIFY_BREAKER_THRESHOLD="1000000",
        )
    return (
        f"daemon peak RSS, {clients:,} messages, every answer 503 with a 10 MB body, SQLite",
        "< 200 MB (320 Mi is the Kubernetes limit)",
        f"{result['rss']:.0f} MB over {result['counts'].get('failed', 0):,} messages failed "
        "after 3 tries each",
        f"python -m bench --only memory --size {size}",
    )


def _latencies(base: str, path: str, token: str, count: int) -> tuple[float, float]:
    import httpx

    durations = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(count):
            started = time.perf_counter()
            client.get(path).raise_for_status()
            durations.append(time.perf_counter() - started)
    durations.sort()
    return durations[len(durations) // 2] * 1000, durations[int(len(durations) * 0.99) - 1] * 1000


def bench_api(size, work: Path) -> list[Row]:
    """p50/p99 of the statistics routes at 100 mailings and N messages, alone and while sending."""
    from bench.runner import free_port

    count = SIZES[size]["stats"]
    clients = SIZES[size]["throughput"]
    url = f"sqlite:///{work / 'api.db'}"
    data.fresh_database(url)
    data.add_stats_data(url, mailings=100, messages=count)
    data.add_clients(url, clients)
    port, token = free_port(), "nfy_bench-login-token"
    rows = []
    with mock_process() as mock:
        env = env_for(url, NOTIFY_SENDER_URL=mock.send_url, NOTIFY_LOGIN_TOKEN=token)
        api = subprocess.Popen(
            notifyctl("api", "--port", str(port)), env=env, stderr=subprocess.DEVNULL
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/healthz")
            for label in ("alone", "while the daemon sends"):
                daemon = None
                if label != "alone":
                    subprocess.run(
                        notifyctl(
                            "mailing",
                            "create",
                            "--text",
                            "load",
                            "--start",
                            "now",
                            "--end",
                            "now+1h",
                        ),
                        env=env,
                        check=True,
                        capture_output=True,
                    )
                    daemon = subprocess.Popen(
                        notifyctl("daemon"), env=env, stderr=subprocess.DEVNULL
                    )
                    while mock.received(limit=1)["total"] < 1000:
                        time.sleep(0.1)
                try:
                    for path in ("/api/v1/stats", "/api/v1/mailings/1/stats"):
                        p50, p99 = _latencies(base, path, token, 200)
                        target = "p99 < 100 ms" if label == "alone" else "p99 < 250 ms"
                        rows.append(
                            (
                                f"`GET {path.replace('/1/', '/{id}/')}`, 100 mailings, "
                                f"{count:,} messages, SQLite, {label}",
                                target,
                                f"p50 {p50:.0f} ms, p99 {p99:.0f} ms",
                                f"python -m bench --only api --size {size}",
                            )
                        )
                finally:
                    if daemon is not None:
                        sent = mock.received(limit=1)["total"]
                        daemon.terminate()
                        daemon.wait(30)
                        rows[-1] = (
                            *rows[-1][:2],
                            rows[-1][2] + f" (daemon sent {sent:,} meanwhile)",
                            rows[-1][3],
                        )
        finally:
            api.terminate()
            api.wait(10)
    return rows


PARTS = {
    "startup": bench_startup,
    "import": bench_import,
    "stats": bench_stats,
    "throughput": bench_throughput,
    "daemons": bench_daemons,
    "memory": bench_memory,
    "scale": bench_scale,
    "api": bench_api,
    "limits": bench_limits,
    "chaos": bench_chaos,
    "prune": bench_prune,
    "claims": bench_claims,
}


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {system}"


def versions() -> str:
    """notifyctl, its main libraries, SQLite and the PostgreSQL server measured against."""
    import sqlite3
    from importlib.metadata import version

    names = ("notifyctl", "sqlalchemy", "fastapi", "uvicorn", "httpx", "aiohttp", "psycopg")
    found = [f"{name} {version(name)}" for name in names]
    found.append(f"SQLite {sqlite3.sqlite_version}")
    try:
        engine = make_engine(POSTGRES)
        with engine.connect() as connection:
            found.append("PostgreSQL " + connection.exec_driver_sql("SHOW server_version").scalar())
        engine.dispose()
    except sa.exc.SQLAlchemyError:
        pass
    return ", ".join(found)


def write_results(results: dict) -> None:
    """RESULTS.md from every part measured so far (bench/results.json keeps them)."""
    (HERE / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    lines = [
        "# Benchmark results",
        "",
        "Rewritten by `make bench` (`python -m bench`); `python -m bench --only PART` re-measures",
        "one part and keeps the others. The mock and the daemon share the machine's cores.",
        "",
        "| figure | target | result | command | measured |",
        "|---|---|---|---|---|",
    ]
    for name in PARTS:
        part = results.get(name)
        if part is None:
            continue
        for figure, target, result, command in part["rows"]:
            lines.append(f"| {figure} | {target} | {result} | `{command}` | {part['measured']} |")
    machines = sorted({part["machine"] for part in results.values()})
    lines += ["", "Machine: " + "; ".join(machines), "", "Versions: " + versions(), ""]
    if "claims" in results and PLAN.exists():
        lines += ["## The claim's plan on a big history", "", "```", PLAN.read_text(), "```", ""]
    if (HERE / "scale.png").exists():
        lines += ["![cost against audience size](scale.png)", ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--only", choices=sorted(PARTS), action="append")
    parser.add_argument(
        "--history", type=int, default=HISTORY, help="final messages stored for `claims`"
    )
    args = parser.parse_args()
    PARTS["claims"] = functools.partial(bench_claims, history=args.history)
    # Processes run as from an installed copy, which keeps its modules' bytecode: a shell
    # that sets PYTHONDONTWRITEBYTECODE would make every start-up compile them again.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parts = args.only or list(PARTS)
    results_path = HERE / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    with tempfile.TemporaryDirectory(prefix="notifyctl-bench-") as tmp:
        for name in parts:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            part_rows = PARTS[name](args.size, Path(tmp))
            for row in part_rows:
                print(f"  {row[0]}: {row[2]}", file=sys.stderr, flush=True)
            results[name] = {
                "rows": part_rows,
                "size": args.size,
                "measured": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                "machine": machine(),
            }
            write_results(results)


if __name__ == "__main__":
    main()
