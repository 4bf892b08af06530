"""Logs by mailing, message and client; Prometheus metrics of the API and the daemon."""

import json
import sys
from urllib.request import urlopen

import pytest
from fastapi.testclient import TestClient
from loguru import logger
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from daemon.metrics import DaemonMetrics
from mock import server
from notifyctl.config import Settings
from notifyctl.logfile import readable
from notifyctl.logs import configure_logging, redact
from notifyctl.models import Attempt, Message
from notifyctl.services import tokens
from tests.daemon_helpers import MockApi, run_worker, settings_for
from tests.factories import add_clients, add_mailing
from tests.servers import free_port, running
from web.app import create_app

LOGIN = "nfy_observability-login-token"


@pytest.fixture
def mock_api():
    with running(server.config(seed=5)) as url:
        yield MockApi(url)


@pytest.fixture
def log_file(tmp_path):
    """Every line of the test in a JSON log file; loguru's default sink afterwards."""
    path = tmp_path / "logs" / "notifyctl.jsonl"
    yield path
    logger.remove()
    logger.configure(patcher=None)
    logger.add(sys.stderr)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def samples(exposition: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from a Prometheus text exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def test_a_mailing_message_and_client_can_each_be_pulled_from_the_log(
    db_url, session, mock_api, log_file, cli
):
    settings = settings_for(db_url, mock_api, log_file=log_file)
    configure_logging(settings)
    add_clients(session, 20, tag="vip")
    mailing = add_mailing(session, tags=["vip"])
    mock_api.faults(error_rate=0.3)
    api = create_app(settings=settings, engine=None, login_token=LOGIN)
    with TestClient(api, headers={"Authorization": f"Bearer {LOGIN}"}) as client:
        run_worker(settings)
        assert client.get(f"/api/v1/mailings/{mailing.id}/stats").status_code == 200
    retried = session.exec(select(Message).where(Message.attempts > 1)).first()
    assert retried is not None, "the mock's 30 % errors should have made one retry"
    attempts = session.exec(select(Attempt).where(Attempt.message_id == retried.id)).all()
    logged = lines(log_file)

    of_mailing = [line for line in logged if line.get("mailing_id") == mailing.id]
    messages = {line["message"] for line in of_mailing}
    assert any(m.startswith("mailing created") for m in messages)
    assert any(m.startswith("mailing activated") for m in messages)
    assert any(
        m.startswith("GET /api/v1/mailings/") and "request_id" in line
        for line in of_mailing
        for m in [line["message"]]
    )

    of_message = [line for line in logged if line.get("message_id") == retried.id]
    requests = [line for line in of_message if line["message"].startswith("request ")]
    assert len(requests) == len(attempts) == retried.attempts
    assert any("HTTP 5" in line["message"] for line in requests)  # the failure, with status
    assert "HTTP 200" in requests[-1]["message"]
    assert '"code"' in requests[-1]["message"]
    assert any("retrying in" in line["message"] for line in of_message)  # the retry, with reason
    assert of_message[-1]["message"] == "status sending -> sent"
    assert {(line["mailing_id"], line["client_id"]) for line in of_message} == {
        (mailing.id, retried.client_id)
    }

    of_client = [line for line in logged if line.get("client_id") == retried.client_id]
    assert {line["message_id"] for line in of_client} == {retried.id}

    pulled = cli("logs", "--message", str(retried.id), "--file", str(log_file))
    assert pulled.exit_code == 0, pulled.output
    assert pulled.output.splitlines() == [readable(line) for line in of_message]
    as_json = cli("logs", "--client", str(retried.client_id), "--file", str(log_file), "--json")
    assert [json.loads(line) for line in as_json.output.splitlines()] == of_client


#: JSON fields every line has; every other field is a value bound to the line.
CORE_FIELDS = {"time", "level", "message", "source", "exception"}


def test_json_fields_hold_values_and_the_message_the_sentence(db_url, session, mock_api, log_file):
    settings = settings_for(db_url, mock_api, log_file=log_file)
    configure_logging(settings)
    add_clients(session, 30)
    add_mailing(session)
    mock_api.faults(error_rate=0.3, garbage_rate=0.1)
    run_worker(settings)
    logged = lines(log_file)

    requests = [line for line in logged if line["message"].startswith("request ")]
    failed = [line for line in requests if "error" in line]
    assert failed, "the mock's errors should have failed some requests"
    for line in requests:
        assert isinstance(line["attempt"], int)
        assert isinstance(line["duration_ms"], float)
        if "body" in line:
            assert f", body {line['body']!r}" in line["message"]  # the sentence quotes it
    for line in failed:
        assert line["message"].endswith(f", error: {line['error']}")
    answered = [line for line in failed if "http_status" in line]
    assert answered
    for line in answered:
        assert isinstance(line["http_status"], int)
        assert f"HTTP {line['http_status']}" in line["message"]
    served = [line for line in requests if line.get("http_status") == 200 and "error" not in line]
    assert served
    assert json.loads(served[0]["body"]) == {"code": 0, "message": "OK"}

    for line in logged:  # no field holds a piece of a sentence, nor a Python repr
        for key, value in line.items():
            if key in CORE_FIELDS or not isinstance(value, str):
                continue
            assert not value.startswith((", ", ": ", " (")), (key, line)
            assert "Counters(" not in value, (key, line)
        assert "Counters(" not in line["message"]

    changes = [line for line in logged if line["message"].startswith("status sending -> ")]
    for line in changes:
        assert line["message"].startswith(f"status sending -> {line['status']}")
        if "reason" in line:
            assert f"{line['reason']}" in line["message"]
        assert ("next_attempt_at" in line) is (line["status"] == "pending")

    [stopped] = [line for line in logged if line["message"].startswith("daemon stopped")]
    sent = len([line for line in logged if line["message"] == "status sending -> sent"])
    assert stopped["sent"] == sent == 30  # each counter is a field of its own
    assert stopped["requests"] == len(requests)
    assert {"claimed", "failed", "retried", "expired", "restarts"} <= stopped.keys()
    assert f"{sent} sent" in stopped["message"]


@pytest.mark.parametrize(
    ("rate_limit", "said"),
    [(0, ", no rate limit,"), (50, ", rate limit 50/s,"), (2.5, ", rate limit 2.5/s,")],
)
def test_the_daemon_start_line_says_its_rate_limit_in_a_sentence(
    db_url, mock_api, log_file, rate_limit, said
):
    settings = settings_for(db_url, mock_api, log_file=log_file, rate_limit=rate_limit)
    configure_logging(settings)
    run_worker(settings)
    [started] = [line for line in lines(log_file) if line["message"].startswith("daemon started")]
    assert said in started["message"]
    assert started.get("rate_limit", 0) == rate_limit
    assert started["concurrency"] == settings.concurrency


def test_a_repeated_error_is_one_line_with_the_error_and_the_count_as_fields(tmp_path, log_file):
    from daemon.quiet import QuietErrors

    configure_logging(Settings(log_file=log_file, log_console_level="CRITICAL"))
    now = [0.0]
    errors = QuietErrors(logger, interval=30, monotonic=lambda: now[0])
    for at in (0.0, 1.0, 2.0, 31.0):
        now[0] = at
        errors.error("claim", "could not claim messages", ConnectionError("database is down"))
    errors.recovered("claim", "claiming works again")
    first, again, recovered = lines(log_file)
    assert first["message"] == "could not claim messages: database is down"
    assert first["error"] == "database is down"
    assert "repeats" not in first
    assert again["message"] == (
        "could not claim messages: database is down (and 2 times more in the last 30s)"
    )
    assert again["error"] == "database is down"
    assert again["repeats"] == 2
    assert recovered["message"] == "claiming works again (after 0 more failures)"
    assert recovered["repeats"] == 0


def test_no_token_or_secret_reaches_the_log(db_url, session, mock_api, log_file):
    add_clients(session, 5)
    add_mailing(session)
    settings = settings_for(
        db_url, mock_api, log_file=log_file, smtp_password="smtp-password-value"
    )
    configure_logging(settings)
    api_token = tokens.create_token(session=session, name="script")[1]
    session.commit()
    app = create_app(settings=settings, engine=None, login_token=LOGIN)
    with TestClient(app) as client:
        client.get(f"/admin/login?token={LOGIN}")
        client.get("/api/v1/stats", headers={"Authorization": f"Bearer {api_token}"})
        client.get("/api/v1/stats", headers={"Authorization": "Bearer nfy_wrong-token-value"})
        run_worker(settings)
    logger.info(
        "caller sent Authorization: Bearer {t} and {j}",
        t=api_token,
        j=settings.sender_token.get_secret_value(),
    )
    text = log_file.read_text()
    assert text.count("\n") > 10
    for secret in (
        LOGIN,
        api_token,
        "nfy_wrong-token-value",
        settings.sender_token.get_secret_value(),
        "smtp-password-value",
    ):
        assert secret not in text
    assert "[secret]" in text


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: Bearer abc.def-ghi",
        "GET /admin/login?token=nfy_abcdefghijklmnop&next=/",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
        "login with password=hunter2 now",
        "sending to https://notify:hunter2@sms.example/v1/send",
        "sending to https://sms.example/v1/send?api_key=hunter2&region=eu",
        "sending to https://sms.example/v1/send?Access_Token=hunter2",
        "postgresql+psycopg://notify:hunter2@db:5432/notify",
    ],
)
def test_redaction_masks_tokens_wherever_they_appear(line):
    masked = redact(line)
    assert "[secret]" in masked
    for secret in ("abc.def-ghi", "nfy_abcdefghijklmnop", "c2lnbmF0dXJl", "hunter2"):
        assert secret not in masked
    assert "region=eu" in masked or "region" not in line  # only the secret goes


