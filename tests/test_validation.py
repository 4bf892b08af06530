"""Field rules: phones, operator codes, timezones, windows, datetimes."""

from datetime import UTC, datetime, timedelta

import pytest

from notifyctl.errors import InvalidInput
from notifyctl.models import SendWindow
from notifyctl.services import validation
from notifyctl.timeutil import parse_datetime


@pytest.mark.parametrize(
    "raw", ["+7 (916) 123-45-67", "79161234567", "7 916 123 45 67", "+7.916.123.45.67"]
)
def test_phone_in_common_forms_is_normalised(raw):
    assert validation.normalise_phone(raw) == "79161234567"


ARABIC_INDIC = "7" + "".join(chr(0x0660 + int(d)) for d in "9161234567")
FULLWIDTH = "7" + "".join(chr(0xFF10 + int(d)) for d in "9161234567")


@pytest.mark.parametrize(
    "raw",
    [
        "89161234567",
        "+1 916 123 45 67",
        "7916123456",
        "791612345678",
        "7916abc4567",
        "",
        ARABIC_INDIC,  # the same number in another script: a second client for it
        FULLWIDTH,
    ],
)
def test_phone_of_any_other_form_is_rejected_naming_the_field(raw):
    with pytest.raises(InvalidInput) as caught:
        validation.normalise_phone(raw)
    assert caught.value.field == "phone"


def test_operator_code_is_derived_from_digits_two_to_four():
    assert validation.operator_code(None, phone="79261234567") == "926"


@pytest.mark.parametrize("raw", ["91", "9161", "abc"])
def test_operator_code_must_be_three_digits(raw):
    with pytest.raises(InvalidInput, match="3-digit"):
        validation.operator_code(raw, phone="79161234567")


def test_timezone_is_matched_case_insensitively_and_canonicalised():
    assert validation.timezone("asia/vladivostok") == "Asia/Vladivostok"


@pytest.mark.parametrize("raw", ["Mars/Base", "MSK+3", "", "../../etc/passwd"])
def test_unknown_timezone_is_rejected(raw):
    with pytest.raises(InvalidInput, match="IANA"):
        validation.timezone(raw)


def test_tag_longer_than_64_characters_is_rejected():
    validation.tag("x" * 64)
    with pytest.raises(InvalidInput, match="at most 64"):
        validation.tag("x" * 65)


@pytest.mark.clock
def test_window_is_parsed_and_may_wrap_midnight():
    assert validation.parse_window("22:00-6:30") == SendWindow(start="22:00", end="06:30")


@pytest.mark.parametrize("raw", ["9-21", "09:00", "25:00-01:00", "09:00-09:00", "09:60-10:00"])
def test_malformed_or_empty_window_is_rejected(raw):
    with pytest.raises(InvalidInput):
        validation.parse_window(raw)


@pytest.mark.clock
def test_datetime_with_offset_is_converted_to_utc():
    parsed = parse_datetime("2026-12-01T09:00+03:00", field="start")
    assert parsed == datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


@pytest.mark.clock
def test_datetime_without_offset_is_read_in_the_default_timezone():
    parsed = parse_datetime("2026-12-01T09:00", field="start", default_tz="Asia/Vladivostok")
    assert parsed == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


@pytest.mark.clock
def test_relative_now_is_understood():
    before = datetime.now(UTC).replace(microsecond=0)
    parsed = parse_datetime("now+10m", field="end")
    assert before + timedelta(minutes=10) <= parsed <= before + timedelta(minutes=10, seconds=2)


def test_garbage_datetime_names_its_field():
    with pytest.raises(InvalidInput) as caught:
        parse_datetime("next tuesday", field="start")
    assert caught.value.field == "start"


@pytest.mark.parametrize("raw", ["localtime", "Factory", "posixrules", "America", "../etc/passwd"])
def test_a_timezone_must_be_a_place_in_the_zone_database(raw):
    with pytest.raises(InvalidInput) as caught:
        validation.timezone(raw)
    assert caught.value.field == "timezone"


def test_an_operator_code_is_three_ascii_digits():
    with pytest.raises(InvalidInput):
        validation.operator_code(chr(0x0669) * 3, phone="79161234567")
