"""What the mock received, per message id: cheap enough for millions of entries.

Entries live in parallel typed arrays indexed by arrival order (44 bytes each), found by
id through an open-addressing table in two more typed arrays (at most 32 bytes an
entry), and texts are stored once per distinct text. A dict of ints would take over
100 bytes an entry.
"""

from array import array
from datetime import UTC, datetime

INT64 = (-(2**63), 2**63 - 1)  # the ids the log can hold


GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / the golden ratio: Fibonacci hashing
MASK64 = 2**64 - 1


class IdIndex:
    """msg_id -> slot, linear probing over typed arrays, kept at most half full.

    Ids are spread by Fibonacci hashing: with the identity hash, a run of sequential ids
    fills one block of the table, and any other id landing inside it probes to the
    block's end (120,000 ids took the mock from 7,000 down to 150 requests/s).
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._allocate(capacity)
        self.size = 0

    def _allocate(self, capacity: int) -> None:
        self._mask = capacity - 1
        self._shift = 64 - (capacity.bit_length() - 1)
        self._keys = array("q", bytes(8 * capacity))
        self._slots = array("q", [-1]) * capacity

    def get(self, key: int) -> int | None:
        mask, keys, slots = self._mask, self._keys, self._slots
        i = ((key & MASK64) * GOLDEN & MASK64) >> self._shift
        while slots[i] != -1:
            if keys[i] == key:
                return slots[i]
            i = (i + 1) & mask
        return None

    def put(self, key: int, slot: int) -> None:
        """Add ``key`` (not present yet) at ``slot``."""
        if 2 * (self.size + 1) > self._mask + 1:
            self._grow()
        mask, keys, slots = self._mask, self._keys, self._slots
        i = ((key & MASK64) * GOLDEN & MASK64) >> self._shift
        while slots[i] != -1:
            i = (i + 1) & mask
        keys[i], slots[i] = key, slot
        self.size += 1

    def _grow(self) -> None:
        old_keys, old_slots = self._keys, self._slots
        self._allocate(2 * (self._mask + 1))
        self.size = 0
        for key, slot in zip(old_keys, old_slots, strict=True):
            if slot != -1:
                self.put(key, slot)


class ReceivedLog:
    """For each msgId: phone, text, first and last arrival, and how many times it came."""

    def __init__(self) -> None:
        self._index = IdIndex()
        self._ids = array("q")
        self._phones = array("q")
        self._texts = array("I")
        self._first = array("d")
        self._last = array("d")
        self._count = array("I")
        self._accepted = array("I")
        self._text_ids: dict[str, int] = {}
        self._text_list: list[str] = []
        self.requests = 0

    def __len__(self) -> int:
        return len(self._ids)

    def record(self, msg_id: int, phone: int, text: str, *, at: float, accepted: bool) -> int:
        """Note one arrival; returns how many times this id has now arrived."""
        self.requests += 1
        slot = self._index.get(msg_id)
        if slot is None:
            text_id = self._text_ids.get(text)
            if text_id is None:
                text_id = self._text_ids[text] = len(self._text_list)
                self._text_list.append(text)
            self._index.put(msg_id, len(self._ids))
            self._ids.append(msg_id)
            self._phones.append(phone)
            self._texts.append(text_id)
            self._first.append(at)
            self._last.append(at)
            self._count.append(1)
            self._accepted.append(1 if accepted else 0)
            return 1
        self._last[slot] = at
        self._count[slot] += 1
        if accepted:
            self._accepted[slot] += 1
        return self._count[slot]

    def clear(self) -> None:
        self.__init__()

    def _item(self, slot: int) -> dict:
        return {
            "msg_id": self._ids[slot],
            "phone": self._phones[slot],
            "text": self._text_list[self._texts[slot]],
            "first_at": _iso(self._first[slot]),
            "last_at": _iso(self._last[slot]),
            "count": self._count[slot],
            "accepted": self._accepted[slot],
        }

    def page(self, *, msg_id: int | None, limit: int, offset: int) -> dict:
        """``{"total", "items"}`` in order of first arrival, or the one entry of ``msg_id``."""
        if msg_id is not None:
            slot = self._index.get(msg_id)
            return {
                "total": 0 if slot is None else 1,
                "items": [] if slot is None else [self._item(slot)],
            }
        slots = range(offset, min(offset + limit, len(self._ids)))
        return {"total": len(self._ids), "items": [self._item(slot) for slot in slots]}


def _iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )
