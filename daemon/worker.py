"""The sending loop: claim due messages, send them, record what happened.

One asyncio loop per daemon process, with these tasks, each supervised (a task that
crashes is logged and restarted; one that keeps crashing stops the daemon, which then
exits non-zero for its supervisor to restart):

- the claimer leases batches of due messages while there is room in flight;
- ``concurrency`` senders each take one message at a time and hand it to the
  ``daemon.dispatcher`` (the rules decide, the sender tries, an outcome results);
- the recorder writes outcomes in batches every few milliseconds;
- the housekeeping jobs (``daemon.housekeeping``): activation, snapshots, expiry, reaping;
- the opt-out look-ups (``daemon.optouts``) of the clients of every message held.

The database is reached through ``daemon.store`` only. Each loop stamps its progress
(``daemon.health``); the heartbeat file and a gauge carry it to ``daemon --check``.
"""

import asyncio
import collections
import contextlib
import dataclasses
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from loguru import logger
from sqlalchemy.engine import Engine

from daemon.clock import SystemClock
from daemon.dispatcher import Counters, Dispatcher
from daemon.health import HEARTBEAT_INTERVAL, Progress, write_heartbeat
from daemon.housekeeping import Housekeeping
from daemon.metrics import DaemonMetrics
from daemon.optouts import OptOutView
from daemon.quiet import QuietErrors
from daemon.rules import Decision, Fate
from daemon.store import Store, take_over_orphans
from daemon.tracelog import MessageLog
from notifyctl.config import Settings
from notifyctl.services.delivery import Claimed, Outcome

CLAIM_BATCH = 500  # messages per claim, at most
IDLE_POLL = 0.1  # seconds between claims while nothing is due
CLAIM_RETRY = 1.0  # seconds before claiming again after the database failed
RECORD_INTERVAL = 0.05  # seconds between writes of outcomes
RECORD_BACKOFF_MAX = 5.0  # seconds: the longest pause between tries of a failing write
DRAIN_TIMEOUT = 30.0  # seconds SIGTERM waits for requests in flight
BURST_PATIENCE = 30.0  # seconds a burst run waits for a database that fails, then exits 1
FINAL_FLUSH_TIMEOUT = 15.0  # seconds a stopping daemon keeps trying to record outcomes
RESTART_PAUSE = 1.0  # seconds before a crashed task is started again
RESTART_LIMIT = 5  # crashes of one task within RESTART_WINDOW that stop the daemon
RESTART_WINDOW = 60.0  # seconds


async def _finish(task: asyncio.Task, *, timeout: float) -> None:
    """Wait for ``task`` to end by itself; cancel it after ``timeout`` seconds."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _loop_name() -> str:
    """The running loop's kind: ``uvloop`` or ``asyncio`` (``daemon.loop`` chooses)."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def make_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


__all__ = ["Counters", "Worker", "take_over_orphans"]


