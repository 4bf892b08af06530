"""Bulk import of clients from CSV, streamed in batches: a million rows never sit in memory.

A phone already stored is dealt with as ``on_duplicate`` says: ``fail`` (a bad row, as
any other), ``skip`` (the stored client stays as it is) or ``update`` (it takes the row's
values for the columns the file has). A phone repeated within the file is a bad row in
every mode: which of its lines should win is anybody's guess.

The optional ``opted_out`` column (``true``/``false``) opts a client out or in, as
``services.optout`` does: a new client opted out is stored so; with ``update``, a stored
client opted out keeps the time it first did, and its pending messages of
non-transactional mailings are cancelled.

The rules live here; ``services.import_stores`` writes the batches (by COPY on PostgreSQL).
"""

import csv
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TextIO

import sqlalchemy as sa
from sqlmodel import Session

from notifyctl.errors import InvalidInput, quoted
from notifyctl.models import Client, Message
from notifyctl.services import audit, optout, validation
from notifyctl.services.import_stores import Batch, Row, Store, store_for
from notifyctl.timeutil import utcnow

COLUMNS = ("phone", "operator_code", "tag", "timezone", "opted_out")
FLAGS = {"true": True, "false": False}  #: the values of ``opted_out``
BATCH_SIZE = 5_000  # rows per INSERT round trip
MAX_REPORTED_ERRORS = 1_000  # bad rows kept for the report; all are counted
PROGRESS_LINES = 1_000  # lines read between two progress reports


class OnDuplicate(StrEnum):
    """What an import does with a row whose phone belongs to a stored client."""

    fail = "fail"  #: a bad row: nothing is imported unless invalid rows are skipped
    skip = "skip"  #: the stored client stays as it is
    update = "update"  #: the stored client takes the row's values for the file's columns


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str


MAX_MESSAGE_CHARS = 300  # of one row's error: the report stays small whatever the rows hold


@dataclass(slots=True)
class ImportReport:
    """What an import did: clients added, updated or left alone, rows rejected (with the
    first errors), whether it was committed."""

    imported: int = 0
    updated: int = 0
    skipped: int = 0  #: phones already stored, left as they were (``skip``)
    rejected: int = 0
    stored_phones: int = 0  #: of the rejected: phones already stored (``fail``)
    errors: list[RowError] = field(default_factory=list)
    committed: bool = False

    def reject(self, line: int, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(line, message[:MAX_MESSAGE_CHARS]))