def test_the_api_exposes_requests_by_route_and_status(db_url, engine):
    app = create_app(settings=Settings(database_url=db_url), engine=engine, login_token=LOGIN)
    with TestClient(app, headers={"Authorization": f"Bearer {LOGIN}"}) as client:
        client.post("/api/v1/clients", json={"phone": "79161234567"})
        client.get("/api/v1/clients/1")
        client.get("/api/v1/clients/1")
        client.get("/api/v1/clients/999")
        exposition = client.get("/metrics")
    assert exposition.headers["content-type"].startswith("text/plain")
    values = samples(exposition.text)
    route = "/api/v1/clients/{client_id}"
    key = ("method", "GET"), ("route", route)
    assert values[("notifyctl_http_requests_total", (*key, ("status", "200")))] == 2
    assert values[("notifyctl_http_requests_total", (*key, ("status", "404")))] == 1
    assert values[("notifyctl_http_request_duration_seconds_count", key)] == 3
    created = (("method", "POST"), ("route", "/api/v1/clients"), ("status", "201"))
    assert values[("notifyctl_http_requests_total", created)] == 1


def test_the_daemon_exposes_outcomes_latency_errors_and_retries(db_url, session, mock_api):
    add_clients(session, 60)
    mailing = add_mailing(session)
    mock_api.faults(error_rate=0.2, garbage_rate=0.1)
    metrics = DaemonMetrics()
    port = free_port()
    assert metrics.serve("127.0.0.1", port)
    settings = settings_for(db_url, mock_api)

    from daemon.clock import SystemClock
    from daemon.worker import Worker
    from notifyctl.db import make_engine

    engine = make_engine(db_url)
    import asyncio

    worker = Worker(
        engine=engine,
        settings=settings,
        burst=True,
        clock=SystemClock(wait_scale=0.0),
        metrics=metrics,
    )
    asyncio.run(worker.run())

    async def housekeeping() -> None:
        await worker.housekeeping.refresh()
        await worker.housekeeping.backlog()

    asyncio.run(housekeeping())
    engine.dispose()
    with urlopen(f"http://127.0.0.1:{port}/metrics") as answer:
        values = samples(answer.read().decode())
    attempts = session.exec(select(Attempt)).all()
    failed = [a for a in attempts if a.error]
    assert values[("notifyctl_messages_total", (("status", "sent"),))] == 60
    assert values[("notifyctl_sender_requests_total", ())] == len(attempts)
    assert values[("notifyctl_send_duration_seconds_count", ())] == len(attempts)
    errors = {
        labels[0][1]: value
        for (name, labels), value in values.items()
        if name == "notifyctl_sender_errors_total"
    }
    assert errors.get("server_error", 0) > 0
    assert errors.get("garbage", 0) > 0
    assert sum(errors.values()) == len(failed)
    assert values[("notifyctl_retries_total", ())] == len(attempts) - 60
    breaker = {
        dict(labels)["state"]: value
        for (name, labels), value in values.items()
        if name == "notifyctl_circuit_breaker_state"
    }
    assert breaker == {"closed": 1, "open": 0, "half_open": 0}
    assert values[("notifyctl_pending_messages", ())] == 0
    assert ("notifyctl_lease_takeovers_total", ()) in values
    assert mailing.id