class Worker:
    """Sends every due message of every live mailing until stopped."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        clock: SystemClock | None = None,
        burst: bool = False,
        owner: str | None = None,
        exclusive: bool = False,
        metrics: DaemonMetrics | None = None,
        heartbeat: Path | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.burst = burst
        self.owner = owner or make_owner()
        #: the only daemon on this database (SQLite's lock): leases found at start are orphans
        self.exclusive = exclusive
        self.heartbeat = heartbeat
        self.counters = Counters()
        self.metrics = metrics or DaemonMetrics()
        #: set when a task kept crashing: the daemon stopped and should exit non-zero
        self.failed = False
        #: each message's requests and new status (only when some sink takes the lines)
        self.lines = MessageLog.for_settings(settings, bound={"daemon": self.owner})
        self.store = Store(
            engine,
            owner=self.owner,
            rate_limit=settings.rate_limit or None,
            frequency_cap=settings.frequency_cap,
        )
        self.log = logger.bind(daemon=self.owner)
        self.optouts = OptOutView()
        self.dispatcher = Dispatcher(
            settings=settings,
            clock=self.clock,
            counters=self.counters,
            metrics=self.metrics,
            log=self.log,
            stopping=lambda: self._stop.is_set(),
            snapshot=lambda mailing_id: self.housekeeping.mailings.get(mailing_id),
            lines=self.lines,
            optouts=self.optouts,
        )
        self.breaker = self.dispatcher.breaker
        self.housekeeping = Housekeeping(
            store=self.store,
            settings=settings,
            clock=self.clock,
            metrics=self.metrics,
            counters=self.counters,
            log=self.log,
            breaker_state=lambda: self.breaker.state,
        )
        self.progress = Progress(("claimer", "recorder"))
        self._errors = QuietErrors(self.log)
        self._stop = asyncio.Event()
        self._queue: asyncio.Queue[Claimed] = asyncio.Queue()
        #: every message claimed and not yet settled (queued or in flight), by id
        self._held: dict[int, Claimed] = {}
        self._in_flight = 0
        self._outcomes: list[Outcome] = []
        self._idle_rounds = 0
        self._draining = False

    # --- life cycle ------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming, finish what is in flight, give back the rest. Idempotent."""
        if not self._stop.is_set():
            self.log.info("stopping: finishing requests in flight")
        self._stop.set()

    async def run(self) -> Counters:
        """Run until ``stop()`` (or, with ``burst``, until nothing is due or sendable)."""
        if self.settings.rate_limit:
            self.log.info(
                "daemon started on {event_loop}: concurrency {concurrency}, "
                "rate limit {rate_limit:g}/s, sending to {sender_url}",
                event_loop=_loop_name(),
                concurrency=self.settings.concurrency,
                rate_limit=self.settings.rate_limit,
                sender_url=self.settings.sender_url,
            )
        else:
            self.log.info(
                "daemon started on {event_loop}: concurrency {concurrency}, no rate limit, "
                "sending to {sender_url}",
                event_loop=_loop_name(),
                concurrency=self.settings.concurrency,
                sender_url=self.settings.sender_url,
            )
        if self.settings.frequency_cap:
            self.log.info(
                "frequency cap {frequency_cap}: a client at it waits for its oldest message "
                "to leave the period (transactional mailings are not capped)",
                frequency_cap=str(self.settings.frequency_cap),
            )
        if self.exclusive:
            taken = await asyncio.to_thread(take_over_orphans, self.store.engine)
            self.counters.leases_taken_over += taken
            self.metrics.takeovers.inc(taken)
        try:  # a head start; the housekeeping jobs do it again and again anyway
            released = await self.store.release_held(self.clock.now())
            if released:
                self.log.info(
                    "{released} messages held back under another frequency cap are due again",
                    released=released,
                )
            await self.housekeeping.activate()
            await self.housekeeping.refresh()
        except Exception:
            self.log.exception("could not activate mailings at start; trying again soon")
        tasks = [
            self._supervise("claimer", self._claim_loop),
            self._supervise("recorder", self._record_loop),
            self._supervise("housekeeping", self.housekeeping.run),
            self._supervise("optouts", self._look_up_opt_outs),
            *(self._supervise("sender", self._send_loop) for _ in range(self.settings.concurrency)),
        ]
        try:
            await self._beat_until_stopped()
        finally:
            try:
                await self._drain(tasks)
            finally:  # (even when stopped hard: a second signal, a failing drain)
                if self.lines is not None:
                    self.lines.flush()
        if self.burst:  # leave no ended mailing with unsent messages behind (cron use)
            with contextlib.suppress(Exception):
                await self.housekeeping.expire()
        self.log.info(  # every counter a field of its own (claimed, sent, ... restarts)
            "daemon stopped: {sent} sent, {failed} failed, {retried} to retry, {expired} expired, "
            "{cancelled} cancelled; {requests} requests",
            **dataclasses.asdict(self.counters),
        )
        return self.counters

    def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> asyncio.Task:
        """Run ``loop`` as a task that is restarted when it crashes or ends by itself.

        A task crashing more than RESTART_LIMIT times within RESTART_WINDOW stops the
        daemon (``failed``): the process exits non-zero and its supervisor restarts it.
        """

        async def supervised() -> None:
            crashes: collections.deque[float] = collections.deque()
            while True:
                try:
                    await loop()
                except Exception:
                    self.log.exception("the {name} task crashed; restarting it", name=name)
                else:
                    if self._stop.is_set():
                        return
                    self.log.error("the {name} task ended by itself; restarting it", name=name)
                self.counters.restarts += 1
                self.metrics.restarts.labels(name).inc()
                now = time.monotonic()
                crashes.append(now)
                while crashes and now - crashes[0] > RESTART_WINDOW:
                    crashes.popleft()
                if len(crashes) > RESTART_LIMIT:
                    self.log.critical(
                        "the {task} task crashed {crashes} times in {window_s}s: "
                        "stopping the daemon",
                        task=name,
                        crashes=len(crashes),
                        window_s=round(RESTART_WINDOW),
                    )
                    self.failed = True
                    self.stop()
                    return
                await asyncio.sleep(RESTART_PAUSE)

        return asyncio.create_task(supervised(), name=name)

    async def _beat_until_stopped(self) -> None:
        """Publish the progress (gauge, heartbeat file) every second until stopped."""
        while not self._stop.is_set():
            self.metrics.progress.set(self.progress.at())
            if self.heartbeat is not None:
                try:
                    await asyncio.to_thread(write_heartbeat, self.heartbeat, self.progress)
                except OSError as exc:
                    self._errors.error("heartbeat", f"cannot write {self.heartbeat}", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_INTERVAL):
                    await self._stop.wait()

    async def _drain(self, tasks: list[asyncio.Task]) -> None:
        """Stop claiming, let requests in flight finish, record everything, give back the rest.

        The claimer and the recorder end by themselves rather than being cancelled: a
        cancelled database call may never run, and its claims or outcomes would be lost
        to this daemon (claims come back when their lease runs out; outcomes would not).
        """
        claimer, recorder, *others = tasks
        await _finish(claimer, timeout=DRAIN_TIMEOUT)
        while not self._queue.empty():  # claimed, never started: back untouched
            claimed = self._queue.get_nowait()
            self._held.pop(claimed.id, None)
            outcome = self.dispatcher.outcome(claimed, Decision(Fate.wait, at=self.clock.now()))
            self._outcomes.append(outcome)
        try:  # (a request may take up to NOTIFY_REQUEST_TIMEOUT: let it)
            async with asyncio.timeout(max(DRAIN_TIMEOUT, self.settings.request_timeout + 1)):
                while self._in_flight:
                    await asyncio.sleep(0.01)
        except TimeoutError:
            self.log.warning(
                "{in_flight} requests still in flight at shutdown", in_flight=self._in_flight
            )
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        self._draining = True  # the recorder ends once every outcome is written
        await _finish(recorder, timeout=FINAL_FLUSH_TIMEOUT)
        if self._outcomes:
            self.log.error(
                "{unrecorded} outcomes could not be recorded; their leases run out and they are "
                "sent again",
                unrecorded=len(self._outcomes),
            )
        try:
            released = await self.store.release_all()
            if released:
                self.log.info("gave back {released} claimed messages", released=released)
        except Exception as exc:
            self.log.error(
                "could not give back claimed messages ({error}); their leases run out",
                error=str(exc),
            )
        await self.dispatcher.aclose()
        if self.heartbeat is not None:
            with contextlib.suppress(OSError):
                self.heartbeat.unlink(missing_ok=True)

    # --- claiming --------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        capacity = 2 * self.settings.concurrency  # in flight plus a queue to keep senders busy
        failing_since = None
        while not self._stop.is_set():
            try:
                await self._claim_round(capacity)
                self._errors.recovered("claim", "claiming works again")
                failing_since = None
            except Exception as exc:
                # The database may be restarting: keep the daemon alive and try again.
                self._errors.error(
                    "claim", f"could not claim messages; trying again every {CLAIM_RETRY:g}s", exc
                )
                failing_since = failing_since or time.monotonic()
                if self.burst and time.monotonic() - failing_since > BURST_PATIENCE:
                    self.log.error(
                        "the database has failed for {failing_s}s: burst run ends (exit 1)",
                        failing_s=round(BURST_PATIENCE),
                    )
                    self.failed = True
                    self.stop()
                    return
                await asyncio.sleep(CLAIM_RETRY)

    async def _claim_round(self, capacity: int) -> None:
        if self.dispatcher.held():
            if self.burst:
                self.log.warning(
                    "the sending API is unavailable (circuit breaker open or token refused): "
                    "burst run ends, unsent messages wait for the next run"
                )
                self.stop()
                return
            self.progress.beat("claimer")  # a deliberate wait, not a stall
            await asyncio.sleep(min(0.1, max(0.01, self.breaker.seconds_to_probe())))
            if self.breaker.probe_due() and not await self._claim(1):  # the probe
                await asyncio.sleep(IDLE_POLL)  # nothing due to probe with: no busy polling
            return
        room = capacity - self._in_flight - self._queue.qsize()
        if room < min(CLAIM_BATCH, self.settings.concurrency) // 2:
            self.progress.beat("claimer")  # the senders are busy
            await asyncio.sleep(0.005)
            return
        claimed = await self._claim(min(room, CLAIM_BATCH))
        self.progress.beat("claimer")
        if not claimed:
            await self._idle()

    async def _claim(self, want: int) -> int:
        now = self.clock.now()
        mailing_ids = self.housekeeping.sendable(now)
        if not mailing_ids:
            return 0
        lease_until = self.clock.after(self.settings.lease_seconds)
        with self.optouts.claiming() as began:
            batch = await self.store.claim(
                want=want, mailing_ids=mailing_ids, now=now, lease_until=lease_until, seen_at=began
            )
            for claimed in batch:
                self._queue.put_nowait(claimed)
                self._held[claimed.id] = claimed
        self.counters.claimed += len(batch)
        return len(batch)

    async def _idle(self) -> None:
        if self.burst and not self._in_flight and self._queue.empty() and not self._outcomes:
            self._idle_rounds += 1
            if self._idle_rounds >= 3 and not await self._anything_due():
                self.stop()
                return
        else:
            self._idle_rounds = 0
        await asyncio.sleep(IDLE_POLL)

    async def _anything_due(self) -> bool:
        await self.housekeeping.activate()
        await self.housekeeping.refresh()
        now = self.clock.now()
        return await self.store.any_due(self.housekeeping.sendable(now), now)

    # --- sending ---------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            claimed = await self._queue.get()
            self._in_flight += 1
            try:
                mailing = self.housekeeping.mailings.get(claimed.mailing_id)
                outcome = await self.dispatcher.process(claimed, mailing)
            except Exception as exc:  # a bug must not lose the message or stop the daemon
                self.log.exception(
                    "unexpected error sending message {message_id}", message_id=claimed.id
                )
                self.dispatcher.breaker.no_answer()  # were it the probe, another one goes
                decision = Decision(Fate.wait, at=self.clock.now(), reason=f"internal error: {exc}")
                outcome = self.dispatcher.outcome(claimed, decision)
            finally:
                self._in_flight -= 1
                self._held.pop(claimed.id, None)
            self._outcomes.append(outcome)
            self.metrics.observe(outcome.attempts, earlier=claimed.attempts, status=outcome.status)
            if self.lines is not None:
                self.dispatcher.trace(claimed, outcome)

    async def _look_up_opt_outs(self) -> None:
        await self.optouts.run(
            lambda: self._held.values(), self.store.opted_out_among, self._errors
        )

    # --- recording -------------------------------------------------------------------

    async def _record_loop(self) -> None:
        pause = RECORD_INTERVAL
        while True:
            await asyncio.sleep(pause)
            if self.lines is not None:
                self.lines.flush()  # the per-message lines of the last interval
            if not self._outcomes:
                if self._draining:
                    return  # everything is written: the daemon may stop
                self.progress.beat("recorder")
                continue
            recorded = await self._flush()
            pause = RECORD_INTERVAL if recorded else min(RECORD_BACKOFF_MAX, pause * 2)

    async def _flush(self) -> bool:
        """Write the outcomes gathered so far; False (keeping them) when that failed."""
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return True
        try:
            dropped = await self.store.record(outcomes)
        except asyncio.CancelledError:
            # Maybe written, maybe not: keep them (writing one twice changes nothing).
            self._outcomes[:0] = outcomes
            raise
        except Exception as exc:
            # Keep them for the next try: losing an outcome would resend the message.
            self._outcomes[:0] = outcomes
            self._errors.error(
                "record", f"could not record {len(outcomes)} outcomes; trying again", exc
            )
            return False
        self._errors.recovered("record", "recording outcomes works again")
        self.progress.beat("recorder")
        if dropped:
            self.counters.dropped += len(dropped)
            self.log.warning(
                "dropped the outcomes of {dropped} messages deleted while being sent (their "
                "mailing or client was deleted): {message_ids}",
                dropped=len(dropped),
                message_ids=", ".join(map(str, dropped[:20])),
            )
        return True

    # --- the daily report (kept here for the tests and `notifyctl report`) -----------

    def job_report(self) -> bool:
        """Send the day's statistics email if it is due and not sent yet; True if sent here."""
        return self.housekeeping.report()
