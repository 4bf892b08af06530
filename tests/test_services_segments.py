"""SMS segments of a text: encoding, length in its units, parts, on the boundary texts."""

from itertools import groupby

import pytest

from notifyctl.services.segments import (
    GSM_BASIC,
    GSM_EXTENSION,
    Encoding,
    SegmentCount,
    count_segments,
    describe,
)

GSM, UCS2 = Encoding.gsm7, Encoding.ucs2
CYRILLIC = "Я"
EMOJI = "😀"  # U+1F600: a surrogate pair in UTF-16


def runs(text: str) -> str:
    """A test id that says what a long text is made of: ``a*152+U+20AC+a*152``."""
    parts = [(char, len(list(group))) for char, group in groupby(text)]
    shown = [
        (char if char.isascii() and char.isalnum() else f"U+{ord(char):04X}")
        + (f"*{n}" if n > 1 else "")
        for char, n in parts
    ]
    return "+".join(shown) or "empty"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (GSM, 0, 0)),
        ("a", (GSM, 1, 1)),
        # GSM-7: 160 septets in one segment, 153 in each part of a longer message
        ("a" * 160, (GSM, 160, 1)),
        ("a" * 161, (GSM, 161, 2)),
        ("a" * 153 * 2, (GSM, 306, 2)),
        ("a" * (153 * 2 + 1), (GSM, 307, 3)),
        # UCS-2: 70 code units in one segment, 67 in each part
        (CYRILLIC * 70, (UCS2, 70, 1)),
        (CYRILLIC * 71, (UCS2, 71, 2)),
        (CYRILLIC * 67 * 2, (UCS2, 134, 2)),
        (CYRILLIC * (67 * 2 + 1), (UCS2, 135, 3)),
        # an extension character is two septets: at the 160 boundary it tips the count
        ("a" * 158 + "€", (GSM, 160, 1)),
        ("a" * 159 + "€", (GSM, 161, 2)),
        ("a" * 158 + "[", (GSM, 160, 1)),
        ("a" * 159 + "[", (GSM, 161, 2)),
        # …and its escape never parts from it: 152 + 2 does not fit 153, so the first
        # part ends one septet short and the rest (2 + 152 = 154) needs a third part
        ("a" * 152 + "€" + "a" * 152, (GSM, 306, 3)),
        ("a" * 151 + "€" + "a" * 153, (GSM, 306, 2)),
        ("a" * 152 + "[" + "a" * 151, (GSM, 305, 2)),
        # an emoji is two UTF-16 code units, and a surrogate pair is never split either
        (CYRILLIC * 68 + EMOJI, (UCS2, 70, 1)),
        (CYRILLIC * 69 + EMOJI, (UCS2, 71, 2)),
        (CYRILLIC * 66 + EMOJI + CYRILLIC * 66, (UCS2, 134, 3)),
        (CYRILLIC * 65 + EMOJI + CYRILLIC * 67, (UCS2, 134, 2)),
        # one letter outside the GSM alphabet makes the whole text UCS-2
        ("a" * 100 + CYRILLIC, (UCS2, 101, 2)),
        ("Hello, " + CYRILLIC, (UCS2, 8, 1)),
        # extension characters in a UCS-2 text are single code units
        (CYRILLIC + "€[]", (UCS2, 4, 1)),
    ],
    ids=lambda v: runs(v) if isinstance(v, str) else f"{v[0].value}:{v[1]}:{v[2]}",
)
def test_segments_of_boundary_texts(text, expected):
    assert count_segments(text) == SegmentCount(*expected)


def test_the_gsm_alphabet_is_the_standard_one():
    # 128 code points less the escape to the extension table; ten extension characters.
    assert (len(GSM_BASIC), len(GSM_EXTENSION)) == (127, 10)
    assert GSM_BASIC.isdisjoint(GSM_EXTENSION)
    assert "\x1b" not in GSM_BASIC


@pytest.mark.parametrize("char", sorted(GSM_EXTENSION))
def test_every_extension_character_counts_two_septets(char):
    assert count_segments("a" + char) == SegmentCount(GSM, 3, 1)


@pytest.mark.parametrize(
    "char",
    ["ç", "\t", "`", "á", "ё", "Я", "«", "\u2019", "\x1b", "\u00a0"],
    ids=lambda c: f"U+{ord(c):04X}",
)
def test_characters_outside_the_gsm_alphabet_make_the_text_ucs2(char):
    assert count_segments("Hello " + char).encoding is UCS2


def test_gsm_accented_letters_line_ends_and_greek_capitals_stay_gsm():
    text = "Café à Zürich, Ñoño!\r\nΔΦΓΛΩΠΨΣΘΞ @£$¥ §¿¡"
    assert count_segments(text) == SegmentCount(GSM, len(text), 1)


def test_the_one_line_description_names_segments_encoding_and_length():
    assert describe(count_segments("a" * 161)) == "2 SMS segments (GSM-7, 161 characters)"
    assert describe(count_segments(EMOJI)) == "1 SMS segment (UCS-2, 2 characters)"