def scrape_both(tmp_path) -> dict[str, str]:
    """The text exposition of the API's /metrics and of a daemon's metrics port."""
    from notifyctl.db import make_engine

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'metrics.db'}")
    engine = make_engine(settings.database_url)
    app = create_app(settings=settings, engine=engine, login_token=LOGIN)
    with TestClient(app) as client:
        client.get("/healthz")
        api = client.get("/metrics").text
    engine.dispose()
    metrics = DaemonMetrics()
    port = free_port()
    assert metrics.serve("127.0.0.1", port)
    with urlopen(f"http://127.0.0.1:{port}/metrics") as answer:
        daemon = answer.read().decode()
    return {"api": api, "daemon": daemon}


def test_the_api_and_the_daemon_expose_process_python_and_build_info_series(tmp_path):
    from notifyctl import __version__

    for component, exposition in scrape_both(tmp_path).items():
        families = {f.name: f for f in text_string_to_metric_families(exposition)}
        values = samples(exposition)
        assert values[("process_resident_memory_bytes", ())] > 0, component
        assert values[("process_cpu_seconds_total", ())] >= 0, component
        assert values[("process_open_fds", ())] > 0, component
        assert "python_gc_collections" in families, component
        [info] = [key for key in values if key[0] == "python_info"]
        assert ("implementation", "CPython") in info[1], component
        assert values[("notifyctl_build_info", (("version", __version__),))] == 1, component
        assert families["notifyctl_build_info"].type == "gauge", component


