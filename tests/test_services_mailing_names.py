"""A mailing's name and its transactional flag in the service layer (issue 17)."""

import re
from datetime import timedelta

import pytest

from notifyctl.errors import Conflict, InvalidInput
from notifyctl.models import Mailing, MailingCreate, MailingUpdate
from notifyctl.services import delivery, mailings
from notifyctl.timeutil import utcnow


def create(session, **fields) -> Mailing:
    now = utcnow()
    body = {"text": "Sale", "start_at": now, "end_at": now + timedelta(hours=2)} | fields
    mailing = mailings.create_mailing(session=session, mailing_in=MailingCreate(**body))
    session.commit()
    return mailing


def stored(session, mailing_id: int) -> Mailing:
    session.expire_all()
    return session.get(Mailing, mailing_id)


def test_a_name_is_kept_trimmed_and_shown_in_the_public_shape(session):
    mailing = create(session, name="  Black Friday  ")
    public = mailings.to_public(stored(session, mailing.id))
    assert (public.name, public.transactional) == ("Black Friday", False)


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_no_name_or_a_blank_one_is_no_name(session, blank):
    assert create(session, name=blank).name is None


def test_a_name_may_have_200_characters_of_any_script(session):
    name = "Ж" * 150 + "😀" * 50
    assert stored(session, create(session, name=name).id).name == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("x" * 201, "is 201 characters long; at most 200"),
        (" " + "x" * 201 + " ", "is 201 characters long; at most 200"),
        ("Sale\x00", "NUL character at position 4"),
        ("Sale\ud800", "no character"),
        ("Sale\nnext line", "control character U+000A at position 4"),
        ("a\tb", "U+0009"),
        ("\x1b[31mred", "U+001B"),
        ("del\x7f", "U+007F"),
        ("c1\x85c1", "U+0085"),
        ("line\u2028separator", "U+2028"),
        ("evil\u202etxt.exe", "U+202E"),
        ("isolate\u2066x", "U+2066"),
    ],
)
def test_a_hostile_name_is_refused_naming_the_field_and_nothing_is_stored(session, name, says):
    with pytest.raises(InvalidInput, match=re.escape(says)) as caught:
        create(session, name=name)
    assert caught.value.field == "name"
    session.rollback()
    assert mailings.list_mailings(session=session).total == 0


def test_update_renames_removes_or_keeps_the_name(session):
    mailing = create(session, name="Draft")
    change = MailingUpdate(name="  Final ")
    mailings.update_mailing(session=session, mailing_id=mailing.id, mailing_in=change)
    assert stored(session, mailing.id).name == "Final"
    mailings.update_mailing(
        session=session, mailing_id=mailing.id, mailing_in=MailingUpdate(text="New text")
    )
    assert stored(session, mailing.id).name == "Final"  # not given: unchanged
    for cleared in (None, "", " "):
        mailings.update_mailing(session=session, mailing_id=mailing.id, mailing_in=change)
        mailings.update_mailing(
            session=session, mailing_id=mailing.id, mailing_in=MailingUpdate(name=cleared)
        )
        assert stored(session, mailing.id).name is None, cleared


def test_a_refused_rename_changes_nothing(session):
    mailing = create(session, name="Kept")
    with pytest.raises(InvalidInput) as caught:
        mailings.update_mailing(
            session=session,
            mailing_id=mailing.id,
            mailing_in=MailingUpdate(text="changed too", name="x" * 201),
        )
    assert caught.value.field == "name"
    session.rollback()
    assert (stored(session, mailing.id).name, stored(session, mailing.id).text) == ("Kept", "Sale")


def test_a_mailing_is_transactional_only_when_asked(session):
    assert create(session).transactional is False
    codes = create(session, transactional=True)
    assert mailings.to_public(stored(session, codes.id)).transactional is True


def test_the_flag_may_change_until_the_mailing_is_activated(session):
    later = utcnow() + timedelta(hours=1)
    mailing = create(session, start_at=later, end_at=later + timedelta(hours=1))
    on = MailingUpdate(transactional=True)
    mailings.update_mailing(session=session, mailing_id=mailing.id, mailing_in=on)
    session.commit()
    assert stored(session, mailing.id).transactional is True
    off = MailingUpdate(transactional=False)
    mailings.update_mailing(session=session, mailing_id=mailing.id, mailing_in=off)
    session.commit()
    assert stored(session, mailing.id).transactional is False


def test_once_activated_the_flag_is_settled_and_a_change_is_a_conflict(session):
    mailing = create(session, transactional=True, name="Codes")
    delivery.activate(session=session, mailing=mailing, now=utcnow())
    session.commit()
    with pytest.raises(Conflict, match="has started") as caught:
        mailings.update_mailing(
            session=session,
            mailing_id=mailing.id,
            mailing_in=MailingUpdate(name="Renamed", transactional=False),
        )
    assert caught.value.field == "transactional"
    session.rollback()
    assert (stored(session, mailing.id).transactional, stored(session, mailing.id).name) == (
        True,
        "Codes",
    )
    # Saying what it already is, is no change (a form or a PATCH sending every field).
    same = MailingUpdate(name="Renamed", transactional=True)
    mailings.update_mailing(session=session, mailing_id=mailing.id, mailing_in=same)
    session.commit()
    assert stored(session, mailing.id).name == "Renamed"
