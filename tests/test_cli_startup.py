"""The everyday commands load only what they use, so that they start at once.

Each command runs in a fresh interpreter (as a user's shell starts it), against a migrated
SQLite file; afterwards the modules it loaded are listed and checked. Timings are the
benchmark's business (``python -m bench --only startup``); this checks the cause: a server,
the daemon or the migration tool loaded by a command that only reads or writes a few rows.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: What no everyday command needs: the web stack, the HTTP clients, the daemon's and the
#: API's libraries, migrations (the database is already at head), our own servers.
HEAVY = (
    "fastapi",
    "uvicorn",
    "starlette",
    "authlib",
    "aiohttp",
    "httpx",
    "jinja2",
    "prometheus_client",
    "alembic",
    "daemon",
    "web",
    "mock",
)
#: What `notifyctl stats` (every mailing's counts) does without: it reads two tables with
#: SQLAlchemy Core, so neither the ORM nor the SQLModel classes are loaded.
ORM = ("sqlalchemy.orm", "sqlmodel", "notifyctl.models")

#: Runs the console script's entry point, then writes the names of the loaded modules.
RUN = """
import json, sys
report = sys.argv.pop(1)
from notifyctl.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
with open(report, "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def loaded(tmp_path: Path, db: str, *args: str) -> set[str]:
    """The modules ``notifyctl ARGS`` loaded, in a process of its own."""
    report = tmp_path / "modules.json"
    env = dict(os.environ) | {"NOTIFY_DATABASE_URL": db}
    run = subprocess.run(
        [sys.executable, "-c", RUN, str(report), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    result = json.loads(report.read_text())
    assert result["code"] in (0, None), run.stderr
    return set(result["modules"])


def among(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The modules that are one of ``packages`` or inside one (``web`` is not ``webbrowser``)."""
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


@pytest.fixture
def db(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "notifyctl.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


EVERYDAY = [
    ("--help",),
    ("stats",),
    ("stats", "--json"),
    ("client", "list"),
    ("client", "list", "--json"),
    ("mailing", "create", "--text", "Sale", "--start", "now+1h", "--end", "now+2h"),
]


@pytest.mark.parametrize("args", EVERYDAY, ids=" ".join)
def test_everyday_commands_load_no_server_daemon_or_migrations(tmp_path, db, args):
    assert among(loaded(tmp_path, db, *args), HEAVY) == []


@pytest.mark.parametrize("args", [("stats",), ("stats", "--json")], ids=" ".join)
def test_stats_of_every_mailing_loads_no_orm(tmp_path, db, args):
    assert among(loaded(tmp_path, db, *args), ORM) == []
