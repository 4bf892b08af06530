"""The audit log in the service layer: each change point, its changes, its actor, and what
is never recorded (a refused change, a secret), on SQLite and PostgreSQL."""

import io
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from notifyctl.db import session_scope
from notifyctl.errors import Conflict, InvalidInput
from notifyctl.models import (
    Audit,
    ClientCreate,
    ClientUpdate,
    MailingCreate,
    MailingFilter,
    MailingUpdate,
    Message,
    MessageStatus,
)
from notifyctl.services import audit, clients, delivery, imports, mailings, tokens
from notifyctl.timeutil import utcnow
from tests.factories import add_clients, add_mailing


def entries(engine) -> list[Audit]:
    """Every committed entry, oldest first."""
    with session_scope(engine) as session:
        return list(session.execute(sa.select(Audit).order_by(Audit.id)).scalars())


def summary(engine) -> list[tuple]:
    return [(e.actor, e.action, e.object_type, e.object_id) for e in entries(engine)]


def new_client(engine, phone="79161234567", *, actor="cli:ana", **fields):
    with session_scope(engine, actor=actor) as session:
        return clients.create_client(
            session=session, client_in=ClientCreate(phone=phone, **fields), default_timezone="UTC"
        )


def new_mailing(engine, *, actor="cli:ana", **fields):
    now = utcnow()
    values = {
        "text": "Sale",
        "start_at": now + timedelta(hours=1),
        "end_at": now + timedelta(hours=2),
    }
    with session_scope(engine, actor=actor) as session:
        return mailings.create_mailing(session=session, mailing_in=MailingCreate(**values | fields))


# --- clients -------------------------------------------------------------------------


def test_a_created_client_is_recorded_with_its_values_and_the_sessions_actor(engine):
    client = new_client(engine, tag="vip")
    [entry] = entries(engine)
    assert (entry.actor, entry.action, entry.object_type, entry.object_id) == (
        "cli:ana",
        "created",
        "client",
        client.id,
    )
    assert entry.changes == {
        "phone": [None, "79161234567"],
        "operator_code": [None, "916"],
        "tag": [None, "vip"],
        "timezone": [None, "UTC"],
    }
    assert entry.at.tzinfo is not None
    assert abs(entry.at - utcnow()) < timedelta(minutes=1)


def test_an_update_records_only_what_changed_and_one_that_changes_nothing_is_not_recorded(engine):
    client = new_client(engine, tag="vip")
    with session_scope(engine, actor="token:deploy") as session:
        clients.update_client(
            session=session,
            client_id=client.id,
            client_in=ClientUpdate(tag="churned", timezone="UTC"),
        )
    with session_scope(engine, actor="token:deploy") as session:
        clients.update_client(
            session=session, client_id=client.id, client_in=ClientUpdate(tag="churned")
        )
    *_, entry = entries(engine)
    assert len(entries(engine)) == 2
    assert (entry.actor, entry.action, entry.changes) == (
        "token:deploy",
        "updated",
        {"tag": ["vip", "churned"]},
    )


def test_a_deleted_client_is_recorded_with_its_old_values(engine):
    client = new_client(engine)
    with session_scope(engine, actor="login-token") as session:
        clients.delete_client(session=session, client_id=client.id)
    entry = entries(engine)[-1]
    assert (entry.actor, entry.action, entry.object_id) == ("login-token", "deleted", client.id)
    assert entry.changes["phone"] == ["79161234567", None]
    assert set(entry.changes) == {"phone", "operator_code", "tag", "timezone"}


def test_a_refused_change_records_nothing(engine):
    client = new_client(engine)
    for refused in (
        lambda s: clients.create_client(
            session=s, client_in=ClientCreate(phone="79161234567"), default_timezone="UTC"
        ),  # the phone is taken
        lambda s: clients.update_client(
            session=s, client_id=client.id, client_in=ClientUpdate(tag="ok", timezone="Mars/Base")
        ),
    ):
        with pytest.raises((Conflict, InvalidInput)), session_scope(engine) as session:
            refused(session)
    assert summary(engine) == [("cli:ana", "created", "client", client.id)]


def test_a_change_rolled_back_after_it_was_recorded_leaves_no_entry(engine):
    def create_then_fail() -> None:
        with session_scope(engine, actor="cli:ana") as session:
            clients.create_client(
                session=session, client_in=ClientCreate(phone="79161234567"), default_timezone="UTC"
            )
            raise RuntimeError("the commit never comes")

    with pytest.raises(RuntimeError):
        create_then_fail()
    assert entries(engine) == []


