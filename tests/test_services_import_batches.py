"""CSV import, what a batched write (COPY into a staging table on PostgreSQL, multi-row
INSERT on SQLite) could get wrong: odd values, batch boundaries, stored phones, the
report's line numbers, the transaction."""

import io

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from notifyctl.models import Client
from notifyctl.services import imports
from tests.factories import add_clients


def run(session, text: str, **options):
    return imports.import_clients(
        session=session, source=io.StringIO(text), default_timezone="Europe/Moscow", **options
    )


def rows(engine) -> list[tuple]:
    """Every client as a fresh session sees it: what was committed, in id order."""
    with Session(engine) as fresh:
        found = fresh.exec(select(Client).order_by(Client.id)).all()
        return [(c.phone, c.operator_code, c.tag, c.timezone) for c in found]


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(imports, "BATCH_SIZE", 2)


ODD_TAGS = [
    "tab\there",
    "back\\slash \\N \\t",  # \N is COPY's NULL, \t its tab: both must stay text
    'say "hi", twice',
    "two\nlines",
    "crlf\r\nin it",
    "Ünïcödé — 日本語 🙂",
    "",
]


def test_odd_values_are_stored_exactly_as_they_are_read(session, engine, small_batches):
    def field(tag: str) -> str:
        return '"' + tag.replace('"', '""') + '"'

    lines = [f"7916000000{n},{field(tag)}" for n, tag in enumerate(ODD_TAGS)]
    report = run(session, "phone,tag\n" + "\n".join(lines) + "\n")
    session.commit()
    assert (report.imported, report.rejected) == (len(ODD_TAGS), 0)
    assert [tag for _, _, tag, _ in rows(engine)] == ODD_TAGS


def test_a_line_break_in_a_quoted_field_counts_in_the_line_numbers(session):
    report = run(session, 'phone,tag\n79160000001,"a\nb\nc"\nnot-a-phone,x\n79160000001,y\n')
    assert [(e.line, e.message.split(" ")[0]) for e in report.errors] == [
        (5, "phone:"),
        (6, "phone"),
    ]
    assert report.errors[1].message == "phone 79160000001 repeats line 4"


@pytest.mark.parametrize("mode", ["fail", "skip", "update"])
def test_a_phone_repeated_across_batches_is_a_bad_row_in_every_mode(
    session, engine, small_batches, mode
):
    text = "phone,tag\n79160000001,a\n79160000002,b\n79160000003,c\n79160000001,d\n"
    report = run(session, text, on_duplicate=mode, skip_invalid=True)
    session.commit()
    assert [(e.line, e.message) for e in report.errors] == [
        (5, "phone 79160000001 repeats an earlier line of the file")
    ]
    assert (report.imported, report.updated, report.skipped, report.stored_phones) == (3, 0, 0, 0)
    assert [tag for _, _, tag, _ in rows(engine)] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("mode", "counts", "tags"),
    [
        # imported, updated, skipped, rejected, stored_phones
        ("fail", (2, 0, 0, 2, 2), ["old", "old", "new1", "new2"]),
        ("skip", (2, 0, 2, 0, 0), ["old", "old", "new1", "new2"]),
        ("update", (2, 2, 0, 0, 0), ["s0", "s1", "new1", "new2"]),
    ],
)
def test_stored_phones_spread_over_batches_are_handled_as_the_mode_says(
    session, engine, small_batches, mode, counts, tags
):
    add_clients(session, 2, tag="old", tz="Asia/Tokyo")  # 79160000000, 79160000001
    text = "phone,tag\n79031234567,new1\n79160000000,s0\n79160000001,s1\n79261234567,new2\n"
    report = run(session, text, on_duplicate=mode, skip_invalid=True)
    session.commit()
    found = (report.imported, report.updated, report.skipped, report.rejected)
    assert (*found, report.stored_phones) == counts
    if mode == "fail":
        assert [(e.line, e.message) for e in report.errors] == [
            (3, "phone 79160000000 already belongs to a client"),
            (4, "phone 79160000001 already belongs to a client"),
        ]
    stored = rows(engine)
    assert [tag for _, _, tag, _ in stored] == tags
    # update takes only the file's columns: the stored timezone stays
    assert [zone for _, _, _, zone in stored[:2]] == ["Asia/Tokyo", "Asia/Tokyo"]


def test_errors_found_while_writing_and_while_reading_are_reported_in_line_order(
    session, small_batches
):
    add_clients(session, 1)  # 79160000000
    text = "phone\n79031234567\n79160000000\nbad\n79261234567\n79031234567\n79160000000\nbad\n"
    report = run(session, text)
    assert [e.line for e in report.errors] == [3, 4, 6, 7, 8]
    assert report.stored_phones == 2
    assert report.committed is False


def test_the_report_keeps_the_first_errors_and_counts_them_all(session, monkeypatch):
    monkeypatch.setattr(imports, "MAX_REPORTED_ERRORS", 3)
    report = run(session, "phone\n" + "bad\n" * 10 + "79161234567\n", skip_invalid=True)
    assert (report.rejected, report.imported) == (10, 1)
    assert [e.line for e in report.errors] == [2, 3, 4]


@pytest.mark.parametrize("mode", ["fail", "skip", "update"])
def test_one_bad_row_commits_nothing_not_even_earlier_batches_or_updates(
    session, engine, small_batches, mode
):
    add_clients(session, 1, tag="old")  # 79160000000
    text = "phone,tag\n79031234567,a\n79160000000,b\n79261234567,c\n79361234567,d\nbad,e\n"
    report = run(session, text, on_duplicate=mode)
    session.commit()  # as the CLI does: whatever the import left in the session
    assert report.committed is False
    assert (report.imported, report.updated, report.skipped) == (0, 0, 0)
    assert rows(engine) == [("79160000000", "916", "old", "UTC")]


def test_new_clients_follow_the_stored_ones_in_id_and_in_file_order(session, engine):
    stored = add_clients(session, 3)
    report = run(session, "phone\n79261234567\n79031234567\n79991234567\n")
    session.commit()
    assert report.imported == 3
    with Session(engine) as fresh:
        found = fresh.exec(select(Client.id, Client.phone).order_by(Client.id)).all()
    assert [phone for _, phone in found[3:]] == ["79261234567", "79031234567", "79991234567"]
    assert min(id_ for id_, _ in found[3:]) > max(c.id for c in stored)


def test_two_imports_in_one_transaction_and_one_after_its_commit(session, engine):
    run(session, "phone\n79261234567\n")
    run(session, "phone\n79031234567\n")
    session.commit()
    run(session, "phone\n79991234567\n")
    session.commit()
    assert len(rows(engine)) == 3


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # (SQLite has no staging)
def test_an_import_leaves_no_staging_table_in_the_connection(session, engine):
    run(session, "phone\n79261234567\n")
    session.commit()
    assert session.execute(sa.text("SELECT to_regclass('client_import_stage')")).scalar() is None