def test_the_breaker_state_is_one_series_per_state_with_the_label_state():
    from daemon.breaker import BreakerState

    metrics = DaemonMetrics()
    metrics.breaker_state(BreakerState.open)
    [family] = [
        f
        for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        if f.name == "notifyctl_circuit_breaker_state"
    ]
    assert family.type == "gauge"
    assert {s.labels["state"]: s.value for s in family.samples} == {
        "closed": 0,
        "open": 1,
        "half_open": 0,
    }
    assert all(set(s.labels) == {"state"} for s in family.samples)


def test_every_metric_is_documented(tmp_path):
    from pathlib import Path

    documented = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text()
    for exposition in scrape_both(tmp_path).values():
        for family in text_string_to_metric_families(exposition):
            suffix = "_total" if family.type == "counter" else ""
            assert f"`{family.name}{suffix}`" in documented, family.name


def test_follow_prints_new_lines_across_a_rotation(tmp_path):
    import threading
    import time

    from notifyctl.logfile import follow_lines, read_lines

    path = tmp_path / "app.jsonl"
    path.write_text(json.dumps({"message": "old", "mailing_id": 1}) + "\n")
    seen: list[dict] = []

    def write() -> None:
        time.sleep(0.3)
        with path.open("a") as stream:
            stream.write(json.dumps({"message": "before rotation", "mailing_id": 1}) + "\n")
        time.sleep(0.5)
        path.rename(tmp_path / "app.2026-11-27_00-00-00_000000.jsonl")  # as loguru rotates
        path.write_text(json.dumps({"message": "after rotation", "mailing_id": 1}) + "\n")

    writer = threading.Thread(target=write)
    writer.start()
    deadline = time.monotonic() + 10
    for record in follow_lines(path, stop=lambda: time.monotonic() > deadline):
        seen.append(record)
        if len(seen) == 2:
            break
    writer.join()
    assert [r["message"] for r in seen] == ["before rotation", "after rotation"]
    assert [r["message"] for r in read_lines(path)] == ["old", "before rotation", "after rotation"]


def test_logs_without_a_log_file_is_one_clear_error(cli):
    answer = cli("logs", "--mailing", "1")
    assert answer.exit_code == 2
    assert "NOTIFY_LOG_FILE" in answer.output


@pytest.mark.parametrize(
    ("env", "shown"),
    [
        ({"NOTIFY_LOGIN_TOKEN": "nfy_given-by-the-operator"}, False),
        (
            {
                "NOTIFY_ENV": "prod",
                "NOTIFY_SENDER_TOKEN": "a-real-sender-token",
                "NOTIFY_SESSION_SECRET": "a-session-secret-of-32-bytes-or-more",
            },
            False,
        ),
        ({}, True),
    ],
    ids=["given", "production", "made-up-for-a-local-run"],
)
def test_the_api_prints_its_login_token_only_when_it_made_it_up(tmp_path, env, shown):
    import os
    import re
    import subprocess
    import time

    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notifyctl",
            "--db",
            f"sqlite:///{tmp_path / 'a.db'}",
            "api",
            "--port",
            str(port),
        ],
        env=dict(os.environ) | env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("login token" in line for line in lines):
            lines.append(process.stderr.readline())
    finally:
        process.terminate()
        process.wait(10)
    banner = "".join(lines)
    assert "login token" in banner
    assert "Warning" not in banner  # no library's warning (authlib's) before our lines
    assert "<" not in banner  # no placeholder link (…?token=<your NOTIFY_LOGIN_TOKEN>)
    assert ("nfy_given-by-the-operator" in banner) is False
    assert bool(re.search(r"nfy_[\w-]{20,}", banner)) is shown


