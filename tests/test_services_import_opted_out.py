"""The CSV import's optional ``opted_out`` column, on SQLite (INSERT) and PostgreSQL (COPY),
in every ``--on-duplicate`` mode."""

import io
from datetime import timedelta

import pytest
import sqlalchemy as sa

from notifyctl.models import Client, Message
from notifyctl.services import delivery, imports, optout
from notifyctl.timeutil import utcnow
from tests.factories import add_clients, add_mailing


def run(session, text: str, **options):
    report = imports.import_clients(
        session=session, source=io.StringIO(text), default_timezone="UTC", **options
    )
    session.commit()
    return report


def opted_out(session) -> dict[str, bool]:
    """phone -> opted out, of every stored client."""
    session.expire_all()
    rows = session.execute(sa.select(Client.phone, Client.opted_out_at).order_by(Client.id))
    return {phone: at is not None for phone, at in rows}


def test_the_column_opts_new_clients_out_or_not(session):
    started = utcnow()
    report = run(
        session,
        "phone,tag,opted_out\n79161234567,a,true\n79031234567,b,false\n79261234567,c, TRUE \n",
    )
    assert (report.imported, report.rejected, report.committed) == (3, 0, True)
    assert opted_out(session) == {"79161234567": True, "79031234567": False, "79261234567": True}
    times = session.execute(sa.select(Client.opted_out_at).where(Client.opted_out_at.is_not(None)))
    assert all(started <= at <= utcnow() for at in times.scalars())


def test_a_file_without_the_column_opts_nobody_out(session):
    run(session, "phone\n79161234567\n")
    assert opted_out(session) == {"79161234567": False}


@pytest.mark.parametrize(
    "value",
    ["yes", "1", "", "tru\u0435", "x" * 10_000],
    ids=["yes", "1", "empty", "cyrillic", "huge"],
)
def test_anything_but_true_or_false_is_a_bad_row_with_its_line(session, value):
    report = run(session, f"phone,opted_out\n79161234567,false\n79031234567,{value}\n")
    assert report.committed is False
    [error] = report.errors
    assert error.line == 3
    assert error.message.startswith("opted_out: ")
    assert "is not true or false" in error.message
    assert len(error.message) < 120  # a huge value is quoted cut short
    assert opted_out(session) == {}


def test_skip_invalid_imports_the_good_rows_around_a_bad_value(session):
    report = run(
        session, "phone,opted_out\n79161234567,true\n79031234567,maybe\n", skip_invalid=True
    )
    assert (report.imported, report.rejected, [e.line for e in report.errors]) == (1, 1, [3])
    assert opted_out(session) == {"79161234567": True}


def test_on_duplicate_fail_leaves_a_stored_client_as_it_was(session):
    add_clients(session, 1)  # 79160000000
    report = run(session, "phone,opted_out\n79160000000,true\n")
    assert (report.committed, report.stored_phones) == (False, 1)
    assert opted_out(session) == {"79160000000": False}


def test_on_duplicate_skip_leaves_a_stored_client_as_it_was(session):
    _, second = add_clients(session, 2)  # 79160000000, 79160000001
    optout.opt_out(session=session, client_id=second.id)
    session.commit()
    report = run(
        session, "phone,opted_out\n79160000000,true\n79160000001,false\n", on_duplicate="skip"
    )
    assert (report.skipped, report.committed) == (2, True)
    assert opted_out(session) == {"79160000000": False, "79160000001": True}


def test_on_duplicate_update_opts_out_cancelling_pending_messages(session):
    """As ``client opt-out`` does: pending messages of ordinary mailings are cancelled."""
    first, second, third = add_clients(session, 3)
    earlier = utcnow() - timedelta(days=2)
    optout.opt_out(session=session, client_id=third.id, now=earlier)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.commit()

    report = run(
        session,
        "phone,opted_out\n79160000000,true\n79160000001,false\n79160000002,true\n",
        on_duplicate="update",
    )

    assert (report.updated, report.committed) == (3, True)
    assert opted_out(session) == {"79160000000": True, "79160000001": False, "79160000002": True}
    kept = session.execute(sa.select(Client.opted_out_at).where(Client.id == third.id))
    assert kept.scalar_one() == earlier  # opted out already: it keeps its time
    rows = session.execute(
        sa.select(Message.client_id, Message.status, Message.last_error).order_by(Message.id)
    )
    assert [tuple(row) for row in rows] == [
        (first.id, "cancelled", "opted out"),
        (second.id, "pending", None),
    ]


def test_on_duplicate_update_with_false_opts_a_client_in(session):
    [client] = add_clients(session, 1)
    optout.opt_out(session=session, client_id=client.id)
    session.commit()
    report = run(session, "phone,tag,opted_out\n79160000000,back,false\n", on_duplicate="update")
    assert report.updated == 1
    assert opted_out(session) == {"79160000000": False}


def test_on_duplicate_update_without_the_column_keeps_the_opt_out(session):
    [client] = add_clients(session, 1)
    optout.opt_out(session=session, client_id=client.id)
    session.commit()
    run(session, "phone,tag\n79160000000,new\n", on_duplicate="update")
    assert opted_out(session) == {"79160000000": True}


def test_the_column_may_be_named_only_once(session):
    from notifyctl.errors import InvalidInput

    with pytest.raises(InvalidInput, match="opted_out"):
        run(session, "phone,opted_out,opted_out\n79161234567,true,true\n")
