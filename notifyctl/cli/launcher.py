"""``notifyctl up``: the mock and the daemon as child processes, and a live statistics view."""

import os
import signal
import subprocess
import sys
import time

from rich.console import Group
from rich.live import Live
from rich.table import Table

from notifyctl.cli.context import CliState
from notifyctl.render import STATUS_ORDER, info, login_lines

REFRESH = 1.0  # seconds between statistics refreshes
STOP_GRACE = 10.0  # seconds children get to drain before they are killed


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    # Own process group: Ctrl-C reaches us only, and we stop the children in order.
    return subprocess.Popen(
        [sys.executable, "-m", "notifyctl", *args], env=env, start_new_session=True
    )


def _wait_for_port(port: int, child: subprocess.Popen, timeout: float = 15.0) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def _started(child: subprocess.Popen, name: str, port: int) -> None:
    """Wait for ``child`` to listen on ``port``; exit 1 saying why when it does not."""
    if not _wait_for_port(port, child):
        if child.poll() is not None:  # it said why on the terminal (a refused setting, say)
            info(f"{name} stopped (exit {child.returncode}) before listening on port {port}")
        else:
            info(f"{name} did not start on port {port}; is the port taken?")
        raise SystemExit(1)


def _stats_view(cli: CliState) -> Table:
    from notifyctl.services.stats import overall_stats

    with cli.session() as session:
        rows = overall_stats(session=session)
    table = Table(title="Mailings (refreshed every second; Ctrl-C stops everything)")
    for name in ("mailing", "state", "total", *STATUS_ORDER):
        table.add_column(name, justify="left" if name == "state" else "right")
    for row in rows[:20]:
        table.add_row(
            str(row.mailing_id),
            row.state.value,
            str(row.total),
            *(str(row.by_status[s]) for s in STATUS_ORDER),
        )
    return table


def run_stack(cli: CliState, *, demo: bool, mock_port: int, api_port: int) -> None:
    """Run mock + daemon + API until Ctrl-C, showing the statistics."""
    from notifyctl.config import default_log_file
    from notifyctl.db import redact
    from notifyctl.services.demo import seed_demo
    from notifyctl.services.tokens import new_secret
    from notifyctl.timeutil import utcnow

    settings = cli.settings
    engine = cli.engine  # schema ready before the children start
    env = dict(os.environ)
    env["NOTIFY_DATABASE_URL"] = settings.database_url
    env.setdefault("NOTIFY_SENDER_URL", f"http://127.0.0.1:{mock_port}/v1/send")
    # Our API child takes this token; printed only when made up here (see login_lines).
    given = settings.login_token.get_secret_value() if settings.login_token else ""
    login = env["NOTIFY_LOGIN_TOKEN"] = given or new_secret()
    # The terminal shows the statistics; every line goes to the log file instead.
    log_file = env.setdefault("NOTIFY_LOG_FILE", str(default_log_file()))
    env.setdefault("NOTIFY_LOG_CONSOLE_LEVEL", "WARNING")
    if demo:
        env.setdefault("NOTIFY_RATE_LIMIT", "40")  # slow enough to watch it happen
        with cli.session() as session:
            created = seed_demo(session=session, now=utcnow())
        info(f"demo: added sample clients and mailings {', '.join(str(m.id) for m in created)}")
    children: list[subprocess.Popen] = []
    try:
        mock_args = ["mock", "--port", str(mock_port)]
        if demo:
            mock_args += ["--latency-ms", "30", "--jitter-ms", "60", "--error-rate", "0.05"]
        children.append(_spawn(mock_args, env))
        _started(children[-1], "the mock", mock_port)
        children.append(_spawn(["daemon"], env))
        children.append(_spawn(["api", "--port", str(api_port), "--child"], env))
        _started(children[-1], "the API", api_port)
        api = f"http://127.0.0.1:{api_port}"
        info(
            f"database: {redact(settings.database_url)}\n"
            f"REST API: {api}/api/v1  Swagger UI: {api}/docs/\n"
            f"{login_lines(settings, api, token=login, generated=not given)}\n"
            f"mock sending API: http://127.0.0.1:{mock_port}/docs/\n"
            f"logs: {log_file} (notifyctl logs --mailing ID)"
        )
        with Live(_stats_view(cli), refresh_per_second=2, transient=False) as live:
            while all(child.poll() is None for child in children):
                time.sleep(REFRESH)
                live.update(Group(_stats_view(cli)))
        failed = [c for c in children if c.poll() is not None]
        info(f"a component stopped (exit {failed[0].returncode}); stopping the rest")
    except KeyboardInterrupt:
        info("stopping...")
    finally:
        _stop(children)
        engine.dispose()


def _stop(children: list[subprocess.Popen]) -> None:
    for child in reversed(children):  # the daemon first, so it can still reach the mock
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                child.kill()
