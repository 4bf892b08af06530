"""Chaos soak: a mailing on PostgreSQL sent by several daemons through a faulty API,
with a daemon killed by SIGKILL every few seconds and restarted; then the books are checked.

python -m bench.chaos                          # the soak: 100,000 messages (make bench)
python -m bench.chaos --messages 3000 --quick  # the short run `make test` makes too

Checked against the mock's received log at the end (exit 1 on any violation):
  - no request arrived after the mailing's end_at;
  - no client was reached (accepted) under two message ids;
  - every message is in a final status;
  - `sent` in the statistics equals the messages the mock accepted;
  - a message accepted more than once only because a daemon was killed with its request
    in flight: repeated acceptances <= messages held by the killed daemons at the kills.
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bench import data
from bench.runner import mock_process, notifyctl
from notifyctl.db import make_engine
from notifyctl.models import FINAL_STATUSES

POSTGRES = os.environ.get(
    "NOTIFY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/notifyctl_chaos"
)


@dataclass(frozen=True)
class Plan:
    """How hard the run is."""

    messages: int = 100_000
    daemons: int = 3
    latency_ms: float = 100  # plus jitter: 100-400 ms per answer
    jitter_ms: float = 300
    error_rate: float = 0.10
    garbage_rate: float = 0.05
    drop_rate: float = 0.05
    outages: tuple[float, ...] = (20.0, 50.0)  # seconds after the start: 5-second outages
    outage_seconds: float = 5.0
    kill_every: float = 10.0
    concurrency: int = 200
    duration: timedelta = timedelta(minutes=20)  # start_at .. end_at of the mailing
    timeout: float = 1200.0  # seconds to wait for every message to be final


QUICK = Plan(
    messages=3000,
    latency_ms=20,
    jitter_ms=60,
    outages=(4.0,),
    outage_seconds=2.0,
    kill_every=3.0,
    concurrency=50,
    duration=timedelta(minutes=5),
    timeout=240.0,
)


@dataclass
class Result:
    plan: Plan
    seconds: float = 0.0
    kills: int = 0
    held_at_kills: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    accepted_ids: int = 0
    repeated_acceptances: int = 0
    requests: int = 0
    late_arrivals: int = 0
    clients_reached_twice: int = 0
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        sent = self.statuses.get("sent", 0)
        return (
            f"{self.plan.messages:,} messages, {self.plan.daemons} daemons, "
            f"{self.kills} SIGKILLs in {self.seconds:.0f} s: statuses {self.statuses}; "
            f"the mock accepted {self.accepted_ids:,} ids (sent {sent:,}) over "
            f"{self.requests:,} requests; {self.repeated_acceptances} accepted again "
            f"(<= {self.held_at_kills} held by killed daemons); {self.late_arrivals} late; "
            f"{self.clients_reached_twice} clients reached twice"
        )


class Daemons:
    """The daemon processes: start, kill one at random, restart."""

    def __init__(self, env: dict, count: int, engine) -> None:
        self.env, self.engine = env, engine
        self.processes = [self._start() for _ in range(count)]
        self.kills = 0
        self.held_at_kills = 0

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(
            notifyctl("daemon"), env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def kill_one(self, rng: random.Random) -> None:
        index = rng.randrange(len(self.processes))
        victim = self.processes[index]
        victim.kill()
        victim.wait()
        # What it held (claimed, in flight or queued) may have reached the API already.
        with self.engine.connect() as connection:
            held = connection.execute(
                sa.text(
                    "SELECT count(*) FROM message WHERE status = 'sending' AND lease_owner LIKE :o"
                ),
                {"o": f"%:{victim.pid}:%"},
            ).scalar_one()
        self.held_at_kills += held
        self.kills += 1
        self.processes[index] = self._start()

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


def run(plan: Plan, url: str = POSTGRES, *, log=print) -> Result:
    """One chaos run on a fresh database at ``url``; the result lists every violation."""
    result = Result(plan)
    rng = random.Random(7)
    data.fresh_database(url)
    data.add_clients(url, plan.messages)
    engine = make_engine(url)
    with mock_process("--seed", "11") as mock:
        mock.faults(
            latency_ms=plan.latency_ms,
            jitter_ms=plan.jitter_ms,
            error_rate=plan.error_rate,
            garbage_rate=plan.garbage_rate,
            drop_rate=plan.drop_rate,
        )
        env = dict(os.environ) | {
            "NOTIFY_DATABASE_URL": url,
            "NOTIFY_SENDER_URL": mock.send_url,
            "NOTIFY_CONCURRENCY": str(plan.concurrency),
            "NOTIFY_REQUEST_TIMEOUT": "2",
            "NOTIFY_LEASE_SECONDS": "7",
            "NOTIFY_BREAKER_THRESHOLD": "200",
            "NOTIFY_LOG_LEVEL": "WARNING",
            "NOTIFY_METRICS_PORT": "0",
        }
        start = datetime.now(UTC)
        end = start + plan.duration
        subprocess.run(
            notifyctl(
                "mailing",
                "create",
                "--text",
                "chaos",
                "--start",
                start.isoformat(),
                "--end",
                end.isoformat(),
            ),
            env=env,
            check=True,
            capture_output=True,
        )
        daemons = Daemons(env, plan.daemons, engine)
        began = time.monotonic()
        outages = list(plan.outages)
        next_kill = began + plan.kill_every
        try:
            while time.monotonic() - began < plan.timeout:
                time.sleep(0.25)
                now = time.monotonic()
                if outages and now - began >= outages[0]:
                    outages.pop(0)
                    mock.faults(outage_seconds=plan.outage_seconds)
                    log(f"chaos: {plan.outage_seconds:.0f} s outage at {now - began:.0f} s")
                if now >= next_kill:
                    daemons.kill_one(rng)
                    next_kill = now + plan.kill_every
                total, unfinished = _progress(engine)
                if total == plan.messages and unfinished == 0:
                    break
        finally:
            daemons.stop()
        result.seconds = time.monotonic() - began
        result.kills, result.held_at_kills = daemons.kills, daemons.held_at_kills
        _check(result, engine, mock, end)
    engine.dispose()
    return result


def _progress(engine) -> tuple[int, int]:
    """Messages created so far, and how many of them are not final yet."""
    with engine.connect() as connection:
        total, unfinished = connection.execute(
            sa.text(
                "SELECT count(*), count(*) FILTER (WHERE status IN ('pending', 'sending')) "
                "FROM message"
            )
        ).one()
    return total, unfinished


def _check(result: Result, engine, mock, end: datetime) -> None:
    with engine.connect() as connection:
        result.statuses = dict(
            connection.execute(
                sa.text("SELECT status, count(*) FROM message GROUP BY status")
            ).all()
        )
    received = mock.all_received()
    result.requests = sum(item["count"] for item in received)
    accepted = [item for item in received if item["accepted"] > 0]
    result.accepted_ids = len(accepted)
    result.repeated_acceptances = sum(item["accepted"] - 1 for item in accepted)
    result.late_arrivals = sum(
        1 for item in received if datetime.fromisoformat(item["last_at"]) >= end
    )
    ids_per_phone = Counter(item["phone"] for item in accepted)
    result.clients_reached_twice = sum(1 for n in ids_per_phone.values() if n > 1)

    violations = result.violations
    if result.late_arrivals:
        violations.append(f"{result.late_arrivals} messages arrived at or after end_at")
    if result.clients_reached_twice:
        violations.append(f"{result.clients_reached_twice} clients reached under two ids")
    unfinished = {s: n for s, n in result.statuses.items() if s not in FINAL_STATUSES}
    if unfinished:
        violations.append(f"messages not final: {unfinished}")
    if result.statuses.get("sent", 0) != result.accepted_ids:
        violations.append(
            f"statistics say sent {result.statuses.get('sent', 0)}, "
            f"the mock accepted {result.accepted_ids}"
        )
    if result.repeated_acceptances > result.held_at_kills:
        violations.append(
            f"{result.repeated_acceptances} repeated acceptances, but only "
            f"{result.held_at_kills} messages were held by killed daemons"
        )
    if sum(result.statuses.values()) != result.plan.messages:
        violations.append(f"{sum(result.statuses.values())} messages for {result.plan.messages}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=Plan.messages)
    parser.add_argument("--daemons", type=int, default=Plan.daemons)
    parser.add_argument("--quick", action="store_true", help="short latencies and kill interval")
    args = parser.parse_args()
    base = QUICK if args.quick else Plan()
    from dataclasses import replace

    plan = replace(base, messages=args.messages, daemons=args.daemons)
    result = run(plan)
    print(result.summary())
    for violation in result.violations:
        print(f"VIOLATION: {violation}", file=sys.stderr)
    raise SystemExit(1 if result.violations else 0)


if __name__ == "__main__":
    main()


def bench_chaos(size, _work) -> list:
    """The soak as a benchmark part (`make bench`); a violation fails the run."""
    from dataclasses import replace

    plan = Plan() if size == "full" else replace(Plan(), messages=10_000)
    result = run(plan)
    if result.violations:
        raise SystemExit("chaos: " + "; ".join(result.violations))
    return [
        (
            f"chaos soak: {plan.messages:,} messages, PostgreSQL, {plan.daemons} daemons, mock "
            f"{plan.latency_ms:.0f}-{plan.latency_ms + plan.jitter_ms:.0f} ms, "
            f"{plan.error_rate:.0%} errors, {plan.garbage_rate:.0%} garbage, "
            f"{plan.drop_rate:.0%} drops, {len(plan.outages)} outages of "
            f"{plan.outage_seconds:.0f} s, SIGKILL every {plan.kill_every:.0f} s",
            "no late, no client twice, all final, sent = accepted, repeats <= held at kills",
            result.summary(),
            f"python -m bench --only chaos --size {size}  (or python -m bench.chaos)",
        )
    ]
