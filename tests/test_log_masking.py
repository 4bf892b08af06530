"""What a hostile review still found in the lines we write: secrets in other spellings,
in tracebacks and in database URLs, and control characters that forge or colour lines."""

import io
import json
import sys

import pytest
from loguru import logger

from notifyctl.config import LogFormat, Settings
from notifyctl.db import make_engine
from notifyctl.db import redact as redact_url
from notifyctl.errors import StorageError
from notifyctl.logs import configure_logging, redact


@pytest.mark.parametrize(
    "line",
    [
        "sending to https://hunter2@sms.example/v1/send",  # a bare token as user-info
        "sending to https://:hunter2@sms.example/v1/send",
        "sending to https://notify:p@hunter2@sms.example/v1/send",  # an unescaped @
        "Authorization: Basic aHVudGVyMjpodW50ZXIy",
        'settings {"smtp_password": "hunter2 with spaces", "port": 587}',
        'body {"access_token":"hunter2"}',
        "smtp password: hunter2",
    ],
)
def test_secrets_in_other_spellings_are_masked(line):
    masked = redact(line)
    assert "[secret]" in masked
    assert "hunter2" not in masked
    assert "aHVudGVyMjpodW50ZXIy" not in masked


@pytest.mark.parametrize(
    "line",
    [
        "basic authentication is off",
        "NOTIFY_SENDER_TOKEN: it is empty",
        "report sent to ops@example.com",
        "no ID token in the answer",
    ],
)
def test_sentences_that_only_name_a_secret_stay_as_they_are(line):
    assert redact(line) == line


@pytest.fixture
def text_stderr(monkeypatch, tmp_path):
    """What a text-format process writes to stderr."""
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    configure_logging(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", log_format="text"))
    yield captured
    logger.remove()


def test_a_traceback_in_a_text_line_is_masked(text_stderr):
    try:
        raise ValueError("postgresql://u:hunter2@db/x?password=hunter3 Bearer nfy_abcdefghijkl")
    except ValueError:
        logger.exception("the database went away")
    written = text_stderr.getvalue()
    assert "Traceback" in written
    assert "ValueError" in written
    for secret in ("hunter2", "hunter3", "nfy_abcdefghijkl"):
        assert secret not in written


def test_control_characters_in_a_value_neither_colour_nor_forge_lines(text_stderr):
    logger.info("request {path}", path="/x\x1b[31mRED\n2026-12-01 00:00:00.000 INFO    forged\x00")
    (line,) = text_stderr.getvalue().splitlines()
    assert "\x1b" not in line
    assert "\x00" not in line
    assert "\\x1b[31mRED\\n2026-12-01" in line


def test_json_lines_escape_control_characters_too(monkeypatch, tmp_path):
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", log_format=LogFormat.json)
    configure_logging(settings)
    try:
        logger.info("signed in: {user}", user="eve\x1b]0;pwned\x07")
    finally:
        logger.remove()
    line = json.loads(captured.getvalue())
    assert line["message"] == "signed in: eve\\x1b]0;pwned\\x07"
    assert line["user"] == "eve\\x1b]0;pwned\\x07"


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://u@127.0.0.1:1/test?password=hunter2", "hunter2"),
        ("postgresql://u@127.0.0.1:1/test?sslpassword=hunter2&sslmode=require", "hunter2"),
        ("postgresql://u:hunter2@127.0.0.1/test", "hunter2"),
        ("postgresql://notifyctl:S3crp@hunter2@127.0.0.1/db", "hunter2"),
    ],
)
def test_a_database_url_in_a_message_shows_no_password(url, secret):
    assert secret not in redact_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgres ql://u:hunter2@h/db",
        "postgresql://u:hunter2@127.0.0.1:port/db",
        "postgresql://notifyctl:S3crp@hunter2@127.0.0.1/db",
    ],
)
def test_a_database_url_refused_is_not_quoted_back(url):
    with pytest.raises(StorageError) as caught:
        make_engine(url)
    assert "hunter2" not in caught.value.message
    assert caught.value.field == "database_url"
