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


@pytest.mark.parametrize(
    "raw",
    [
        "0001-01-01T00:00:00+05:00",  # no UTC time: before year 1
        "9999-12-31T23:59:59-05:00",  # no UTC time: after year 9999
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59Z",
        "now+99999999999d",  # beyond what a timedelta holds
        "now-3000000d",
        "now+" + "9" * 5000 + "s",  # more digits than int() takes
    ],
)
def test_a_time_out_of_range_names_its_field(raw):
    with pytest.raises(InvalidInput) as caught:
        parse_datetime(raw, field="start")
    assert caught.value.field == "start"


def test_the_range_of_times_reaches_from_1970_to_9998():
    assert parse_datetime("1970-01-01T00:00Z", field="start") == datetime(1970, 1, 1, tzinfo=UTC)
    latest = parse_datetime("9998-12-31T23:59:59+00:00", field="end")
    assert latest.year == 9998


def test_times_take_ascii_digits_only():
    with pytest.raises(InvalidInput):
        parse_datetime("now+" + chr(0x0663) + "d", field="start")
    with pytest.raises(InvalidInput):
        validation.parse_window(chr(0x0660) + "9:00-21:00")


@pytest.mark.parametrize(
    ("raw", "problem"), [("a\x00b", "NUL"), ("a\ud800b", "surrogate"), ("\udcff", "surrogate")]
)
@pytest.mark.parametrize("rule", [validation.text, validation.tag])
def test_text_no_database_can_hold_is_refused_naming_the_field(rule, raw, problem):
    with pytest.raises(InvalidInput) as caught:
        rule(raw, field="where")
    assert (caught.value.field, problem in caught.value.message) == ("where", True)


def test_any_other_text_is_storable():
    text = "Ünïcödé ✓ 日本語 \t\n 🎉 \x7f \ufffd"
    assert validation.storable(text, field="text") == validation.text(text) == text


def test_an_error_quotes_at_most_a_few_dozen_characters_of_the_value():
    with pytest.raises(InvalidInput) as caught:
        validation.normalise_phone("<" * 130_000)
    assert len(caught.value.message) < 200
    assert "130,000 characters" in caught.value.message


def test_an_import_of_huge_bad_rows_reports_them_in_a_small_report(session):
    import io

    from notifyctl.services.imports import import_clients

    rows = "phone\n" + ("<" * 100_000 + "\n") * 50
    report = import_clients(session=session, source=io.StringIO(rows), default_timezone="UTC")
    assert report.rejected == 50
    assert sum(len(error.message) for error in report.errors) < 50 * 300


def test_a_timezone_found_in_the_tzdata_listing_is_what_a_scan_of_every_zone_finds():
    from zoneinfo import available_timezones

    from notifyctl.timeutil import _zones_by_folded_name, zone_name

    names = sorted(available_timezones())
    odd = ["Factory", "localtime", "posixrules", "posix/UTC", "right/UTC", "Europe", "../UTC", ""]
    for raw in [*names, *(n.lower() for n in names), *(f" {n.upper()} " for n in names), *odd]:
        assert zone_name(raw) == _zones_by_folded_name().get(raw.strip().casefold()), raw
