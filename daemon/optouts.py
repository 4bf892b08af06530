"""What this daemon knows of the opt-outs of the clients whose messages it holds.

A claim hands out no message whose client had opted out (``delivery.claim`` cancels those),
so a held message's client had not opted out when its claim began. A client may opt out
while the message waits in the queue or between quick retries: every
``LOOK_INTERVAL`` the clients of all held messages are looked up again (by primary key).
A request starts only when its client was seen not opted out at most ``MAX_AGE`` earlier,
by the message's claim or by a look-up since; an older view is first brought up to date
(a sender waits up to ``PATIENCE`` for the next look-up), or the message is given back
untouched. Hence the guarantee the README states: no request for a client's message of a
non-transactional mailing starts later than ``MAX_AGE`` after its opt-out was committed.

Times are this process's monotonic seconds (a test's fast clock moves the mailings' time,
not the time it takes an opt-out to get here).
"""

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

from daemon.quiet import QuietErrors
from daemon.rules import Consent
from notifyctl.services.delivery import Claimed

LOOK_INTERVAL = 0.2  # seconds between look-ups of the held messages' clients
MAX_AGE = 1.0  # seconds: the oldest knowledge of a client a request may go by
PATIENCE = 2.0  # seconds a sender waits for a look-up before giving a message back


class OptOutView:
    """The opted-out clients among those of the held messages, as last looked up.

    ``claiming()`` wraps every claim (the claimer makes one at a time) and ``look()`` runs
    in a loop of its own: a look-up covers every message whose claim began before it
    began, the one claim in progress at that moment excepted.
    """

    def __init__(self, *, max_age: float = MAX_AGE, clock: Callable[[], float] = time.monotonic):
        self.max_age = max_age
        self._clock = clock
        self._opted_out: frozenset[int] = frozenset()
        self._looked_at = -math.inf  # when the last look-up began
        self._covers = -math.inf  # it covered the messages whose claim began before this
        self._claim_began: float | None = None
        self._looked = asyncio.Event()

    @contextlib.contextmanager
    def claiming(self) -> Iterator[float]:
        """Around one claim: yields the moment it begins, to stamp on its messages."""
        began = self._clock()
        self._claim_began = began
        try:
            yield began
        finally:
            self._claim_began = None

    def consent(self, claimed: Claimed) -> Consent:
        """The client's consent to this message as known now."""
        if claimed.seen_at < self._covers:
            if claimed.client_id in self._opted_out:
                return Consent.withdrawn
            seen = self._looked_at
        else:  # claimed after the last look-up began: the claim itself is the latest look
            seen = claimed.seen_at
        return Consent.given if self._clock() - seen <= self.max_age else Consent.unknown

    async def settle(self, claimed: Claimed, *, patience: float = PATIENCE) -> Consent:
        """The consent, waiting up to ``patience`` seconds for a look-up when it is unknown."""
        consent = self.consent(claimed)
        deadline = self._clock() + patience
        while consent is Consent.unknown and (left := deadline - self._clock()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._looked.wait()
            consent = self.consent(claimed)
        return consent

    async def look(
        self, held: Iterable[Claimed], lookup: Callable[[list[int]], Awaitable[set[int]]]
    ) -> None:
        """Look the clients of ``held`` (the messages held now) up; raises what ``lookup``
        raises, leaving the view as it was."""
        began = self._clock()
        covers = began if self._claim_began is None else self._claim_began
        client_ids = sorted({claimed.client_id for claimed in held})
        opted_out = await lookup(client_ids) if client_ids else set()
        self._opted_out = frozenset(opted_out)
        self._looked_at, self._covers = began, covers
        self._looked.set()  # wake the senders waiting for this look-up, and start anew
        self._looked = asyncio.Event()

    async def run(
        self,
        held: Callable[[], Iterable[Claimed]],
        lookup: Callable[[list[int]], Awaitable[set[int]]],
        errors: QuietErrors,
    ) -> None:
        """Look up every ``LOOK_INTERVAL`` (a failure is logged; the view ages meanwhile)."""
        while True:
            try:
                await self.look(held(), lookup)
                errors.recovered("optouts", "looking up opt-outs works again")
            except Exception as exc:
                errors.error("optouts", "could not look up opt-outs; sending waits for it", exc)
            await asyncio.sleep(LOOK_INTERVAL)
