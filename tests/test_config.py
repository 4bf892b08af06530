"""Settings: each value checked the way the same value is checked as input."""

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
