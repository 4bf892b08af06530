"""How the costs grow with the audience: 10,000 / 100,000 / 1,000,000 clients (SQLite).

For each size: CSV import, activation (the mailing's messages created), the daemon's peak
memory while it sends them all, `notifyctl stats` and `GET /api/v1/stats`. The figures
also go to bench/scale.png (matplotlib, from the optional `bench` extra).
"""

import json
import subprocess
import time
from pathlib import Path

from sqlmodel import Session

from bench import data
from bench.common import Row, env_for
from bench.runner import free_port, mock_process, notifyctl, timed, wait_http

# python -c "import json; from bench.scale import *; chart(json.load(open(HERE / 'scale.json')),
#            HERE / 'scale.png')" redraws the chart from the last measured points.
from notifyctl.db import make_engine
from notifyctl.services import delivery
from notifyctl.services.mailings import get_mailing
from notifyctl.timeutil import utcnow

HERE = Path(__file__).resolve().parent
STEPS = {"full": (10_000, 100_000, 1_000_000), "small": (1_000, 10_000, 100_000)}


def _api_stats_ms(url: str, env: dict, requests: int = 50) -> float:
    import httpx

    port, token = free_port(), "nfy_bench-scale-token"
    api = subprocess.Popen(
        notifyctl("api", "--port", str(port)),
        env=env | {"NOTIFY_LOGIN_TOKEN": token},
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        durations = []
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
            for _ in range(requests):
                started = time.perf_counter()
                client.get("/api/v1/stats").raise_for_status()
                durations.append(time.perf_counter() - started)
        durations.sort()
        return durations[int(len(durations) * 0.99) - 1] * 1000
    finally:
        api.terminate()
        api.wait(10)


def measure(size: int, work: Path, mock) -> dict:
    url = f"sqlite:///{work / f'scale-{size}.db'}"
    data.fresh_database(url)
    env = env_for(url, NOTIFY_SENDER_URL=mock.send_url)
    csv = data.write_csv(work / f"scale-{size}.csv", size)
    imported = timed(notifyctl("client", "import", str(csv)), env=env)
    assert imported.returncode == 0, imported.stderr
    created = subprocess.run(
        notifyctl("mailing", "create", "--text", "scale", "--start", "now", "--end", "now+2h"),
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    mailing_id = int(created.stdout.strip())
    engine = make_engine(url)
    with Session(engine) as session:  # activation as the daemon does it, timed alone
        started = time.perf_counter()
        delivery.activate(
            session=session,
            mailing=get_mailing(session=session, mailing_id=mailing_id),
            now=utcnow(),
        )
        session.commit()
        activation = time.perf_counter() - started
    engine.dispose()
    mock.forget()
    sent = timed(notifyctl("daemon", "--burst"), env=env)
    assert sent.returncode == 0, sent.stderr
    stats = min(timed(notifyctl("stats", "--json"), env=env).seconds for _ in range(3))
    return {
        "clients": size,
        "import_s": imported.seconds,
        "activation_s": activation,
        "daemon_rss_mb": sent.peak_rss_mb,
        "stats_s": stats,
        "api_stats_p99_ms": _api_stats_ms(url, env),
    }


def chart(points: list[dict], path: Path) -> bool:
    """A PNG of the four figures against the audience size; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = [p["clients"] for p in points]
    panels = [
        ("import_s", "CSV import (s)"),
        ("activation_s", "activation (s)"),
        ("daemon_rss_mb", "daemon peak RSS (MB)"),
        ("stats_s", "`notifyctl stats` (s)"),
        ("api_stats_p99_ms", "GET /api/v1/stats p99 (ms)"),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(18, 3.6))
    for axis, (key, title) in zip(axes, panels, strict=True):
        axis.plot(sizes, [p[key] for p in points], marker="o")
        axis.set_xscale("log")
        axis.set_ylim(bottom=0)  # flat should look flat
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("clients (= messages)")
        axis.grid(True, alpha=0.3)
    figure.suptitle("notifyctl: cost against audience size (SQLite, 2 cores)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def bench_scale(size, work: Path) -> list[Row]:
    command = f"python -m bench --only scale --size {size}"
    with mock_process() as mock:
        points = [measure(clients, work, mock) for clients in STEPS[size]]
    (HERE / "scale.json").write_text(json.dumps(points, indent=2) + "\n")
    drawn = chart(points, HERE / "scale.png")
    rows: list[Row] = []
    for point in points:
        rows.append(
            (
                f"scale: {point['clients']:,} clients, SQLite",
                "daemon < 200 MB and flat; stats < 0.5 s",
                f"import {point['import_s']:.1f} s, activation {point['activation_s']:.2f} s, "
                f"daemon peak RSS {point['daemon_rss_mb']:.0f} MB, `notifyctl stats` "
                f"{point['stats_s']:.2f} s, "
                f"GET /api/v1/stats p99 {point['api_stats_p99_ms']:.0f} ms",
                command + ("" if drawn else " (chart skipped: no matplotlib)"),
            )
        )
    return rows
