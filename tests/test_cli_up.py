"""``notifyctl up --demo`` (what ``make run`` does): everything starts, a mailing runs, Ctrl-C
stops it all cleanly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port


def test_up_demo_runs_a_mailing_serves_the_api_and_stops_on_ctrl_c(tmp_path):
    db = tmp_path / "up.db"
    api_port, mock_port = free_port(), free_port()
    env = dict(os.environ) | {
        "NOTIFY_DATABASE_URL": f"sqlite:///{db}",
        "NOTIFY_LOGIN_TOKEN": "nfy_up-test-token",
        "NOTIFY_RATE_LIMIT": "500",
    }
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notifyctl",
            "up",
            "--demo",
            "--api-port",
            str(api_port),
            "--mock-port",
            str(mock_port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        sent = 0
        headers = {"Authorization": "Bearer nfy_up-test-token"}
        while time.monotonic() < deadline and sent < 300:
            time.sleep(0.5)
            try:
                stats = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/stats", headers=headers)
            except httpx.HTTPError:
                continue
            if stats.status_code == 200:
                sent = sum(row["by_status"]["sent"] for row in stats.json())
        assert sent >= 300, "the demo mailing did not reach its 300 clients"
        docs = httpx.get(f"http://127.0.0.1:{api_port}/docs/")
        assert docs.status_code == 200
    finally:
        up.send_signal(signal.SIGINT)
        _, err = up.communicate(timeout=60)
    assert up.returncode == 0, err
    assert f"http://127.0.0.1:{api_port}/docs/" in err
    assert "nfy_up-test-token" not in err, "a token from the environment is never printed"
    assert "use your NOTIFY_LOGIN_TOKEN" in err
    for port in (api_port, mock_port):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            raise AssertionError(f"port {port} still answers after Ctrl-C")
        except httpx.HTTPError:
            pass
    listed = subprocess.run(
        [sys.executable, "-m", "notifyctl", "--db", f"sqlite:///{db}", "stats", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(json.loads(listed.stdout)) == 2


def test_up_prints_the_login_token_it_made_up_and_that_token_opens_the_api(tmp_path):
    import re

    api_port, mock_port = free_port(), free_port()
    env = dict(os.environ) | {"NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'up.db'}"}
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notifyctl",
            "up",
            "--api-port",
            str(api_port),
            "--mock-port",
            str(mock_port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("Bearer): " in line for line in lines):
            lines.append(up.stderr.readline())
        printed = re.search(r"Bearer\): (nfy_[\w-]+)", "".join(lines))
        assert printed, "".join(lines)
        token = printed.group(1)
        assert f"/admin/login?token={token}" in "".join(lines)
        assert "use your NOTIFY_LOGIN_TOKEN" not in "".join(lines), "the API child is quiet"
        answer = httpx.get(
            f"http://127.0.0.1:{api_port}/api/v1/stats",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200
    finally:
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=60)


# --- signals, and what `up` prints --------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc: the Linux this suite runs on)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, dead but not reaped, is not)."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_up(tmp_path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    environment = dict(os.environ) | {
        "NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'up.db'}",
        "NOTIFY_LOG_FILE": str(tmp_path / "up.jsonl"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "notifyctl", "up", *args],
        env=environment | (env or {}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def banner(up: subprocess.Popen) -> list[str]:
    """The lines `up` prints on stderr before its statistics, through its "logs:" line."""
    lines: list[str] = []
    while not lines or not lines[-1].startswith("logs:"):
        line = up.stderr.readline()
        assert line, f"up ended before its banner was complete:\n{''.join(lines)}"
        lines.append(line)
    return lines


def stop(up: subprocess.Popen, sig: int = signal.SIGINT) -> str:
    if up.poll() is None:
        up.send_signal(sig)
    return up.communicate(timeout=60)[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_sigterm_and_sighup_stop_every_child_like_ctrl_c(tmp_path, sig):
    up = start_up(
        tmp_path,
        *("--api-port", str(free_port()), "--mock-port", str(free_port())),
        env={"NOTIFY_METRICS_PORT": str(free_port())},
    )
    try:
        banner(up)  # the mock and the API listen, the daemon started
        children = children_of(up.pid)
        assert len(children) == 3, children  # mock, daemon, API
        up.send_signal(sig)
        up.wait(timeout=60)
        left = [pid for pid in children if running(pid)]
        for pid in left:  # (they hold up's stderr open: gone, the test can end)
            os.kill(pid, signal.SIGKILL)
        assert not left, f"{sig.name} left children of up running: {left}"
    finally:
        rest = stop(up)
    assert up.returncode == 0, rest
    assert f"stopping ({sig.name})" in rest


def _wait_gone(pids: list[int], timeout: float = 30) -> list[int]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(running(pid) for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if running(pid)]


def test_children_end_when_up_is_killed_outright(tmp_path):
    """SIGKILL reaches no handler of ours: the children must notice on their own."""
    up = start_up(
        tmp_path,
        *("--api-port", str(free_port()), "--mock-port", str(free_port())),
        env={"NOTIFY_METRICS_PORT": str(free_port())},
    )
    try:
        banner(up)
        children = children_of(up.pid)
        assert len(children) == 3, children
        up.kill()
        up.wait(timeout=30)
        left = _wait_gone(children)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"SIGKILL of up left its children running: {left}"
    finally:
        stop(up)


def test_up_fails_naming_the_part_that_stopped(tmp_path):
    up = start_up(
        tmp_path,
        *("--api-port", str(free_port()), "--mock-port", str(free_port())),
        env={"NOTIFY_METRICS_PORT": str(free_port())},
    )
    try:
        banner(up)
        children = children_of(up.pid)
        daemon = next(
            pid for pid in children if "daemon" in Path(f"/proc/{pid}/cmdline").read_text()
        )
        os.kill(daemon, signal.SIGKILL)
        up.wait(timeout=60)
    finally:
        rest = stop(up)
    assert up.returncode == 1, rest
    assert "the daemon stopped (exit -9)" in rest
    assert not _wait_gone(children)


@pytest.mark.parametrize(
    "taken", ["--api-port", "--mock-port", "--metrics-port"], ids=lambda option: option[2:]
)
def test_up_refuses_a_taken_port_before_it_starts_or_prints_anything(tmp_path, taken):
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        ports = {
            "--api-port": free_port(),
            "--mock-port": free_port(),
            "--metrics-port": free_port(),
        }
        ports[taken] = port
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "notifyctl",
                "up",
                *(str(p) for pair in ports.items() for p in pair),
            ],
            env=dict(os.environ) | {"NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'up.db'}"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: {taken}: 127.0.0.1:{port} is in use\n"


def test_up_prints_its_own_lines_only_with_the_daemons_metrics_address(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    metrics_port = free_port()
    up = start_up(
        tmp_path,
        *("--api-port", str(free_port()), "--mock-port", str(free_port())),
        *("--metrics-port", str(metrics_port)),
        env={"NOTIFY_LOGIN_TOKEN": "nfy_up-test-token-given-by-the-operator"},
    )
    try:
        printed = banner(up)
        text = "".join(printed)
        assert printed[0].startswith("database: "), text  # nothing before `up`'s own lines
        assert "Warning" not in text  # such as authlib's AuthlibDeprecationWarning
        for placeholder in ("<", ">", "{"):  # ?token=<your NOTIFY_LOGIN_TOKEN>, {msgId}
            assert placeholder not in text
        address = f"http://127.0.0.1:{metrics_port}/metrics"
        assert f"metrics: daemon {address}" in text
        families = {}
        while "notifyctl_build_info" not in families:  # the daemon serves it once it runs
            assert up.poll() is None
            try:
                exposition = httpx.get(address).text
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            families = {f.name: f for f in text_string_to_metric_families(exposition)}
        assert "notifyctl_circuit_breaker_state" in families
    finally:
        rest = stop(up)
    assert up.returncode == 0, rest
    assert "Warning" not in rest


def test_every_option_of_up_is_in_the_readme():
    from typer.main import get_command

    from notifyctl.cli import app

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if line.startswith("| `notifyctl up ")]
    options = [o for p in get_command(app).commands["up"].params for o in p.opts if not p.hidden]
    assert options
    for option in options:
        assert option in row, option


class FakeChild:
    """Stands for a child process: records the signals `up` sends it."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def poll(self):
        return None  # still running

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)


def test_a_signal_while_a_child_starts_waits_until_the_child_is_listed():
    from notifyctl.cli.launcher import Stopped, StopSignals

    child = FakeChild()
    raised = None
    with StopSignals() as signals:
        try:
            with signals.starting():
                os.kill(os.getpid(), signal.SIGTERM)  # as if it came while Popen ran
                listed_before = list(signals.children)
                signals.children.append(child)
        except Stopped as stop:
            raised = (str(stop), list(signals.children))
    assert listed_before == []
    assert raised == ("SIGTERM", [child]), "raised once the child was listed, not before"


def test_a_second_signal_while_stopping_goes_to_the_children_and_raises_nothing():
    from notifyctl.cli.launcher import Stopped, StopSignals

    child = FakeChild()
    with StopSignals() as signals:
        signals.children.append(child)
        with pytest.raises(Stopped, match="SIGHUP"):
            os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C pressed again while they stop
    assert child.signals == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back
