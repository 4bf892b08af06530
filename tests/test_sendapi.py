"""``notifyctl.sendapi``: a test send's one request is the daemon's request, judged as the
daemon judges its answer; against the real mock, with its faults."""

import socket

import httpx
import pytest

from daemon.clock import SystemClock
from daemon.sender import Sender, SendError, classify
from notifyctl.config import Settings
from notifyctl.sendapi import build_request, post_once, refusal
from tests import shared_mock


@pytest.fixture(scope="module")
def module_mock():
    yield from shared_mock.serve()


@pytest.fixture
def mock_api(module_mock):
    """One mock for the module (a test makes a request or two), fresh for each test."""
    return shared_mock.fresh(module_mock)


URLS = ["http://127.0.0.1:8001/v1/send", "https://sms.example.com/api/send/"]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("text", ["hi", 'Привет, "мир"\n\t\\', "\u2028 emoji \U0001f600", ""])
def test_the_request_is_the_daemons(url, text):
    settings = Settings(sender_url=url, sender_token="jwt.for.tests")
    daemon = Sender(settings, clock=SystemClock(), policy=None)._request(
        42, "79001234567", text, 3.0
    )

    ours = build_request(settings, message_id=42, phone="79001234567", text=text)

    assert (ours.method, str(ours.url), ours.content) == (
        daemon.method,
        str(daemon.url),
        daemon.content,
    )
    assert sorted(ours.headers.multi_items()) == sorted(daemon.headers.multi_items())
    assert ours.headers["Authorization"] == "Bearer jwt.for.tests"


ANSWERS = [
    (200, b'{"code": 0, "message": "OK"}'),
    (200, b'{"code": 3, "message": "bad number"}'),
    (200, b'{"code": "0"}'),
    (200, b"[0]"),
    (200, b"<html>"),
    (200, b"[" * 60_000),  # nested deeper than json.loads recurses: RecursionError
    (401, b""),
    (400, b'{"detail": "no"}'),
    (404, b""),
    (429, b""),
    (500, b"oops"),
    (503, b""),
    (302, b""),
]


@pytest.mark.parametrize(("status", "body"), ANSWERS)
def test_an_answer_is_accepted_exactly_when_the_daemon_would_record_sent(status, body):
    try:
        classify(status, body, httpx.Headers())
        daemon_sent = True
    except SendError:
        daemon_sent = False

    assert (refusal(status, body) is None) == daemon_sent


def settings_for(mock_api, **overrides) -> Settings:
    return Settings(**({"sender_url": mock_api.send_url, "request_timeout": 5.0} | overrides))


def test_an_accepted_send_reaches_the_api_once(mock_api):
    record = post_once(settings_for(mock_api), message_id=77, phone="79161234567", text="Hi")

    assert (record.http_status, record.error) == (200, None)
    assert '"code":0' in record.response_excerpt.replace(" ", "")
    assert record.duration_ms > 0
    (received,) = mock_api.received()
    assert (received["msg_id"], received["phone"], received["text"]) == (77, 79161234567, "Hi")
    assert received["count"] == 1


def test_a_5xx_is_reported_once_without_a_retry(mock_api):
    mock_api.faults(error_rate=1)

    record = post_once(settings_for(mock_api), message_id=78, phone="79161234567", text="Hi")

    assert record.http_status in (500, 502, 503)
    assert record.error == f"HTTP {record.http_status}"
    assert [item["count"] for item in mock_api.received()] in ([], [1])


def test_a_wrong_token_is_reported_as_a_401(mock_api):
    settings = settings_for(mock_api, sender_token="not-the-mocks-token")

    record = post_once(settings, message_id=79, phone="79161234567", text="Hi")

    assert record.http_status == 401
    assert "token" in record.error


def test_a_slow_api_is_cut_off_at_the_request_timeout(mock_api):
    mock_api.faults(latency_ms=1_000)  # (the mock's shutdown waits for it: keep it short)
    settings = settings_for(mock_api, request_timeout=0.2)

    record = post_once(settings, message_id=80, phone="79161234567", text="Hi")

    assert record.http_status is None
    assert record.error == "timed out after 0.2s (NOTIFY_REQUEST_TIMEOUT)"
    assert 150 < record.duration_ms < 900


def test_no_server_is_a_connection_error():
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings = Settings(sender_url=f"http://127.0.0.1:{port}/v1/send")

    record = post_once(settings, message_id=81, phone="79161234567", text="Hi")

    assert record.http_status is None
    assert record.error.startswith("ConnectError")
