"""CSV import: streamed, every bad row reported by line, all-or-nothing unless told otherwise."""

import io

import pytest

from notifyctl.errors import InvalidInput
from notifyctl.services import imports
from notifyctl.services.clients import list_clients
from tests.factories import add_clients


def run(session, text: str, **options):
    report = imports.import_clients(
        session=session, source=io.StringIO(text), default_timezone="Europe/Moscow", **options
    )
    session.commit()
    return report


def test_valid_file_imports_every_row_with_defaults(session):
    report = run(
        session,
        "phone,operator_code,tag,timezone\n"
        "+7 916 123-45-67,,vip,Asia/Vladivostok\n"
        "79031234567,999,,\n",
    )
    assert (report.imported, report.rejected, report.committed) == (2, 0, True)
    rows = list_clients(session=session).items
    assert [(c.phone, c.operator_code, c.tag, c.timezone) for c in rows] == [
        ("79161234567", "916", "vip", "Asia/Vladivostok"),
        ("79031234567", "999", "", "Europe/Moscow"),
    ]


def test_one_bad_row_imports_nothing_and_every_bad_row_is_reported_by_line(session):
    report = run(
        session,
        "phone,tag\n79161234567,a\n12345,b\n79031234567,c\n79031234567,d\n7926,e,extra\n",
    )
    assert report.committed is False
    assert [(e.line, e.message.split(":")[0]) for e in report.errors] == [
        (3, "phone"),
        (5, "phone 79031234567 repeats line 4"),
        (6, "has 3 fields, the header has 2"),
    ]
    assert list_clients(session=session).total == 0


def test_skip_invalid_imports_the_good_rows(session):
    report = run(session, "phone\n79161234567\nnot-a-phone\n79031234567\n", skip_invalid=True)
    assert (report.imported, report.rejected, report.committed) == (2, 1, True)
    assert list_clients(session=session).total == 2


def test_phone_already_stored_is_reported(session):
    add_clients(session, 1)  # 79160000000
    report = run(session, "phone\n79160000000\n")
    assert report.errors[0].line == 2
    assert "already belongs" in report.errors[0].message


def test_duplicates_across_batches_are_caught(session, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    report = run(session, "phone\n79160000001\n79160000002\n79160000003\n79160000001\n")
    assert [e.line for e in report.errors] == [5]
    assert list_clients(session=session).total == 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("name,phone\n", "header"),
        ("operator_code,tag\n", "header"),
    ],
)
def test_unusable_header_is_refused(session, text, reason):
    with pytest.raises(InvalidInput, match=reason):
        run(session, text)


def test_broken_quoting_is_reported_by_line_and_the_rest_is_read(session):
    report = run(session, 'phone,tag\n79161234567,"a"b\n79031234567,ok\n', skip_invalid=True)
    assert [(e.line, e.message.startswith("broken CSV")) for e in report.errors] == [(2, True)]
    assert report.imported == 1


def test_file_that_is_not_utf8_is_refused(session):
    source = io.TextIOWrapper(io.BytesIO(b"phone\n7916\xff\xfe1234567\n"), encoding="utf-8")
    with pytest.raises(InvalidInput, match="UTF-8"):
        imports.import_clients(session=session, source=source, default_timezone="UTC")
