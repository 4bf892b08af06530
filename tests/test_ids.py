"""Ids are never reused: a deleted row's id, and its messages' ids, are never given again.

The message id is the external API's idempotency key (DESIGN 3.9), so a reused id would
make the API drop a new message as a repeat of an old one. PostgreSQL sequences never go
back; SQLite needs ``AUTOINCREMENT`` (models; migration 0004 for older files, tested in
``test_migration_0004.py``).
"""

import sqlalchemy as sa

from notifyctl.models import ApiToken, Attempt, ClientCreate, Message
from notifyctl.services import audience, clients, mailings, tokens
from tests.factories import add_clients, add_mailing


def new_client(session, phone: str):
    client = clients.create_client(
        session=session, client_in=ClientCreate(phone=phone), default_timezone="UTC"
    )
    session.commit()
    return client


def mailing_with_messages(session):
    """A mailing whose audience (every client) has been made into messages."""
    mailing = add_mailing(session)
    assert audience.materialise(session=session, mailing=mailing) > 0
    session.commit()
    message_ids = session.execute(
        sa.select(Message.id).where(Message.mailing_id == mailing.id)
    ).scalars()
    return mailing, set(message_ids)


def test_a_deleted_clients_id_is_never_given_again(session):
    new_client(session, "79160000001")
    newest = new_client(session, "79160000002")
    clients.delete_client(session=session, client_id=newest.id)
    session.commit()

    assert new_client(session, "79160000003").id > newest.id


def test_a_deleted_mailings_id_and_its_message_ids_are_never_given_again(session):
    add_clients(session, 3)
    mailing_with_messages(session)
    newest, used_message_ids = mailing_with_messages(session)
    mailings.delete_mailing(session=session, mailing_id=newest.id)
    session.commit()

    again, new_message_ids = mailing_with_messages(session)
    assert again.id > newest.id
    assert min(new_message_ids) > max(used_message_ids)


def test_a_deleted_api_tokens_id_is_never_given_again(session):
    tokens.create_token(session=session, name="first")
    newest, _ = tokens.create_token(session=session, name="second")
    session.commit()
    # No command deletes a token (they are revoked); an operator's DELETE must not matter.
    session.execute(sa.delete(ApiToken).where(ApiToken.id == newest.id))
    session.commit()

    again, _ = tokens.create_token(session=session, name="third")
    assert again.id > newest.id


def test_a_deleted_attempts_id_is_never_given_again(session):
    add_clients(session, 1)
    mailing, (message_id,) = mailing_with_messages(session)
    ids = {"message_id": message_id, "mailing_id": mailing.id}
    session.add_all([Attempt(**ids), newest := Attempt(**ids)])
    session.commit()
    session.execute(sa.delete(Attempt).where(Attempt.id == newest.id))
    session.commit()

    again = Attempt(**ids)
    session.add(again)
    session.commit()
    assert again.id > newest.id
