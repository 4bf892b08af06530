"""Client service functions on SQLite and PostgreSQL."""

import pytest

from notifyctl.errors import Conflict, InvalidInput, NotFound
from notifyctl.models import Client, ClientCreate, ClientUpdate, Message, MessageStatus
from notifyctl.services import clients


def make(session, phone="79161234567", **fields) -> Client:
    client = clients.create_client(
        session=session, client_in=ClientCreate(phone=phone, **fields), default_timezone="UTC"
    )
    session.commit()
    return client


def test_create_normalises_phone_and_derives_operator_and_default_timezone(session):
    client = make(session, phone="+7 (926) 000-11-22", tag="vip")
    assert (client.phone, client.operator_code, client.tag, client.timezone) == (
        "79260001122",
        "926",
        "vip",
        "UTC",
    )
    assert client.created_at.tzinfo is not None


def test_duplicate_phone_is_a_conflict_and_stores_nothing(session):
    make(session)
    with pytest.raises(Conflict, match="already belongs"):
        make(session, phone="+7 916 123-45-67")
    session.rollback()
    assert clients.list_clients(session=session).total == 1


def test_invalid_timezone_stores_nothing(session):
    with pytest.raises(InvalidInput):
        make(session, timezone="Nowhere/City")
    session.rollback()
    assert clients.list_clients(session=session).total == 0


def test_update_changes_only_given_fields(session):
    client = make(session, tag="old", timezone="Europe/Moscow")
    clients.update_client(session=session, client_id=client.id, client_in=ClientUpdate(tag="new"))
    session.commit()
    again = clients.get_client(session=session, client_id=client.id)
    assert (again.tag, again.timezone, again.phone) == ("new", "Europe/Moscow", "79161234567")


def test_new_phone_rederives_operator_unless_one_is_given(session):
    client = make(session)
    clients.update_client(
        session=session, client_id=client.id, client_in=ClientUpdate(phone="79031112233")
    )
    assert client.operator_code == "903"
    clients.update_client(
        session=session,
        client_id=client.id,
        client_in=ClientUpdate(phone="79051112233", operator_code="999"),
    )
    assert client.operator_code == "999"


def test_update_to_a_taken_phone_is_a_conflict(session):
    make(session)
    other = make(session, phone="79031112233")
    with pytest.raises(Conflict):
        clients.update_client(
            session=session, client_id=other.id, client_in=ClientUpdate(phone="79161234567")
        )


def test_unknown_client_is_not_found(session):
    with pytest.raises(NotFound):
        clients.update_client(session=session, client_id=999, client_in=ClientUpdate(tag="x"))
    with pytest.raises(NotFound):
        clients.delete_client(session=session, client_id=999)


def test_delete_cancels_pending_messages_and_keeps_sent_ones(session):
    from tests.factories import add_mailing

    client = make(session)
    mailing = add_mailing(session)
    sent = Message(mailing_id=mailing.id, client_id=client.id, status=MessageStatus.sent)
    other_mailing = add_mailing(session)
    pending = Message(mailing_id=other_mailing.id, client_id=client.id)
    session.add_all([sent, pending])
    session.commit()

    assert clients.delete_client(session=session, client_id=client.id) == 1
    session.commit()
    session.refresh(sent)
    session.refresh(pending)
    assert (sent.status, pending.status) == (MessageStatus.sent, MessageStatus.cancelled)


def test_list_filters_by_tag_operator_and_phone_prefix_with_paging(session):
    make(session, phone="79161234567", tag="vip")
    make(session, phone="79031234567", tag="vip")
    make(session, phone="79261234567", tag="new")
    assert clients.list_clients(session=session, tag="vip").total == 2
    assert clients.list_clients(session=session, tag="vip", operator_code="903").total == 1
    assert clients.list_clients(session=session, phone="+7 916").total == 1
    page = clients.list_clients(session=session, limit=2, offset=2)
    assert (page.total, [c.phone for c in page.items]) == (3, ["79261234567"])


def test_page_size_is_bounded(session):
    with pytest.raises(InvalidInput, match="between 1 and 1000"):
        clients.list_clients(session=session, limit=0)


@pytest.mark.parametrize("search", ["abc", "--", "7916; drop", "٧٩١٦", "+"])
def test_a_phone_search_without_digits_or_with_other_characters_is_refused(session, search):
    make(session)
    with pytest.raises(InvalidInput) as caught:
        clients.list_clients(session=session, phone=search)
    assert caught.value.field == "phone"


def test_a_phone_search_refused_on_the_command_line_names_the_option(cli):
    cli("client", "create", "--phone", "79161234567")
    result = cli("client", "list", "--phone", "abc")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --phone: 'abc' is not the start of a phone number")
