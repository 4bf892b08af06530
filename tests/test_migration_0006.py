"""Migration 0006 on a database made before it: SQLite copies the mailing table to add a
column with a default, and the copy must keep giving ids never used before."""

from sqlmodel import Session

from notifyctl.db import make_engine, upgrade
from tests.test_ids import mailing_with_messages
from tests.test_migration_0004 import alembic, autoincrement_tables, fill_at_0003


def test_a_mailing_deleted_before_0006_keeps_its_id_unused(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    fill_at_0003(engine)
    alembic(engine, "upgrade", "0005")
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM mailing WHERE id = 2")  # the newest
    upgrade(engine)
    assert "mailing" in autoincrement_tables(engine)
    with Session(engine, expire_on_commit=False) as session:
        again, message_ids = mailing_with_messages(session)
        assert again.id > 2
        assert min(message_ids) > 6
    engine.dispose()
