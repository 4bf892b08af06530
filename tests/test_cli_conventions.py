"""The command line keeps the conventions people expect of one (issue 15): shell completion,
help that names values, one error style naming the option typed, a question before what
cannot be undone, and quiet ends to closed pipes.

What is about the process (its exit code, its stderr, its terminal, its pipe) runs
``python -m notifyctl`` as a real process.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from notifyctl.cli import app
from tests.processes import notifyctl
from tests.test_docs import all_commands


def one_line(result, code: int, line: str) -> None:
    assert (result.returncode, result.stderr) == (code, line + "\n")


# --- completion -----------------------------------------------------------------------


def test_install_completion_sets_up_bash_to_complete_commands_and_zones(tmp_path):
    """Run as a user of bash would (the shell is told by the parent process), with a
    HOME of its own; then bash, reading that HOME's .bashrc, completes our words."""
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    shim = bin_dir / "notifyctl"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m notifyctl "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ) | {
        "HOME": str(home),
        "SHELL": "/bin/bash",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    installed = subprocess.run(
        ["bash", "-c", "notifyctl --install-completion"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    assert "bash completion installed" in installed.stdout
    complete = (
        "source ~/.bashrc; "
        "COMP_WORDS=(notifyctl cli); COMP_CWORD=1; _notifyctl_completion notifyctl; "
        'echo "${COMPREPLY[@]}"; '
        "COMP_WORDS=(notifyctl client create --tz Europe/Mosc); COMP_CWORD=4; "
        '_notifyctl_completion notifyctl; echo "${COMPREPLY[@]}"'
    )
    completed = subprocess.run(
        ["bash", "-c", complete], capture_output=True, text=True, env=env, check=False
    )
    assert completed.stdout.splitlines() == ["client", "Europe/Moscow"], completed.stderr


# --- help -------------------------------------------------------------------------------

PYTHON_TYPE = re.compile(r"<(?:str|int|float|bool|path|datetime|list\[[^\]]*\])>")


@pytest.mark.parametrize(
    "path", [p for p, _ in all_commands()], ids=lambda p: " ".join(p) if p else "notifyctl"
)
def test_help_names_values_never_python_types(path):
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="notifyctl")
    assert result.exit_code == 0
    usage = result.stdout.splitlines()[0]
    assert "{" not in usage
    assert "[[" not in usage
    assert not PYTHON_TYPE.search(result.stdout), result.stdout


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (["client", "create"], "--tz ZONE"),
        (["client", "create"], "--phone PHONE"),
        (["client", "delete"], "Usage: notifyctl client delete [OPTIONS] ID"),
        (["client", "import"], "Usage: notifyctl client import [OPTIONS] FILE"),
        (["client", "import"], "--on-duplicate [fail|skip|update]"),
        (["mailing", "create"], "--end TIME"),
        (["mailing", "create"], "--window HH:MM-HH:MM"),
        (["stats"], "Usage: notifyctl stats [OPTIONS] [ID]"),
        (["logs"], "--mailing ID"),
        ([], "--db URL"),
    ],
)
def test_help_shows_readable_placeholders(path, shown):
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="notifyctl")
    assert shown in result.stdout


def test_a_flag_shows_no_placeholder():
    result = CliRunner().invoke(app, ["mailing", "list", "--help"], prog_name="notifyctl")
    assert re.search(r"^\s+--json\s+Print JSON", result.stdout, re.MULTILINE), result.stdout


# --- one error style --------------------------------------------------------------------


def test_a_value_a_service_refuses_names_the_option_typed(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    result = notifyctl(
        "--db", db, "client", "create", "--phone", "79161234567", "--tz", "Mars/Base"
    )
    one_line(result, 2, "error: --tz: 'Mars/Base' is not an IANA timezone such as Europe/Moscow")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["client", "create"], "error: --phone: is required"),
        (
            ["client", "list", "--bogus"],
            "error: no such option: --bogus (see 'notifyctl client list --help')",
        ),
        (["nosuch"], "error: no such command 'nosuch' (see 'notifyctl --help')"),
        (
            ["client", "delete", "twelve", "--yes"],
            "error: ID: input should be a valid integer, unable to parse string as an integer",
        ),
        (
            ["report", "show", "--hours", "0"],
            "error: --hours: input should be greater than or equal to 1",
        ),
    ],
)
def test_usage_errors_are_one_line_in_the_same_style_exit_2(tmp_path, args, line):
    result = notifyctl("--db", f"sqlite:///{tmp_path / 'x.db'}", *args)
    one_line(result, 2, line)
    assert result.stdout == ""


def test_errors_name_the_options_typed(cli):
    """The services name their fields (timezone, end_at, filter.operator_codes); the
    command line reports the option that carried the value."""
    times = ("--start", "now", "--end", "now+1h")
    cases = [
        (["client", "create", "--phone", "12"], "--phone"),
        (["client", "create", "--phone", "79161234567", "--operator", "1"], "--operator"),
        (["client", "create", "--phone", "79161234567", "--tz", "Mars/Base"], "--tz"),
        (["client", "list", "--limit", "0"], "--limit"),
        (["mailing", "create", "--text", "x", "--start", "now", "--end", "now-1h"], "--end"),
        (["mailing", "create", "--text", "x", *times, "--operator", "12"], "--operator"),
        (["mailing", "create", "--text", "x", *times, "--tag", "t" * 65], "--tag"),
        (["mailing", "create", "--text", "x", *times, "--window", "09:00-09:00"], "--window"),
        (["mailing", "create", "--text", " ", *times], "--text"),
        (["stats", "1", "--status", "lost"], "--status"),
        (["mailing", "pause", "7"], "ID"),
    ]
    for args, option in cases:
        result = cli(*args)
        assert result.stderr.startswith(f"error: {option}: "), (args, result.stderr)
        assert result.stderr.count("\n") == 1


