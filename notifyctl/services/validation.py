"""Field rules shared by every way in (CLI, REST, UI, CSV import). Each raises InvalidInput."""

import re
import unicodedata

from notifyctl.errors import InvalidInput, quoted
from notifyctl.models import MailingFilter, MessageStatus, SendWindow
from notifyctl.timeutil import parse_hhmm, zone_name

PHONE_PUNCTUATION = re.compile(r"[\s()\-.]")
# ASCII digits only: \d takes any script's digits (Arabic-Indic ones, say), which would
# make a second client for the same number.
PHONE = re.compile(r"7[0-9]{10}")
PHONE_PREFIX = re.compile(r"[0-9+\-(). ]{1,32}")
OPERATOR = re.compile(r"[0-9]{3}")
MAX_TAG = 64
MAX_TEXT = 1000
#: characters in a mailing's name (the column is varchar(200))
MAX_NAME = 200
#: Characters a name may not hold: it is one line of a table, a page header or a log
#: line. Control characters (Unicode Cc: tab, newline, escape, DEL, C1) and line and
#: paragraph separators would break it; the bidirectional embeddings, overrides and
#: isolates would reorder what follows it on screen (CVE-2021-42574, "Trojan Source").
NAME_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: values in one filter list (its tags, its operator codes): what a log line can carry
MAX_FILTER_VALUES = 100
#: characters in one filter value (a tag is never longer)
MAX_FILTER_VALUE = MAX_TAG


def normalise_phone(raw: str, *, field: str = "phone") -> str:
    """Return ``7XXXXXXXXXX`` from input like ``+7 (916) 123-45-67``; reject anything else."""
    digits = PHONE_PUNCTUATION.sub("", raw.strip())
    digits = digits.removeprefix("+")
    if not PHONE.fullmatch(digits):
        raise InvalidInput(
            f"{quoted(raw)} is not a phone number of the form 7XXXXXXXXXX (e.g. +7 916 123-45-67)",
            field=field,
        )
    return digits


def phone_prefix(raw: str, *, field: str = "phone") -> str:
    """The digits of a phone search (``+7 916``, ``7916-12``); refuses one without digits
    or with other characters (a search for "abc" used to match every client)."""
    if not PHONE_PREFIX.fullmatch(raw) or not re.search("[0-9]", raw):
        raise InvalidInput(
            f"{quoted(raw)} is not the start of a phone number (digits, + - ( ) and spaces)",
            field=field,
        )
    return re.sub("[^0-9]", "", raw)


def operator_code(raw: str | None, *, phone: str, field: str = "operator_code") -> str:
    """Return the operator code given, or the phone's digits 2-4 when none is given.

    A given code is only checked for form: number portability means it may differ
    from the one the phone's prefix suggests.
    """
    if raw is None or raw.strip() == "":
        return phone[1:4]
    code = raw.strip()
    if not OPERATOR.fullmatch(code):
        raise InvalidInput(f"{quoted(raw)} is not a 3-digit operator code", field=field)
    return code


def storable(raw: str, *, field: str) -> str:
    """Refuse text that no database can hold: a NUL character (PostgreSQL refuses it in
    text), or a lone surrogate (JSON's ``"\\ud800"``, or bytes that are not UTF-8 in a
    command-line argument) that has no UTF-8 form."""
    if "\x00" in raw:
        raise InvalidInput(f"has a NUL character at position {raw.index(chr(0))}", field=field)
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"has {raw[exc.start]!r} at position {exc.start}, which is no character "
            "(a lone surrogate, or bytes that are not UTF-8)",
            field=field,
        ) from None
    return raw


def tag(raw: str | None, *, field: str = "tag") -> str:
    value = storable((raw or "").strip(), field=field)
    if len(value) > MAX_TAG:
        raise InvalidInput(f"is {len(value)} characters long; at most {MAX_TAG}", field=field)
    return value


def timezone(raw: str, *, field: str = "timezone") -> str:
    """Return the IANA name (case corrected), or reject an unknown zone."""
    name = zone_name(raw)
    if name is None:
        raise InvalidInput(
            f"{quoted(raw)} is not an IANA timezone such as Europe/Moscow", field=field
        )
    return name


