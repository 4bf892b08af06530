"""Settings: each value checked the way the same value is checked as input."""

import os

import pytest
from pydantic import ValidationError

from notifyctl.config import Settings


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules", "Moon/Crater"])
def test_timezone_settings_follow_the_client_timezone_rule(monkeypatch, zone):
    monkeypatch.setenv("NOTIFY_REPORT_TIMEZONE", zone)
    with pytest.raises(ValidationError, match="IANA"):
        Settings()


def test_timezone_settings_are_canonicalised():
    assert Settings(default_timezone="europe/moscow").default_timezone == "Europe/Moscow"


@pytest.mark.parametrize(
    "url",
    [
        "http://user:hunter2@sms.example/v1/send",
        "https://hunter2@sms.example/v1/send",
        "ftp://sms.example/v1/send",
        "sms.example/v1/send",
        "https://sms.example/v1/send?key=hunter2",  # (the id would land in the query)
        "https://sms.example/v1/send#hunter2",
        "https://sms.example/v1/send?",
    ],
)
def test_a_sender_url_with_credentials_or_not_http_is_refused_without_quoting_it(url):
    with pytest.raises(ValidationError) as caught:
        Settings(sender_url=url)
    ((location, message),) = [(error["loc"], error["msg"]) for error in caught.value.errors()]
    assert location == ("sender_url",)
    assert "hunter2" not in message


def test_the_cli_refuses_a_sender_url_with_credentials_in_one_line_without_them(tmp_path):
    from tests.processes import notifyctl

    env = dict(os.environ) | {"NOTIFY_SENDER_URL": "http://user:hunter2@sms.example/v1/send"}
    result = notifyctl("--db", f"sqlite:///{tmp_path / 'a.db'}", "daemon", "--check", env=env)
    assert result.returncode == 2
    assert "NOTIFY_SENDER_URL" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "url",
    [
        "https://notify.example.com\n",
        "https://notify.example.com\t",
        "https://notify.example.com#",
        "https://notify.example.com?",
        "http://x y.com",
        "https://notify.example.com/admin",
    ],
)
def test_a_public_url_with_anything_after_the_site_is_refused(url):
    with pytest.raises(ValidationError):
        Settings(public_url=url)


def test_a_public_url_of_a_site_is_kept_without_its_slash():
    assert Settings(public_url="https://notify.example.com:8443/").public_url == (
        "https://notify.example.com:8443"
    )


@pytest.mark.parametrize(
    ("variable", "value"), [("NOTIFY_LOG_LEVEL", "LOUD"), ("NOTIFY_LOG_CONSOLE_LEVEL", "nope")]
)
def test_a_log_level_loguru_does_not_know_is_refused_at_start(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match="not a log level"):
        Settings()


def test_a_log_level_is_read_in_any_case():
    assert Settings(log_level="debug").log_level == "DEBUG"


def test_a_log_file_that_is_a_folder_is_refused_at_start(tmp_path):
    with pytest.raises(ValidationError, match="is a folder"):
        Settings(log_file=tmp_path)
