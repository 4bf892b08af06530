"""Run the time-sensitive tests (``-m clock``) at other moments, under libfaketime.

``python -m tests.at_other_hours`` runs ``pytest -m clock`` once per moment in ``MOMENTS``,
each in a process whose wall clock says that moment (and runs on from it); ``make test``
does so after the normal run. The moments are chosen to be hostile: before 05:00 UTC on a
DST change, across UTC midnight on a 29 February. Other moments and other
pytest arguments can be given::

    python -m tests.at_other_hours --at 2027-06-30T23:59:00Z -- tests/test_report.py -q

The fake clock is an offset from the real one (``FAKETIME=+N`` seconds), not a start time
(``FAKETIME=@…``): with a start time every process restarts the clock at that moment, so a
daemon or mock started by a test would lag its parent. The monotonic clock stays real
(``DONT_FAKE_MONOTONIC``): asyncio and timeouts need it. PostgreSQL's own clock is not
faked; nothing of ours asks it for the time (no SQL ``now()``), and nothing may.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: (moment, why it is hostile). Each adds one ``pytest -m clock`` run.
#: Two, each about a minute: the suite's 15 minutes allow no more. Each is hostile twice
#: over: before 05:00 UTC on the EU DST change (01:00 UTC), and across UTC midnight into
#: 1 March of a leap year. (Dropped as the suite grew: 2027-01-12 23:59 UTC and New Year's
#: Eve, midnights the second moment also crosses; the US DST day, which the window tests'
#: DST tables cover at any hour; 29 February at noon, kept here at midnight.)
MOMENTS = (
    (datetime(2027, 3, 28, 0, 59, 30, tzinfo=UTC), "before 05:00 UTC: EU DST change at 01:00"),
    (datetime(2028, 2, 29, 23, 59, 30, tzinfo=UTC), "29 February, crossing into 1 March"),
)
DEFAULT_PYTEST_ARGS = ("-m", "clock", "-q", "-p", "no:cacheprovider")
#: How far the child's clock may be from the moment asked for (it starts, then reports).
TOLERANCE = timedelta(seconds=30)

_PRINT_NOW = "from datetime import UTC, datetime; print(datetime.now(UTC).isoformat())"


def library() -> Path:
    """The libfaketime.so.1 shipped inside the ``libfaketime`` package (dev extra)."""
    spec = importlib.util.find_spec("libfaketime")
    if spec is None or spec.origin is None:
        raise SystemExit("at_other_hours: libfaketime is missing: pip install -e .[test]")
    path = Path(spec.origin).parent / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
    if not path.is_file():
        raise SystemExit(f"at_other_hours: {path} is missing from the libfaketime package")
    return path


def faked_env(moment: datetime) -> dict[str, str]:
    """The environment of a process whose wall clock reads ``moment`` now, and runs on."""
    offset = (moment - datetime.now(UTC)).total_seconds()
    preload = os.environ.get("LD_PRELOAD")
    env = dict(os.environ) | {
        "LD_PRELOAD": f"{library()}:{preload}" if preload else str(library()),
        "FAKETIME": f"{offset:+.3f}",
        "DONT_FAKE_MONOTONIC": "1",
        # Read FAKETIME once, at the first clock call, never again. With FAKETIME_NO_CACHE
        # libfaketime calls getenv() and re-parses on every clock call in every thread,
        # which races with os.environ writes (monkeypatch.setenv) in the main thread: the
        # whole suite segfaulted that way. A fixed offset has nothing to re-read.
        "FAKETIME_CACHE_DURATION": str(2**31 - 1),  # seconds
    }
    env.pop("FAKETIME_NO_CACHE", None)
    return env


def check_faked(env: dict[str, str], moment: datetime) -> datetime:
    """The time a child process sees; exits loudly when it is not (near) ``moment``."""
    answer = subprocess.run(
        [sys.executable, "-c", _PRINT_NOW], env=env, capture_output=True, text=True, check=False
    )
    if answer.returncode != 0:
        raise SystemExit(f"at_other_hours: the faked child failed:\n{answer.stderr}")
    seen = datetime.fromisoformat(answer.stdout.strip())
    if abs(seen - moment) > TOLERANCE:
        raise SystemExit(
            f"at_other_hours: libfaketime did not take effect: asked for {moment.isoformat()},"
            f" the child saw {seen.isoformat()}"
        )
    return seen


def parse_moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset, e.g. Z")
    return moment.astimezone(UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--at", type=parse_moment, action="append", help="a moment (ISO-8601, with offset)"
    )
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    args = parser.parse_args(argv)
    moments = [(moment, "asked for") for moment in args.at] if args.at else list(MOMENTS)
    pytest_args = args.pytest_args or list(DEFAULT_PYTEST_ARGS)
    failed = []
    for moment, why in moments:
        env = faked_env(moment)
        seen = check_faked(env, moment)
        print(f"\n== at {seen:%Y-%m-%d %H:%M:%S} UTC ({why}): pytest {' '.join(pytest_args)}")
        sys.stdout.flush()
        began = time.monotonic()
        code = subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args], env=env, check=False
        ).returncode
        print(f"== {moment.isoformat()}: exit {code} in {time.monotonic() - began:.0f} s")
        if code != 0:
            failed.append(moment.isoformat())
    if failed:
        print(f"at_other_hours: failed at {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
