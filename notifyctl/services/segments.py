"""How many SMS segments a text takes, and in which encoding (pure: no database).

A text whose every character is in the GSM 03.38 default alphabet (3GPP TS 23.038) goes
as GSM-7: a character of the basic set is one septet, one of the extension table
(``€ [ ] { } \\ ~ ^ |`` and form feed) is two (an escape, then the character). Any other
character makes the whole text UCS-2, counted in UTF-16 code units (an emoji outside the
Basic Multilingual Plane is a surrogate pair: two).

One segment holds 160 septets or 70 code units. A longer text is sent concatenated: each
part loses room to its header and holds 153 septets or 67 code units. A character is
never split across two parts: neither an extension character's escape and its septet nor
the two halves of a surrogate pair (phones and SMS centres keep them together, as
Android's ``SmsMessage.fragmentText`` does). So a part may end one unit short, and the
count walks the text instead of dividing its length.

An empty text is 0 segments: there is nothing to send (a mailing's text is never empty;
the admin UI's form asks while the field is still blank).
"""

from dataclasses import dataclass
from enum import StrEnum


class Encoding(StrEnum):
    gsm7 = "GSM-7"  #: the GSM 03.38 default alphabet, one septet a character (two: extension)
    ucs2 = "UCS-2"  #: two bytes a UTF-16 code unit


#: The basic character set of the default alphabet, in the order of its code table
#: (0x1B, the escape to the extension table, is no character of its own). Position 0x09
#: is capital C with cedilla, as the standard and unicode.org's GSM0338 mapping say.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: each character is sent as escape + septet.
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

#: Units a single segment holds, and each part of a concatenated message.
SINGLE = {Encoding.gsm7: 160, Encoding.ucs2: 70}
PART = {Encoding.gsm7: 153, Encoding.ucs2: 67}


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """What a text costs to send: its encoding, its length in that encoding's units
    (septets for GSM-7, UTF-16 code units for UCS-2) and its segments."""

    encoding: Encoding
    characters: int
    segments: int


def count_segments(text: str) -> SegmentCount:
    """The encoding, length and segments of ``text`` as one SMS (see the module's rules)."""
    if all(c in GSM_BASIC or c in GSM_EXTENSION for c in text):
        encoding = Encoding.gsm7
        units = [2 if c in GSM_EXTENSION else 1 for c in text]
    else:
        encoding = Encoding.ucs2
        units = [2 if ord(c) > 0xFFFF else 1 for c in text]
    length = sum(units)
    return SegmentCount(encoding, length, _segments(units, length, encoding))


def _segments(units: list[int], length: int, encoding: Encoding) -> int:
    if length == 0:
        return 0
    if length <= SINGLE[encoding]:
        return 1
    room, parts, used = PART[encoding], 1, 0
    for size in units:
        if used + size > room:  # the character does not fit whole: it opens the next part
            parts, used = parts + 1, 0
        used += size
    return parts


def describe(count: SegmentCount) -> str:
    """One line for people: ``2 SMS segments (GSM-7, 161 characters)``."""
    segments = f"{count.segments} SMS segment{'' if count.segments == 1 else 's'}"
    characters = f"{count.characters} character{'' if count.characters == 1 else 's'}"
    return f"{segments} ({count.encoding.value}, {characters})"
