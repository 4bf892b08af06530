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


def stored(session):
    session.expire_all()
    return [
        (c.phone, c.operator_code, c.tag, c.timezone) for c in list_clients(session=session).items
    ]


def test_on_duplicate_fail_is_the_default_and_counts_the_stored_phones(session):
    add_clients(session, 2)  # 79160000000, 79160000001
    report = run(session, "phone\n79160000000\n79160000001\n79031234567\n")
    assert (report.committed, report.rejected, report.stored_phones) == (False, 2, 2)
    assert len(stored(session)) == 2


def test_on_duplicate_skip_leaves_stored_clients_as_they_are(session):
    add_clients(session, 1, tag="old")
    report = run(session, "phone,tag\n79160000000,new\n79031234567,x\n", on_duplicate="skip")
    assert (report.imported, report.skipped, report.rejected, report.committed) == (1, 1, 0, True)
    assert stored(session) == [
        ("79160000000", "916", "old", "UTC"),
        ("79031234567", "903", "x", "Europe/Moscow"),
    ]


def test_on_duplicate_update_changes_only_the_columns_of_the_file(session):
    add_clients(session, 1, tag="old", operator="916", tz="Asia/Tokyo")
    report = run(session, "phone,tag\n79160000000,new\n", on_duplicate="update")
    assert (report.imported, report.updated, report.committed) == (0, 1, True)
    assert stored(session) == [("79160000000", "916", "new", "Asia/Tokyo")]


def test_a_phone_repeated_in_the_file_is_a_bad_row_whatever_the_mode(session, monkeypatch):
    """Across batches a repeat is known by the rows this import wrote. So a stored phone
    that `skip` left alone is skipped again on its second line (line 5 below): the one
    case where a repeat goes unreported, with nothing written for it either way."""
    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    add_clients(session, 1, tag="old")  # 79160000000
    text = "phone,tag\n79160000000,a\n79031234567,b\n79261234567,c\n79160000000,d\n79031234567,e\n"
    skip = run(session, text, on_duplicate="skip", skip_invalid=True)
    assert ([e.line for e in skip.errors], skip.skipped) == ([6], 2)
    assert [tag for _, _, tag, _ in stored(session)] == ["old", "b", "c"]
    update = run(session, text, on_duplicate="update", skip_invalid=True)
    assert ([e.line for e in update.errors], update.updated) == ([5, 6], 3)
    assert [tag for _, _, tag, _ in stored(session)] == ["a", "b", "c"]


def test_an_unknown_on_duplicate_is_refused_naming_it(session):
    with pytest.raises(InvalidInput) as refused:
        run(session, "phone\n79160000000\n", on_duplicate="merge")
    assert refused.value.field == "on_duplicate"


def test_progress_is_reported_in_lines_read(session, monkeypatch):
    monkeypatch.setattr(imports, "PROGRESS_LINES", 2)
    seen = []
    run(session, "phone\n" + "".join(f"7916000000{n}\n" for n in range(5)), on_progress=seen.append)
    assert seen[-1] == 5
    assert seen == sorted(seen)
