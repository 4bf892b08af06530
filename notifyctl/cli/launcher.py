"""``notifyctl up``: the mock and the daemon as child processes, and a live statistics view.

Ctrl-C, SIGTERM (``kill``, systemd, a container runtime) and SIGHUP (the terminal closed)
all stop the children the same way, and ``up`` exits 0 once they are gone. The children
run in sessions of their own, so no signal reaches them but the ones ``up`` sends.
"""

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Group
from rich.live import Live
from rich.table import Table

from notifyctl.cli.context import CliState
from notifyctl.render import STATUS_ORDER, info, login_lines

REFRESH = 1.0  # seconds between statistics refreshes
STOP_GRACE = 10.0  # seconds children get to drain before they are killed
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a child gets when its parent dies
#: What stops ``up`` and its children: Ctrl-C, ``kill``/systemd/containers, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """One of STOP_SIGNALS arrived. A BaseException, as KeyboardInterrupt is: no ``except
    Exception`` on its way (in SQLAlchemy, say) may take it for an error and go on."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


class StopSignals:
    """STOP_SIGNALS while ``up`` runs, and the children they must reach.

    Running, a signal raises ``Stopped``: one ``finally`` then stops the children, whatever
    stopped ``up``. While a child starts (``starting``), a signal waits until the child is
    in ``children``, so none is left behind. From the first signal on (or ``forward()``),
    a further one goes to the children still running (a daemon's second signal ends it at
    once) instead of raising again and cutting the stopping short.
    """

    def __init__(self) -> None:
        self.children: list[subprocess.Popen] = []
        self._starting = False
        self._held: int | None = None
        self._forwarding = False

    def __enter__(self) -> "StopSignals":
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *_exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame) -> None:
        if self._forwarding:
            for child in self.children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
        elif self._starting:
            self._held = self._held or signum
        else:
            self._forwarding = True
            raise Stopped(signum)

    @contextmanager
    def starting(self) -> Iterator[None]:
        self._starting = True
        try:
            yield
        finally:
            self._starting = False
        if self._held:
            self._forwarding = True
            raise Stopped(self._held)

    def forward(self) -> None:
        self._forwarding = True


def _spawn(signals: StopSignals, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start ``notifyctl ARGS`` as a child of ``up``, listed for stopping."""
    with signals.starting():
        # Its own session: no signal reaches it but ours (Ctrl-C, a closed terminal), and we
        # stop the children in order; it dies with us too (see _die_with_parent).
        child = subprocess.Popen(
            [sys.executable, "-m", "notifyctl", *args],
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        signals.children.append(child)
    return child


def refuse_taken_ports(ports: dict[str, tuple[str, int]]) -> None:
    """Raise InvalidInput naming the option (``--api-port``) of a port given twice or that
    another program listens on: found before anything starts or prints a link to it."""
    import socket

    from notifyctl.errors import InvalidInput

    seen: dict[int, str] = {}
    for field, (host, port) in ports.items():
        if port in seen:
            raise InvalidInput(f"port {port} is also {_option(seen[port])}", field=field)
        seen[port] = field
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            try:
                probe.bind((host, port))
            except OSError as exc:
                reason = (
                    "is in use"
                    if exc.errno == errno.EADDRINUSE
                    else f"cannot be had: {exc.strerror}"
                )
                raise InvalidInput(f"{host}:{port} {reason}", field=field) from None


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def _die_with_parent() -> None:
    """In the child, before it runs: end (SIGTERM) when ``up`` dies, even by SIGKILL, which
    no handler of ours sees. Linux only; elsewhere a killed ``up`` leaves them running."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


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


def run_stack(
    cli: CliState, *, demo: bool, mock_port: int, api_port: int, metrics_port: int
) -> None:
    """Run mock + daemon + API until Ctrl-C, SIGTERM or SIGHUP, showing the statistics."""
    engine = cli.engine  # schema ready before the children start
    with StopSignals() as signals:
        try:
            _run(cli, signals, demo=demo, ports=(mock_port, api_port, metrics_port))
        except Stopped as stop:
            info(f"stopping ({stop})...")
        finally:
            signals.forward()
            _stop(signals.children)
            engine.dispose()


def _run(cli: CliState, signals: StopSignals, *, demo: bool, ports: tuple[int, int, int]) -> None:
    """Start the children and show the statistics until one of them stops."""
    from notifyctl.config import default_log_file
    from notifyctl.db import redact
    from notifyctl.services.demo import seed_demo
    from notifyctl.services.tokens import new_secret
    from notifyctl.timeutil import utcnow

    mock_port, api_port, metrics_port = ports
    settings = cli.settings
    env = dict(os.environ)
    env["NOTIFY_DATABASE_URL"] = settings.database_url
    env.setdefault("NOTIFY_SENDER_URL", f"http://127.0.0.1:{mock_port}/v1/send")
    env["NOTIFY_METRICS_PORT"] = str(metrics_port)
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
    refuse_taken_ports(
        {"mock_port": ("127.0.0.1", mock_port), "api_port": ("127.0.0.1", api_port)}
        | ({"metrics_port": (settings.metrics_host, metrics_port)} if metrics_port else {})
    )
    mock_args = ["mock", "--port", str(mock_port), "--child"]
    if demo:
        mock_args += ["--latency-ms", "30", "--jitter-ms", "60", "--error-rate", "0.05"]
    mock_child = _spawn(signals, mock_args, env)
    _started(mock_child, "the mock", mock_port)
    daemon_child = _spawn(signals, ["daemon"], env)
    api_child = _spawn(signals, ["api", "--port", str(api_port), "--child"], env)
    _started(api_child, "the API", api_port)
    names = {mock_child.pid: "the mock", daemon_child.pid: "the daemon", api_child.pid: "the API"}
    api = f"http://127.0.0.1:{api_port}"
    info(
        f"database: {redact(settings.database_url)}\n"
        f"REST API: {api}/api/v1  Swagger UI: {api}/docs/\n"
        f"{login_lines(settings, api, token=login, generated=not given)}\n"
        f"mock sending API: http://127.0.0.1:{mock_port}/docs/\n"
        f"{_metrics_line(settings.metrics_host, metrics_port, api)}\n"
        f"logs: {log_file} (notifyctl logs --mailing ID)"
    )
    children = signals.children
    with Live(_stats_view(cli), refresh_per_second=2, transient=False) as live:
        while all(child.poll() is None for child in children):
            time.sleep(REFRESH)
            live.update(Group(_stats_view(cli)))
    failed = next(c for c in children if c.poll() is not None)
    info(f"{names[failed.pid]} stopped (exit {failed.returncode}); stopping the rest")
    raise SystemExit(1)  # a part failed: systemd's Restart=on-failure and scripts see it


def _metrics_line(host: str, port: int, api: str) -> str:
    """Where Prometheus scrapes the daemon (and the API)."""
    if not port:
        return f"metrics: {api}/metrics (the daemon's are off: --metrics-port 0)"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"metrics: daemon http://{shown}:{port}/metrics  API {api}/metrics"


def _stop(children: list[subprocess.Popen]) -> None:
    """SIGTERM each child in turn and wait for it to drain (killed after STOP_GRACE)."""
    for child in reversed(children):  # the daemon before the mock, so it can still reach it
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