@pytest.mark.parametrize(
    ("levels", "formats"),
    [
        ({"log_level": "INFO"}, (True, False)),
        ({"log_level": "WARNING"}, None),
        ({"log_level": "INFO", "log_console_level": "WARNING"}, None),
        (
            {"log_level": "INFO", "log_console_level": "WARNING", "log_file": "x.jsonl"},
            (False, True),
        ),
        ({"log_level": "INFO", "log_file": "x.jsonl"}, (True, True)),
        ({"log_level": "INFO", "log_format": "json"}, (False, True)),
        ({"log_level": "debug"}, (True, False)),
    ],
)
def test_the_daemon_traces_messages_only_in_the_formats_its_sinks_write(levels, formats):
    from daemon.worker import Worker

    settings = Settings(database_url="sqlite://", **levels)
    lines = Worker(engine=None, settings=settings).lines
    assert (None if lines is None else (lines.text, lines.json_lines)) == formats
    quiet = settings.model_copy(update={"log_messages": False})
    assert Worker(engine=None, settings=quiet).lines is None


@pytest.mark.parametrize("colors", [False, True])
def test_a_per_message_line_is_the_line_loguru_would_write(tmp_path, capsys, monkeypatch, colors):
    """daemon.tracelog formats its lines itself: they must be loguru's, to the byte
    (but the time stamp and the JSON source), masked and escaped alike."""
    from daemon.tracelog import MessageLog

    monkeypatch.setattr("notifyctl.logs.stderr_colors", lambda: colors)
    log_file = tmp_path / "log.jsonl"
    settings = Settings(log_format="text", log_level="INFO", log_file=log_file)
    ids = {"mailing_id": 7, "message_id": 123, "client_id": 9}
    fields = {
        "attempt": 2,
        "duration_ms": 3.5,
        "http_status": 503,
        "body": "{x} <red>\x1b[31m Bearer abc.def.ghi\n",
        "error": None,
        "ok": True,
    }
    message = "request 2: POST http://h/1 -> HTTP 503, body 'Bearer abc.def.ghi {x}\x1b'"
    configure_logging(settings)
    try:
        logger.bind(daemon="d:1", **ids, **fields).opt(capture=False).info(
            "{sentence}", sentence=message
        )
        lines = MessageLog.for_settings(settings, bound={"daemon": "d:1"})
        lines.add(ids, message, fields)
        lines.flush()
    finally:
        logger.remove()
        logger.add(sys.stderr)
    by_loguru, ours = capsys.readouterr().err.splitlines()
    assert by_loguru.split(" ", 2)[2] == ours.split(" ", 2)[2]  # all but the time stamp
    assert ("\x1b[32m" in ours) is colors
    assert "abc.def" not in ours
    first, second = (json.loads(line) for line in log_file.read_text().splitlines())
    for line in (first, second):
        del line["time"], line["source"]
    assert first == second
    assert "abc.def" not in json.dumps(second)
    assert (second["http_status"], second["ok"], second["error"]) == (503, True, None)


HOSTILE_IDS = [
    "{time.__format__.__globals__[re].enum.sys.modules[os].environ}",
    "{0.__class__}<red>",
    "{message}{extra}</>",
]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_caller_text_in_a_log_line_is_data_not_a_format(hostile, capsys, monkeypatch):
    monkeypatch.setenv("NOTIFY_SESSION_SECRET", "s3cr3t-session-value-that-must-not-leak")
    configure_logging(Settings(log_format="text"))
    try:
        logger.bind(request_id=hostile, client_id=7).info("GET {path}", path=hostile)
    finally:
        logger.remove()
        logger.add(sys.stderr)
    line = capsys.readouterr().err
    assert line.count(hostile) == 2  # as the id and in the message, to the letter
    assert "s3cr3t-session-value" not in line
    assert "client_id=7" in line


@pytest.mark.parametrize("hostile", [*HOSTILE_IDS, "x" * 65, "a b", "ü"])
def test_a_request_id_that_is_not_plain_is_replaced(db_url, engine, hostile):
    app = create_app(settings=Settings(database_url=db_url), engine=engine, login_token=LOGIN)
    with TestClient(app) as client:
        answer = client.get("/healthz", headers={"X-Request-ID": hostile.encode()})
        kept = client.get("/healthz", headers={"X-Request-ID": "req-1.A_b"})
    assert answer.headers["X-Request-ID"] != hostile
    assert len(answer.headers["X-Request-ID"]) == 16
    assert kept.headers["X-Request-ID"] == "req-1.A_b"
