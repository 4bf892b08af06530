"""How an import writes its batches: multi-row INSERTs (SQLite), or COPY into a staging
table merged with one INSERT ... SELECT (PostgreSQL, two to three times faster).

Both take the same batch (phone -> (line, row), one line per phone) and answer the same
question: which phones were passed over because a client already holds them, and when
was that client last written (None when it cannot be seen). ``services.imports`` holds
the rules that decide what happens to those.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import Session

from notifyctl.db import upsert_insert
from notifyctl.models import Client

#: phone, operator_code, tag, timezone, opted_out: checked, normalised
Row = tuple[str, str, str, str, bool]
Batch = dict[str, tuple[int, Row]]  #: phone -> (line, row), in the file's order
FIELDS = ("phone", "operator_code", "tag", "timezone")  #: stored as they are
OPTED_OUT = 4  #: the row's opted_out flag, stored as ``opted_out_at``: the import's start
COLUMN_AT = {name: at for at, name in enumerate((*FIELDS, "opted_out"))}  #: in a Row


class Store(Protocol):
    started: datetime  #: the import's start, stamped on every row it writes

    def insert_new(self, batch: Batch) -> dict[str, datetime | None]:
        """Insert the batch's new phones; return the others with the stored row's
        ``updated_at`` (None: a client holds the phone, unseen by this transaction)."""

    def update(self, batch: Batch, phones: Sequence[str], columns: Sequence[str]) -> None:
        """Give the stored clients of ``phones`` their row's values for ``columns``
        (``opted_out``: one opted out already keeps its time, one opted in loses it)."""


def store_for(session: Session, *, started: datetime) -> Store:
    """The fastest way the session's database offers; every row is stamped ``started``."""
    if session.get_bind().dialect.name == "postgresql":
        return CopyStore(session, started)
    return InsertStore(session, started)


class InsertStore:
    """Multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING phone`` through SQLAlchemy."""

    def __init__(self, session: Session, started: datetime) -> None:
        self.session, self.started = session, started

    def insert_new(self, batch: Batch) -> dict[str, datetime | None]:
        session, started = self.session, self.started
        statement = (
            upsert_insert(session, Client)
            .on_conflict_do_nothing(index_elements=["phone"])
            .returning(Client.phone)
        )
        values = [
            dict(
                zip(FIELDS, row[:OPTED_OUT], strict=True),
                created_at=started,
                updated_at=started,
                opted_out_at=started if row[OPTED_OUT] else None,
            )
            for _, row in batch.values()
        ]
        inserted = set(session.execute(statement, values).scalars())
        passed_over = [phone for phone in batch if phone not in inserted]
        if not passed_over:
            return {}
        touched = dict(
            session.execute(
                sa.select(Client.phone, Client.updated_at).where(Client.phone.in_(passed_over))
            ).all()
        )
        return {phone: touched.get(phone) for phone in passed_over}

    def update(self, batch: Batch, phones: Sequence[str], columns: Sequence[str]) -> None:
        table = Client.__table__
        at = {name: COLUMN_AT[name] for name in columns}
        values = {c: sa.bindparam(f"b_{c}") for c in columns if c in FIELDS}
        if "opted_out" in columns:
            started = sa.literal(self.started, table.c.opted_out_at.type)
            values["opted_out_at"] = sa.case(
                (
                    sa.bindparam("b_opted_out", type_=sa.Boolean()),
                    sa.func.coalesce(table.c.opted_out_at, started),
                ),
                else_=sa.null(),
            )
        self.session.execute(
            sa.update(table)
            .where(table.c.phone == sa.bindparam("b_phone"))
            .values(values | {"updated_at": self.started}),
            [
                {"b_phone": phone, **{f"b_{c}": batch[phone][1][i] for c, i in at.items()}}
                for phone in phones
            ],
        )


STAGE = "client_import_stage"
#: COPY's text format, written by psycopg (which escapes tabs, backslashes, line breaks).
COPY_IN = f"COPY {STAGE} (line, phone, operator_code, tag, timezone, opted_out) FROM STDIN"
# New phones in the file's order (so ids follow it), from the sequence as any insert.
# The outer SELECT reads the snapshot from before the INSERT: the stored row of each phone
# passed over, looked up by the unique index only for those phones, in the file's order
# (as SQLite's, so that both keep the same first MAX_REPORTED_ERRORS errors).
MERGE = f"""
WITH inserted AS (
    INSERT INTO client
        (phone, operator_code, tag, timezone, created_at, updated_at, opted_out_at)
    SELECT phone, operator_code, tag, timezone, %(started)s, %(started)s,
        CASE WHEN opted_out THEN %(started)s::timestamptz END
    FROM {STAGE} ORDER BY line
    ON CONFLICT (phone) DO NOTHING
    RETURNING phone
)
SELECT s.phone, (SELECT c.updated_at FROM client c WHERE c.phone = s.phone)
FROM {STAGE} s
WHERE NOT EXISTS (SELECT FROM inserted i WHERE i.phone = s.phone)
ORDER BY s.line
"""


#: ``opted_out`` in an update: a client opted out already keeps the time it first did
OPTED_OUT_SET = (
    "opted_out_at = CASE WHEN s.opted_out THEN COALESCE(c.opted_out_at, %(started)s) END"
)


class CopyStore:
    """COPY each batch into a temporary table of this transaction, then merge it.

    The psycopg connection is the session's own, so all of it is in the session's
    transaction: a rollback leaves nothing, the staging table included (and a commit
    drops it).
    """

    def __init__(self, session: Session, started: datetime) -> None:
        self.session, self.started = session, started
        self.cursor = None

    def _open(self):
        if self.cursor is None:
            self.session.flush()  # the driver's connection bypasses the ORM: let it see all
            raw = self.session.connection().connection.driver_connection
            self.cursor = raw.cursor()
            self.cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (line integer, phone text, "
                "operator_code text, tag text, timezone text, opted_out boolean) ON COMMIT DROP"
            )
        return self.cursor

    def insert_new(self, batch: Batch) -> dict[str, datetime | None]:
        cursor = self._open()
        cursor.execute(f"TRUNCATE {STAGE}")
        with cursor.copy(COPY_IN) as copy:
            write = copy.write_row
            for line, row in batch.values():
                write((line, *row))
        cursor.execute(MERGE, {"started": self.started})
        return dict(cursor.fetchall())

    def update(self, batch: Batch, phones: Sequence[str], columns: Sequence[str]) -> None:
        # (``columns`` come from the file's header, checked against ``imports.COLUMNS``)
        assignments = ", ".join(
            OPTED_OUT_SET if name == "opted_out" else f"{name} = s.{name}" for name in columns
        )
        self._open().execute(
            f"UPDATE client c SET {assignments}, updated_at = %(started)s FROM {STAGE} s "
            "WHERE c.phone = s.phone AND s.phone = ANY(%(phones)s)",
            {"started": self.started, "phones": list(phones)},
            # Never prepared: a generic plan would search the array row by row (5,000
            # times 5,000), a plan for this array hashes it.
            prepare=False,
        )