def import_clients(
    *,
    session: Session,
    source: TextIO,
    default_timezone: str,
    skip_invalid: bool = False,
    on_duplicate: OnDuplicate | str = OnDuplicate.fail,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``phone,operator_code,tag,timezone,opted_out`` rows (header required; only
    phone is mandatory).

    Every row is checked, and each bad one reported with its line number. Unless
    ``skip_invalid`` is set, one bad row means nothing is imported (the session is rolled
    back). A phone already stored is handled as ``on_duplicate`` says (see the module).
    ``on_progress`` is called now and then with the number of lines after the header
    read so far.
    """
    mode = _mode(on_duplicate)
    reader = csv.reader(source, strict=True)
    header = _read_header(reader)
    pick = _picker(header)
    report = ImportReport()
    store = store_for(session, started=utcnow())
    writer = _Writer(report, store, session, mode=mode, header=header)
    batch: Batch = {}
    progress_at = 0
    for line, row in _rows(reader, report):
        if on_progress is not None and line - progress_at >= PROGRESS_LINES:
            on_progress(line - 1)
            progress_at = line
        parsed = _parse_row(
            row, header, pick, line=line, report=report, default_tz=default_timezone
        )
        if parsed is None:
            continue
        phone = parsed[0]
        earlier = batch.get(phone)
        if earlier is not None:
            report.reject(line, f"phone {phone} repeats line {earlier[0]}")
            continue
        batch[phone] = (line, parsed)
        if len(batch) >= BATCH_SIZE:
            _insert(writer, batch)
            batch = {}
    if batch:
        _insert(writer, batch)
    if on_progress is not None:
        on_progress(max(reader.line_num - 1, 0))
    report.errors.sort(key=lambda error: error.line)
    if report.rejected and not skip_invalid:
        session.rollback()
        report.imported = report.updated = report.skipped = 0
        return report
    session.flush()
    report.committed = True
    if report.imported or report.updated:  # one entry for the file: its counts, no rows
        counts = ("imported", "updated", "skipped", "rejected")
        audit.record(
            session=session,
            action="imported",
            object_type="client",
            object_id=None,
            changes={name: [None, getattr(report, name)] for name in counts},
        )
    return report


def _rows(reader, report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields); a row the CSV parser cannot read is reported and skipped."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.reject(reader.line_num, f"broken CSV: {exc}")
            continue
        except UnicodeDecodeError:
            raise InvalidInput(
                f"is not UTF-8 text (near line {reader.line_num + 1})", field="file"
            ) from None
        yield reader.line_num, row


def _read_header(reader: Iterable[list[str]]) -> list[str]:
    try:
        header = [name.strip().lower() for name in next(iter(reader))]
    except StopIteration:
        raise InvalidInput("the file is empty; expected a header line", field="file") from None
    except csv.Error as exc:
        raise InvalidInput(f"broken CSV header: {exc}", field="file") from None
    except UnicodeDecodeError:
        raise InvalidInput("is not UTF-8 text", field="file") from None
    unknown = [name for name in header if name not in COLUMNS]
    if unknown or "phone" not in header or len(set(header)) != len(header):
        raise InvalidInput(
            f"header {quoted(','.join(header))} must name the columns {','.join(COLUMNS)} "
            "(phone required, each at most once)",
            field="file",
        )
    return header


def _picker(header: list[str]) -> Callable[[list[str]], tuple[str, ...]]:
    """What picks a row's ``COLUMNS`` (phone, operator_code, ...), in that order, once ""
    is appended to it (which stands for each column the file does not have). Cheaper
    than a dict per row, which a million rows notice."""
    absent = len(header)
    return operator.itemgetter(*(header.index(c) if c in header else absent for c in COLUMNS))


def _parse_row(
    row: list[str],
    header: list[str],
    pick: Callable[[list[str]], tuple[str, ...]],
    *,
    line: int,
    report: ImportReport,
    default_tz: str,
) -> Row | None:
    if not row:  # blank line
        return None
    if len(row) != len(header):
        report.reject(line, f"has {len(row)} fields, the header has {len(header)}")
        return None
    row.append("")  # what a column the file does not have reads as
    raw_phone, raw_operator, raw_tag, raw_zone, raw_opted_out = pick(row)
    try:
        phone = validation.normalise_phone(raw_phone)
        return (
            phone,
            validation.operator_code(raw_operator, phone=phone),
            validation.tag(raw_tag),
            validation.timezone(raw_zone or default_tz),
            _flag(raw_opted_out) if "opted_out" in header else False,
        )
    except InvalidInput as exc:
        report.reject(line, str(exc))
        return None


def _flag(raw: str, *, field: str = "opted_out") -> bool:
    """``true`` or ``false`` (any case, spaces around ignored); anything else is refused,
    an empty cell too: in a file that has the column, a row must say."""
    value = FLAGS.get(raw.strip().lower())
    if value is None:
        raise InvalidInput(f"{quoted(raw)} is not true or false", field=field)
    return value


def _mode(raw: OnDuplicate | str) -> OnDuplicate:
    try:
        return OnDuplicate(raw.strip().lower() if isinstance(raw, str) else raw)
    except ValueError:
        choices = ", ".join(mode.value for mode in OnDuplicate)
        raise InvalidInput(f"{quoted(raw)} is not one of {choices}", field="on_duplicate") from None


@dataclass(slots=True)
class _Writer:
    """What each batch is written with: the rule for stored phones, and the store, which
    stamps every row it writes with the import's start (which tells a phone from earlier
    in the file apart from one that was stored before)."""

    report: ImportReport
    store: Store
    session: Session
    mode: OnDuplicate
    header: list[str]


def _insert(writer: _Writer, batch: Batch) -> None:
    """Write one batch: new phones in one statement, then the stored ones as the mode says.

    The common case (no phone stored yet) costs that one statement; only phones it
    passed over are looked at.
    """
    report, store = writer.report, writer.store
    passed_over = store.insert_new(batch)
    report.imported += len(batch) - len(passed_over)
    if not passed_over:
        return
    columns = [name for name in writer.header if name != "phone"]
    updates = []
    for phone, touched in passed_over.items():
        line = batch[phone][0]
        if touched == store.started:  # written by this import: an earlier line
            report.reject(line, f"phone {phone} repeats an earlier line of the file")
        elif writer.mode is OnDuplicate.fail or touched is None:
            report.stored_phones += 1
            report.reject(line, f"phone {phone} already belongs to a client")
        elif writer.mode is OnDuplicate.skip or not columns:
            report.skipped += 1
        else:
            updates.append(phone)
    if updates:
        store.update(batch, updates, columns)
        report.updated += len(updates)
        if "opted_out" in columns:
            _cancel_for_opted_out(writer.session, [p for p in updates if batch[p][1][4]])


def _cancel_for_opted_out(session: Session, phones: list[str]) -> None:
    """The stored clients of ``phones`` have opted out: cancel their pending messages."""
    if phones:
        of_phones = sa.select(Client.id).where(Client.phone.in_(phones))
        optout.cancel_pending(
            session=session, of_clients=Message.client_id.in_(of_phones.scalar_subquery())
        )
