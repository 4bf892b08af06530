"""The sender builds each message's request from parts shared by all: exactly the request
httpx would build from the message's URL and body."""

import json

import httpx
import pytest

from daemon.clock import SystemClock
from daemon.sender import Sender
from notifyctl.config import Settings

URLS = [
    "http://127.0.0.1:8001/v1/send",
    "https://probe.fbrq.cloud/v1/send/",
    "http://[::1]:8001/v1/send",
    "http://h/a%20b/send",  # (an escaped path: the shortcut does not apply)
    "https://xn--e1afmkfd.xn--p1ai/send",
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("message_id", [1, 7, 123456789012])
def test_a_messages_url_is_the_one_httpx_parses_from_the_string(url, message_id):
    sender = Sender(Settings(sender_url=url), clock=SystemClock(), policy=None)
    expected = httpx.URL(f"{url.rstrip('/')}/{message_id}")
    built = sender._request(message_id, "79001234567", "hi", 3.0).url
    assert str(built) == str(expected)
    assert (built.raw_path, built.host, built.port, built.scheme) == (
        expected.raw_path,
        expected.host,
        expected.port,
        expected.scheme,
    )


@pytest.mark.parametrize("text", ["hi", 'Привет, "мир"\n\t\\', "\u2028 emoji \U0001f600", ""])
def test_a_messages_body_and_headers_are_what_httpx_would_send(text):
    sender = Sender(
        Settings(sender_url="http://127.0.0.1:8001/v1/send"), clock=SystemClock(), policy=None
    )
    request = sender._request(42, "79001234567", text, 3.0)
    assert json.loads(request.content) == {"id": 42, "phone": 79001234567, "text": text}
    reference = httpx.Request(
        "POST",
        "http://127.0.0.1:8001/v1/send/42",
        headers={"Authorization": request.headers["Authorization"]},
        json={"id": 42, "phone": 79001234567, "text": text},
    )
    for name in ("Host", "Content-Type", "Content-Length"):
        if name == "Content-Length":
            assert int(request.headers[name]) == len(request.content)
        else:
            assert request.headers[name] == reference.headers[name]
    assert request.extensions["timeout"] == httpx.Timeout(3.0).as_dict()