def test_an_import_is_one_entry_with_its_counts(engine):
    new_client(engine, "79160000000")
    csv = "phone,tag\n79160000000,old\n79160000001,a\n79160000002,b\nbad,c\n"
    with session_scope(engine, actor="oidc:ana@example.com") as session:
        report = imports.import_clients(
            session=session,
            source=io.StringIO(csv),
            default_timezone="UTC",
            skip_invalid=True,
            on_duplicate="update",
        )
    assert report.committed
    entry = entries(engine)[-1]
    assert len(entries(engine)) == 2
    assert (entry.actor, entry.action, entry.object_type, entry.object_id) == (
        "oidc:ana@example.com",
        "imported",
        "client",
        None,
    )
    assert entry.changes == {
        "imported": [None, 2],
        "updated": [None, 1],
        "skipped": [None, 0],
        "rejected": [None, 1],
    }


def test_an_import_refused_for_a_bad_row_records_nothing(engine):
    with session_scope(engine) as session:
        report = imports.import_clients(
            session=session, source=io.StringIO("phone\n79160000001\nbad\n"), default_timezone="UTC"
        )
    assert not report.committed
    assert entries(engine) == []


# --- mailings ------------------------------------------------------------------------


def test_a_created_mailing_is_recorded_with_its_values_lists_as_lists(engine):
    mailing = new_mailing(engine, filter=MailingFilter(operator_codes=["916"], tags=["vip", "new"]))
    [entry] = entries(engine)
    assert (entry.action, entry.object_type, entry.object_id) == ("created", "mailing", mailing.id)
    assert entry.changes["text"] == [None, "Sale"]
    assert entry.changes["tags"] == [None, ["new", "vip"]]
    assert entry.changes["operator_codes"] == [None, ["916"]]
    assert entry.changes["start_at"] == [None, mailing.start_at.isoformat()]
    assert "window_start" not in entry.changes  # None on both sides: no change


def test_a_long_text_is_kept_whole(engine):
    mailing = new_mailing(engine, text="Sale ")
    with session_scope(engine, actor="cli:ana") as session:
        mailings.update_mailing(
            session=session, mailing_id=mailing.id, mailing_in=MailingUpdate(text="é" * 1000)
        )
    assert entries(engine)[-1].changes == {"text": ["Sale ", "é" * 1000]}


def test_every_steering_action_is_recorded_with_the_times_it_set(engine, session):
    add_clients(session, 2)
    mailing = add_mailing(session)  # running
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.execute(sa.update(Message).values(status=MessageStatus.failed))
    session.commit()
    steps = [
        ("paused", mailings.pause_mailing),
        ("resumed", mailings.resume_mailing),
        ("retried", mailings.retry_failed),
        ("cancelled", mailings.cancel_mailing),
        ("deleted", mailings.delete_mailing),
    ]
    for _, step in steps:
        with session_scope(engine, actor="cli:ana") as s:
            step(session=s, mailing_id=mailing.id)
    recorded = {e.action: e.changes for e in entries(engine) if e.actor == "cli:ana"}
    assert list(recorded) == [action for action, _ in steps]
    paused_at = recorded["paused"]["paused_at"][1]
    assert recorded["paused"] == {"paused_at": [None, paused_at]}
    assert recorded["resumed"] == {"paused_at": [paused_at, None]}
    assert recorded["retried"] == {"messages_retried": [None, 2]}
    assert list(recorded["cancelled"]) == ["cancelled_at"]
    assert recorded["deleted"]["text"] == ["Hello", None]


def test_a_refused_steering_action_records_nothing(engine):
    mailing = new_mailing(engine)
    with session_scope(engine) as session:
        mailings.cancel_mailing(session=session, mailing_id=mailing.id)
    before = len(entries(engine))
    with pytest.raises(Conflict), session_scope(engine) as session:
        mailings.pause_mailing(session=session, mailing_id=mailing.id)
    with pytest.raises(Conflict), session_scope(engine) as session:
        mailings.update_mailing(
            session=session, mailing_id=mailing.id, mailing_in=MailingUpdate(text="new")
        )
    assert len(entries(engine)) == before


# --- the daemon ----------------------------------------------------------------------


def test_the_daemons_activation_completion_and_expiry_are_recorded_as_daemon(engine, session):
    add_clients(session, 2)
    now = utcnow()
    done = add_mailing(session, now=now)
    ends = add_mailing(session, now=now, lasts=timedelta(minutes=5))
    later = now + timedelta(minutes=6)
    # One transaction per step, as the daemon's passes run.
    with session_scope(engine) as s:
        for mailing in (done, ends):
            delivery.activate(session=s, mailing=mailing, now=now)
    with session_scope(engine) as s:
        s.execute(
            sa.update(Message)
            .where(Message.mailing_id == done.id)
            .values(status=MessageStatus.sent)
        )
        assert delivery.complete_done(session=s, now=now) == [done.id]
    with session_scope(engine) as s:
        assert delivery.expire_ended(session=s, now=later) == {ends.id: 2}

    daemon = [
        (e.action, e.object_id, e.changes, e.at) for e in entries(engine) if e.actor == "daemon"
    ]
    stamp = now.astimezone(UTC).isoformat()
    assert daemon == [
        ("activated", done.id, {"activated_at": [None, stamp], "messages_created": [None, 2]}, now),
        ("activated", ends.id, {"activated_at": [None, stamp], "messages_created": [None, 2]}, now),
        ("completed", done.id, {"completed_at": [None, stamp]}, now),
        (
            "expired",
            ends.id,
            {"completed_at": [None, later.isoformat()], "messages_expired": [None, 2]},
            later,
        ),
    ]