# --- what cannot be undone --------------------------------------------------------------

DESTRUCTIVE = [("client", "delete"), ("mailing", "delete"), ("mailing", "cancel")]


@pytest.fixture
def stored(tmp_path):
    """A SQLite file with client 1 and mailing 1, and how to look at them."""
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert notifyctl("--db", db, "client", "create", "--phone", "79161234567").returncode == 0
    created = notifyctl(
        "--db", db, "mailing", "create", "--text", "x", "--start", "now+1h", "--end", "now+2h"
    )
    assert created.returncode == 0, created.stderr

    def state(noun: str) -> str | None:
        listed = json.loads(notifyctl("--db", db, noun, "list", "--json").stdout)["items"]
        return listed[0].get("state", "stored") if listed else None

    return db, state


@pytest.mark.parametrize(("noun", "verb"), DESTRUCTIVE)
def test_without_yes_and_no_terminal_it_refuses_with_exit_2(stored, noun, verb):
    db, state = stored
    before = state(noun)
    result = notifyctl("--db", db, noun, verb, "1")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --yes: ")
    assert state(noun) == before
    assert notifyctl("--db", db, noun, verb, "1", "--yes").returncode == 0
    assert state(noun) != before


@pytest.mark.parametrize(("noun", "verb"), DESTRUCTIVE)
def test_on_a_terminal_it_asks_and_a_no_changes_nothing(stored, noun, verb):
    db, state = stored
    before = state(noun)
    declined = _on_a_terminal(["--db", db, noun, verb, "1"], answer="n")
    assert declined.returncode == 1
    assert "error: aborted; nothing was changed" in declined.stderr
    assert state(noun) == before
    accepted = _on_a_terminal(["--db", db, noun, verb, "1"], answer="y")
    assert accepted.returncode == 0, accepted.stderr
    assert state(noun) != before


def _on_a_terminal(args: list[str], *, answer: str) -> subprocess.CompletedProcess:
    """Run with stdin a pseudo-terminal holding ``answer``; the question goes to stderr."""
    controller, terminal = os.openpty()
    try:
        os.write(controller, f"{answer}\n".encode())
        result = notifyctl(*args, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert "[y/N]" in result.stderr
    return result


# --- pipes ------------------------------------------------------------------------------


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    """`notifyctl logs | head`: head closes the pipe after its lines; the command stops
    writing with exit code 141 (as a command SIGPIPE ends) and says nothing."""
    log = tmp_path / "big.jsonl"
    line = {"time": "2026-01-01T00:00:00", "level": "INFO", "message": "sent", "mailing_id": 1}
    log.write_text("".join(json.dumps(line) + "\n" for _ in range(30_000)))
    reader = subprocess.Popen(
        [sys.executable, "-m", "notifyctl", "logs", "--file", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert reader.stdout.readline().endswith(b"mailing_id=1 sent\n")
    reader.stdout.close()  # what head does after its lines (far fewer than were written)
    stderr = reader.stderr.read()
    assert (reader.wait(), stderr) == (141, b"")


def test_a_table_into_a_closed_pipe_ends_the_same_way(cli, monkeypatch):
    """rich's console would exit 1 on its own; ours hands the closed pipe to the CLI."""
    import io

    from notifyctl import render

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    def closed_console():
        console = build()  # the console render would use, uncached
        console.file = ClosedPipe()
        return console

    build = render._stdout.__wrapped__
    monkeypatch.setattr(render, "_stdout", closed_console)
    cli("client", "create", "--phone", "79161234567")
    result = cli("client", "list")
    assert (result.exit_code, result.stderr) == (141, "")


# --- logs -------------------------------------------------------------------------------


def test_logs_reads_the_file_up_writes_when_no_log_file_is_set(cli):
    """`up` sets NOTIFY_LOG_FILE for its children to config.default_log_file() when it is
    unset; `logs` looks there too."""
    from notifyctl.config import default_log_file

    path = default_log_file()
    path.parent.mkdir(parents=True)
    record = {"time": "2026-01-01T00:00:00", "level": "INFO", "message": "hello", "mailing_id": 7}
    path.write_text(json.dumps(record) + "\n")
    result = cli("logs", "--mailing", "7")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.endswith("mailing_id=7 hello\n")


@pytest.mark.slow
def test_logs_finds_what_up_wrote_without_being_told_where(tmp_path):
    """`up` prints where its log is; `notifyctl logs` afterwards reads that file with no
    NOTIFY_LOG_FILE set (conftest points the user state directory at tmp_path)."""
    import signal
    import socket
    import time

    from tests.servers import free_port

    env = dict(os.environ) | {"NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'up.db'}"}
    api_port, mock_port = free_port(), free_port()
    ports = ("--api-port", str(api_port), "--mock-port", str(mock_port))
    up = subprocess.Popen(
        [sys.executable, "-m", "notifyctl", "up", *ports],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60  # (a guard against a hang, not a measurement)
        while up.poll() is None and time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", api_port)) == 0:
                    break
            time.sleep(0.1)
    finally:
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=60)
    result = notifyctl("logs", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the log `up` wrote is empty"