def text(raw: str, *, field: str = "text") -> str:
    if not raw.strip():
        raise InvalidInput("must not be empty", field=field)
    if len(raw) > MAX_TEXT:
        raise InvalidInput(f"is {len(raw)} characters long; at most {MAX_TEXT}", field=field)
    return storable(raw, field=field)


def name(raw: str | None, *, field: str = "name") -> str | None:
    """A mailing's name, trimmed; None (no name) when absent or blank.

    At most ``MAX_NAME`` characters after trimming, one line of printable text.
    """
    if raw is None:
        return None
    value = storable(raw, field=field).strip()
    if len(value) > MAX_NAME:
        raise InvalidInput(f"is {len(value)} characters long; at most {MAX_NAME}", field=field)
    lead = len(raw) - len(raw.lstrip())  # (positions count in what was typed)
    for position, char in enumerate(value, lead):
        if unicodedata.category(char) in NAME_REFUSED_CATEGORIES or char in BIDI_CONTROLS:
            raise InvalidInput(
                f"has the control character U+{ord(char):04X} at position {position}; "
                "a name is one line of text",
                field=field,
            )
    return value or None


def filter_values(values: list[str], *, field: str) -> list[str]:
    """Bound one filter list: at most MAX_FILTER_VALUES values of MAX_FILTER_VALUE characters.

    Checked before anything else looks at the values, so that a huge list costs no more
    than its parsing (and its error message quotes none of it).
    """
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidInput(f"has {len(values)} values; at most {MAX_FILTER_VALUES}", field=field)
    longest = max((len(v.strip()) for v in values), default=0)
    if longest > MAX_FILTER_VALUE:
        raise InvalidInput(
            f"has a value {longest} characters long; at most {MAX_FILTER_VALUE}", field=field
        )
    return values


def mailing_filter(value: MailingFilter) -> MailingFilter:
    filter_values(value.operator_codes, field="filter.operator_codes")
    filter_values(value.tags, field="filter.tags")
    for code in value.operator_codes:
        if not OPERATOR.fullmatch(code):
            raise InvalidInput(
                f"{quoted(code)} is not a 3-digit operator code", field="filter.operator_codes"
            )
    codes = sorted(set(value.operator_codes))
    tags = sorted({tag(t, field="filter.tags") for t in value.tags})
    return MailingFilter(operator_codes=codes, tags=tags)


def send_window(value: SendWindow | None) -> SendWindow | None:
    if value is None:
        return None
    start = parse_hhmm(value.start, field="send_window.start")
    end = parse_hhmm(value.end, field="send_window.end")
    if start == end:
        raise InvalidInput(
            "start and end are equal: the window would be empty", field="send_window"
        )
    return SendWindow(start=start.strftime("%H:%M"), end=end.strftime("%H:%M"))


def parse_window(raw: str, *, field: str = "window") -> SendWindow:
    """Parse ``HH:MM-HH:MM`` as typed on the command line."""
    start, sep, end = raw.partition("-")
    if not sep:
        raise InvalidInput(f"{quoted(raw)} is not a window of the form HH:MM-HH:MM", field=field)
    try:
        window = send_window(SendWindow(start=start, end=end))
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=field) from None
    assert window is not None
    return window


MAX_PAGE = 1000
MAX_ID = 2**63 - 1  # the largest id (and offset) a database integer holds


def page_bounds(limit: int, offset: int) -> tuple[int, int]:
    """Check paging arguments: 1 <= limit <= 1000, 0 <= offset < 2**63."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"must be between 1 and {MAX_PAGE}", field="limit")
    if not 0 <= offset <= MAX_ID:
        raise InvalidInput(f"must be between 0 and {MAX_ID}", field="offset")
    return limit, offset


def storable_id(value: int) -> bool:
    """Whether ``value`` can be an id at all (larger ones overflow the database)."""
    return 0 < value <= MAX_ID


def message_status(raw: str, *, field: str = "status") -> MessageStatus:
    try:
        return MessageStatus(raw.strip().lower())
    except ValueError:
        choices = ", ".join(status.value for status in MessageStatus)
        raise InvalidInput(f"{quoted(raw)} is not one of {choices}", field=field) from None
