"""``notifyctl up --demo`` (what ``make run`` does): everything starts, a mailing runs, Ctrl-C
stops it all cleanly."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx

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
