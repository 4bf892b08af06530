"""Bulk import of clients from CSV, streamed in batches: a million rows never sit in memory."""

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from sqlmodel import Session

from notifyctl.db import upsert_insert
from notifyctl.errors import InvalidInput, quoted
from notifyctl.models import Client
from notifyctl.services import validation
from notifyctl.timeutil import utcnow

COLUMNS = ("phone", "operator_code", "tag", "timezone")
BATCH_SIZE = 5_000  # rows per INSERT round trip
MAX_REPORTED_ERRORS = 1_000  # bad rows kept for the report; all are counted


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str


MAX_MESSAGE_CHARS = 300  # of one row's error: the report stays small whatever the rows hold


@dataclass(slots=True)
class ImportReport:
    """What an import did: rows stored, rows rejected (with the first errors), committed."""

    imported: int = 0
    rejected: int = 0
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
    on_batch: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``phone,operator_code,tag,timezone`` rows (header required; only phone is mandatory).

    Every row is checked, and each bad one reported with its line number. Unless
    ``skip_invalid`` is set, one bad row means nothing is imported (the session is rolled
    back). ``on_batch`` is called with the number of rows in each batch handled.
    """
    reader = csv.reader(source, strict=True)
    header = _read_header(reader)
    report = ImportReport()
    now = utcnow()
    batch: dict[str, tuple[int, dict]] = {}
    for line, row in _rows(reader, report):
        parsed = _parse_row(row, header, line=line, report=report, default_tz=default_timezone)
        if parsed is None:
            continue
        earlier = batch.get(parsed["phone"])
        if earlier is not None:
            report.reject(line, f"phone {parsed['phone']} repeats line {earlier[0]}")
            continue
        parsed["created_at"] = parsed["updated_at"] = now
        batch[parsed["phone"]] = (line, parsed)
        if len(batch) >= BATCH_SIZE:
            _insert(session, batch, report, on_batch)
            batch = {}
    if batch:
        _insert(session, batch, report, on_batch)
    report.errors.sort(key=lambda error: error.line)
    if report.rejected and not skip_invalid:
        session.rollback()
        report.imported = 0
        return report
    session.flush()
    report.committed = True
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


def _parse_row(
    row: list[str], header: list[str], *, line: int, report: ImportReport, default_tz: str
) -> dict | None:
    if not row:  # blank line
        return None
    if len(row) != len(header):
        report.reject(line, f"has {len(row)} fields, the header has {len(header)}")
        return None
    values = dict(zip(header, row, strict=True))
    try:
        phone = validation.normalise_phone(values["phone"])
        return {
            "phone": phone,
            "operator_code": validation.operator_code(values.get("operator_code"), phone=phone),
            "tag": validation.tag(values.get("tag")),
            "timezone": validation.timezone(values.get("timezone") or default_tz),
        }
    except InvalidInput as exc:
        report.reject(line, str(exc))
        return None


def _insert(
    session: Session,
    batch: dict[str, tuple[int, dict]],
    report: ImportReport,
    on_batch: Callable[[int], None] | None,
) -> None:
    statement = (
        upsert_insert(session, Client)
        .on_conflict_do_nothing(index_elements=["phone"])
        .returning(Client.phone)
    )
    inserted = set(session.execute(statement, [row for _, row in batch.values()]).scalars())
    report.imported += len(inserted)
    for phone, (line, _) in batch.items():
        if phone not in inserted:
            report.reject(
                line, f"phone {phone} already belongs to a client (stored or earlier in the file)"
            )
    if on_batch is not None:
        on_batch(len(batch))