def test_a_mailing_completed_already_is_not_completed_again(engine, session):
    add_clients(session, 1)
    mailing = add_mailing(session)
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.execute(sa.update(Message).values(status=MessageStatus.sent))
    session.commit()
    assert delivery.complete_done(session=session, now=utcnow()) == [mailing.id]
    assert delivery.complete_done(session=session, now=utcnow()) == []
    session.commit()
    assert [e.action for e in entries(engine)].count("completed") == 1


# --- tokens and secrets --------------------------------------------------------------


def test_tokens_are_recorded_by_name_and_never_with_their_secret(engine):
    with session_scope(engine, actor="cli:ana") as session:
        token, plain = tokens.create_token(session=session, name="deploy")
    with session_scope(engine, actor="cli:ana") as session:
        tokens.revoke_token(session=session, name="deploy")
    created, revoked = entries(engine)
    assert (created.action, created.object_type, created.object_id) == (
        "created",
        "api_token",
        token.id,
    )
    assert created.changes == {"name": [None, "deploy"]}
    assert revoked.action == "revoked"
    assert revoked.changes["name"] == ["deploy", "deploy"]
    assert revoked.changes["revoked_at"][0] is None
    stored = str([(e.changes, e.actor) for e in entries(engine)])
    assert plain not in stored
    assert tokens.hash_token(plain) not in stored


def test_a_session_no_front_end_named_records_system(engine):
    new_client(engine, actor=None)
    assert entries(engine)[0].actor == audit.SYSTEM


# --- listing -------------------------------------------------------------------------


def test_entries_are_listed_newest_first_and_filtered_by_mailing_or_client(engine):
    first = new_client(engine, "79160000001")
    second = new_client(engine, "79160000002")
    mailing = new_mailing(engine)
    with session_scope(engine, actor="cli:bob") as session:
        clients.update_client(session=session, client_id=first.id, client_in=ClientUpdate(tag="x"))
    with session_scope(engine) as session:
        everything = audit.list_entries(session=session)
        of_first = audit.list_entries(session=session, client_id=first.id)
        of_mailing = audit.list_entries(session=session, mailing_id=mailing.id)
        either = audit.list_entries(session=session, mailing_id=mailing.id, client_id=second.id)
        page = audit.list_entries(session=session, limit=2, offset=1)
    assert [(e.action, e.object_type, e.object_id) for e in everything.items] == [
        ("updated", "client", first.id),
        ("created", "mailing", mailing.id),
        ("created", "client", second.id),
        ("created", "client", first.id),
    ]
    assert [e.action for e in of_first.items] == ["updated", "created"]
    assert (of_mailing.total, of_mailing.items[0].object_id) == (1, mailing.id)
    assert {(e.object_type, e.object_id) for e in either.items} == {
        ("mailing", mailing.id),
        ("client", second.id),
    }
    assert (page.total, [e.id for e in page.items]) == (4, [e.id for e in everything.items[1:3]])


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"mailing_id": 0}, "mailing_id"),
        ({"client_id": 2**63}, "client_id"),
    ],
)
def test_bad_listing_arguments_are_refused_naming_the_field(session, options, field):
    with pytest.raises(InvalidInput) as caught:
        audit.list_entries(session=session, **options)
    assert caught.value.field == field


# --- retention -----------------------------------------------------------------------


def test_prune_deletes_entries_before_the_cutoff_a_batch_at_a_time(engine):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        for day in range(5):
            audit.record(
                session=session,
                action="created",
                object_type="client",
                object_id=day + 1,
                changes={},
                at=start + timedelta(days=day),
            )
    cutoff = start + timedelta(days=3)
    with session_scope(engine) as session:
        assert audit.prune(session=session, before=cutoff, limit=2) == 2
    with session_scope(engine) as session:
        assert audit.prune(session=session, before=cutoff, limit=2) == 1
    assert [e.object_id for e in entries(engine)] == [4, 5]


def test_an_opt_out_and_an_opt_in_are_recorded_once_each(engine):
    from notifyctl.services import optout

    client = new_client(engine)
    at = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    for _ in range(2):  # (the second opt-out changes nothing: no second entry)
        with session_scope(engine, actor="token:crm") as session:
            optout.opt_out(session=session, client_id=client.id, now=at)
    with session_scope(engine, actor="login-token") as session:
        optout.opt_in(session=session, client_id=client.id)
    assert summary(engine)[1:] == [
        ("token:crm", "opted_out", "client", client.id),
        ("login-token", "opted_in", "client", client.id),
    ]
    opted_out, opted_in = entries(engine)[1:]
    assert opted_out.changes == {"opted_out_at": [None, at.isoformat()]}
    assert opted_in.changes == {"opted_out_at": [at.isoformat(), None]}
