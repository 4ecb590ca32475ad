"""The engine's heart: claim deliveries from the database, hand them to channels, record outcomes."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections import deque
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from gateway.core.call_votes import alert_poll, options_to_ask, record_call_vote
from gateway.core.channels import (Channel, DeliveryFailed, LineStatus, OutboundMessage, ReceivedPart, StatusReport,
                                   SubmitReceipt)
from gateway.core.citizens import CitizenService
from gateway.core.db import utcnow
from gateway.core.failures import Failure, FailureKind
from gateway.core.inbound_spool import InboundSpool
from gateway.core.logs import event_line, mask_number
from gateway.core.nodes import NodeWatch
from gateway.core.outcome_journal import JournaledOutcome, OutcomeJournal, record_once
from gateway.core.placing_journal import PlacingJournal
from gateway.core.reply_queue import ClaimedReply, ReplyQueue
from gateway.core.report_spool import ReportSpool
from gateway.core.retry import DeliveryPolicy, RetryVerdict
from gateway.core.states import AttemptOutcome, Channel as ChannelName, DeliveryState, LineState
from gateway.core.store import ClaimedDelivery, ReportMatch, Store
from gateway.core.store_worker import AsyncStore, RetrySettings, StoreWorker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatcherSettings:
    poll_interval: float = 0.5
    report_timeout: float = 600.0     # --once: how long to wait for missing status reports
    status_flush_interval: float = 1.0
    # Every line's status is rewritten this often even when nothing changed: the
    # panel takes a line whose row has gone stale for a dead engine, and a trunk
    # (unlike a modem, which reports its health every health_interval) only
    # reports when its state changes.
    line_heartbeat: float = 60.0
    # On SIGTERM, how long the sends in flight may take to finish. A hung modem
    # must not keep the engine up past systemd's TimeoutStopSec (120 s): what is
    # still on the wire after this stays 'submitting' and the next start resends it,
    # flagged as a possible duplicate.
    stop_grace: float = 45.0
    # SMS deliveries claimed ahead of the free modems, in seconds of the lines' current
    # rate: while the database is held (a backup, a long query) the modems go on with
    # these, every one already 'submitting' with its attempt row on disk.
    claim_ahead: float = 30.0
    claim_ahead_max: int = 2000   # before a modem measured its rate, its configured cap may be far above it
    # Calls claimed ahead of the free trunk channels, in seconds of the trunks' current rate
    # (30 channels of 45 s calls: 4 calls), so a channel freed by a finished call takes the
    # next one at once, not after a claim queued behind the results on the writer thread.
    # Only with a placing_journal, which lets a restart give back what never left.
    voice_claim_ahead: float = 5.0
    placing_journal: Path | None = None
    # How the database writer retries a call the database refused (locked, gone).
    store_retry: RetrySettings = field(default_factory=RetrySettings)
    # At a stop, how long the bookkeeping still queued may take to land.
    store_drain: float = 60.0
    # Status reports are fsync'd here before a modem deletes its copy, so a held database
    # does not fill the modems' report memories (which stops their sends). None: the
    # modem waits for the database commit itself.
    report_spool: Path | None = None
    # Received SMS parts are fsync'd here before a modem deletes its copy, for the same reason:
    # a held database must not fill the SIMs during a storm of replies. None: the modem waits
    # for the database commit itself.
    inbound_spool: Path | None = None
    # Each outcome a line reports (an SMS accepted, a call's end) is fsync'd here before it is queued
    # for the database, so an engine stopped while the database is unreachable forgets nothing it
    # learned: the next start records it (outcome_journal.py). None: only the database has it.
    outcome_journal: Path | None = None
    # This engine's name in the database_lost alarm ([engine] node where nodes are named).
    node: str = "engine"
    # A long SMS whose parts are still missing this long after its first part arrived is kept
    # with what came, marked incomplete ([inbound] part_timeout).
    inbound_part_timeout: float = 600.0
    # Unhandled incoming SMS are looked for this often even when no arrival was signalled
    # (one committed by another process, a signal lost in a crash).
    inbound_poll: float = 5.0
    inbound_batch: int = 50
    # Answers to citizens claimed at once, when no alert SMS is waiting.
    reply_batch: int = 8


# How often the claim-ahead buffer is checked for alerts cancelled or past their deadline.
UNWANTED_CHECK_SECONDS = 1.0


# SMS failures the log names by their kind (the reason next to it gives the code).
_NAMED_SMS_FAILURES = (FailureKind.CMS, FailureKind.CME, FailureKind.TEXT, FailureKind.NUMBER)


def _log_outcome(channel: str, failure: DeliveryFailed) -> str:
    """The log line's outcome: what a call ended as, the kind of failure a modem
    named, else whether a retry can help."""
    if channel == ChannelName.VOICE:
        return failure.outcome
    if failure.failure.kind in _NAMED_SMS_FAILURES:
        return failure.failure.kind
    return "permanent" if failure.permanent else "transient"


class Alarms(Protocol):
    """What the dispatcher needs of gateway.core.alarms.AlarmMonitor (run on the database writer)."""
    def raise_alarm(self, kind: str, subject: str, message: str) -> int | None: ...
    def clear_alarm(self, kind: str, subject: str) -> None: ...


DATABASE_LOST = "database_lost"


def _landed() -> None:
    """A no-op for the writer: once it returns, everything queued before it has landed."""


class Dispatcher:
    def __init__(self, store: Store | AsyncStore, channels: list[Channel],
                 policies: dict[ChannelName, DeliveryPolicy], settings: DispatcherSettings, *,
                 citizens: CitizenService | None = None, replies: ReplyQueue | None = None,
                 alarms: Alarms | None = None, nodes: NodeWatch | None = None) -> None:
        # Every database call runs on the store's writer thread, never on this loop.
        self.store = store if isinstance(store, AsyncStore) else AsyncStore(store, StoreWorker(settings.store_retry))
        self.channels = channels
        self.policies = policies
        self.settings = settings
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task] = set()
        # Every other task this dispatcher starts: kept (a task nobody references can be
        # collected mid-flight) and watched (an exception is logged, never left unretrieved).
        self._tasks: set[asyncio.Task] = set()
        self._buffers: dict[str, deque[ClaimedDelivery]] = {channel.name: deque() for channel in channels}
        self._claiming: dict[str, asyncio.Task] = {}
        self._next_unwanted_check = 0.0
        self._checking: asyncio.Task | None = None
        self._journal = PlacingJournal(settings.placing_journal) if settings.placing_journal else None
        self._flushing: asyncio.Task | None = None
        self._spool = ReportSpool(settings.report_spool) if settings.report_spool else None
        self._inbound_spool = InboundSpool(settings.inbound_spool) if settings.inbound_spool else None
        self._outcomes = OutcomeJournal(settings.outcome_journal) if settings.outcome_journal else None
        self._spool_thread = (ThreadPoolExecutor(1, thread_name_prefix="report-spool")
                              if self._spool or self._inbound_spool or self._outcomes else None)
        self.alarms = alarms
        # True from the database found unreachable until what was queued meanwhile has landed
        # and the claims held through the outage are given back (_resume_after_outage).
        self._database_held = False
        self._resuming: asyncio.Task | None = None
        self._line_status: dict[str, LineStatus] = {}
        self._dirty: set[str] = set()
        self._failed_lines: dict[int, set[str]] = {}
        self._polls: dict[int, tuple[int, dt.datetime | None]] = {}   # alert id -> its poll (call_votes)
        self._last_progress = time.monotonic()
        self._next_heartbeat = time.monotonic() + settings.line_heartbeat
        # Set once every channel's start() returned (lines opened or given up on): READY=1.
        self.started = asyncio.Event()
        # Set after each commit of incoming SMS: the citizens' service looks for them now.
        self.inbound_arrived = asyncio.Event()
        self.citizens = citizens
        # Answers to citizens, sent below alerts on the SMS lines (not by a --once drain).
        self.replies = replies if replies is not None else ReplyQueue(self.store.store.sessions,
                                                                     self.store.store.quiet_hours,
                                                                     node=self.store.store.node)
        self._reply_buffer: deque[ClaimedReply] = deque()
        self._answering = False
        # This node's heartbeat and its watch over the others sharing the database (None: alone).
        self.nodes = nodes

    def line_states(self) -> dict[str, str]:
        """Each line's last reported state (up, down, suspended, starting), by label."""
        return {label: status.state for label, status in self._line_status.items()}

    # --- tasks ---------------------------------------------------------------------
    def _spawn(self, coro: Coroutine, what: str, tasks: set[asyncio.Task] | None = None) -> asyncio.Task:
        """Start ``coro`` as a task that is kept until it ends and whose failure is logged."""
        task = asyncio.create_task(coro)
        kept = self._tasks if tasks is None else tasks
        kept.add(task)

        def ended(done: asyncio.Task) -> None:
            kept.discard(done)
            if not done.cancelled() and done.exception() is not None:
                log.error("%s failed", what, exc_info=done.exception())
        task.add_done_callback(ended)
        return task

    # --- ChannelEvents ---------------------------------------------------------
    def status_reports(self, line: str, reports: list[StatusReport]) -> asyncio.Task:
        """The task ends once the reports are safe (spooled, else committed): the modem may delete them."""
        self._last_progress = time.monotonic()
        if self._spool is None:
            return self._spawn(self._record_reports(line, reports), f"recording status reports from {line}")
        return self._spawn(self._spool_reports(line, reports), f"spooling status reports from {line}")

    async def _in_spool_thread(self, fn, *args):  # noqa: ANN001, ANN202
        return await asyncio.get_running_loop().run_in_executor(self._spool_thread, fn, *args)

    async def _spool_reports(self, line: str, reports: list[StatusReport]) -> None:
        try:
            batch = await self._in_spool_thread(self._spool.append, line, reports)
        except OSError as exc:   # disk full: the modem keeps its copies until the database has them
            log.warning("cannot spool status reports (%s): the modem keeps them until the database has them", exc)
            await self._record_reports(line, reports)
            return
        self._spawn(self._record_reports(line, reports, batch), f"recording status reports from {line}")

    async def _record_reports(self, line: str, reports: list[StatusReport], batch: int | None = None) -> None:
        # A report that beats its own +CMGS bookkeeping (the modem reports within
        # milliseconds, before _deliver has stored the parts) is kept by the store's
        # writer and applied when the parts are stored (AsyncStore).
        matches = await self.store.record_status_reports(line, reports)
        if batch is not None:
            await self._in_spool_thread(self._spool.landed, batch)
        for report, matched in zip(reports, matches):
            if matched:
                self._log_report(matched, line, report)
        self._last_progress = time.monotonic()
        self._wake.set()

    @staticmethod
    def _log_report(matched: ReportMatch, line: str, report: StatusReport) -> None:
        log.info(event_line("status_report", alert=matched.alert_id, delivery=matched.delivery_id,
                            channel=ChannelName.SMS,
                            line=line, to=mask_number(matched.e164),
                            outcome="delivered" if report.delivered else "not_delivered", ref=report.reference,
                            detail=report.detail))

    def inbound_part(self, part: ReceivedPart) -> asyncio.Task:
        """The task ends once the part is safe (spooled, else committed): the modem may delete (or
        acknowledge) its copy."""
        if self._inbound_spool is None:
            return self._spawn(self._record_part(part), f"recording an SMS part from {part.line}")
        return self._spawn(self._spool_part(part), f"spooling an SMS part from {part.line}")

    async def _spool_part(self, part: ReceivedPart) -> None:
        try:
            batch = await self._in_spool_thread(self._inbound_spool.append, part.line, [part])
        except OSError as exc:   # disk full: the modem keeps its copy until the database has it
            log.warning("cannot spool an incoming SMS (%s): the modem keeps it until the database has it", exc)
            await self._record_part(part)
            return
        self._spawn(self._record_part(part, batch), f"recording an SMS part from {part.line}")

    async def _record_part(self, part: ReceivedPart, batch: int | None = None) -> None:
        created = await self.store.record_part(part)
        if batch is not None:
            await self._in_spool_thread(self._inbound_spool.landed, batch)
        log.info(event_line("inbound", line=part.line, sender=mask_number(part.sender),
                            part=f"{part.seq}/{part.parts}" if part.parts > 1 else None,
                            messages=created or None))
        if created:
            self.inbound_arrived.set()

    async def _assemble_overdue(self) -> None:
        """Long messages whose missing parts never came are kept with what arrived."""
        created = await self.store.assemble_overdue(utcnow(), dt.timedelta(seconds=self.settings.inbound_part_timeout))
        if created:
            log.warning("%d incoming SMS kept incomplete: parts still missing after %.0f s", created,
                        self.settings.inbound_part_timeout)
            self.inbound_arrived.set()

    async def _assemble_overdue_forever(self) -> None:
        # Often enough that an incomplete message waits at most a quarter of the timeout more.
        interval = min(60.0, max(0.2, self.settings.inbound_part_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            await self._assemble_overdue()

    # --- citizens' SMS -------------------------------------------------------------------
    async def _answer_citizens(self, stop: asyncio.Event) -> None:
        """Act on every committed, unhandled incoming SMS: those a previous run left (a crash after
        the commit, before the answer) at start, then each as it arrives. One message, one
        transaction, on the store's writer: a storm of replies interleaves with the alert's
        bookkeeping instead of queueing ahead of it."""
        batch = self.settings.inbound_batch
        while not stop.is_set():
            self.inbound_arrived.clear()
            try:
                ids = await self.store.run(self.citizens.unhandled, batch)
            except Exception:  # noqa: BLE001 - a bug here must not stop answering for the engine's lifetime
                log.exception("cannot read the incoming SMS still to act on; trying again")
                ids = []
            for inbound_id in ids:
                if stop.is_set():
                    return
                await self._handle_inbound(inbound_id)
            if ids:
                self._wake.set()   # answers may be queued: the SMS lines may take them
                if len(ids) == batch:
                    continue
            waiters = [asyncio.create_task(self.inbound_arrived.wait()), asyncio.create_task(stop.wait())]
            await asyncio.wait(waiters, timeout=self.settings.inbound_poll, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def _handle_inbound(self, inbound_id: int) -> None:
        try:
            handled = await self.store.run(self.citizens.process, inbound_id)
        except Exception as exc:  # noqa: BLE001 - one message must not stop the others, nor be retried forever
            log.exception("inbound SMS %d: unexpected error while acting on it", inbound_id)
            await self.store.run(self.citizens.give_up, inbound_id, type(exc).__name__)
            return
        if handled is not None:
            log.info(event_line("inbound", inbound=handled.inbound_id, **{"from": mask_number(handled.sender)},
                                kind=handled.kind, reply=handled.reply, outcome=handled.outcome))

    async def _claim_replies(self, free: int) -> None:
        claims = await self.store.run(self.replies.claim, min(free, self.settings.reply_batch))
        self._reply_buffer.extend(claims)
        if claims:
            self._wake.set()

    async def _send_reply(self, channel: Channel, reply: ClaimedReply) -> None:
        message = OutboundMessage(delivery_id=0, alert_id=0, number=reply.e164, text=reply.text,
                                  possible_duplicate=reply.possible_duplicate)
        try:
            receipt = await channel.submit(message)
        except DeliveryFailed as failure:
            state = await self.store.run(self.replies.record_failed, reply, failure.reason,
                                         permanent=failure.permanent, charged=failure.charge_attempt,
                                         line=failure.line)
            log.info(event_line("reply_failed", reply=reply.reply_id, line=failure.line, to=mask_number(reply.e164),
                                state=state, reason=failure.reason.replace(reply.e164, mask_number(reply.e164))))
        except Exception:  # noqa: BLE001 - a bug must not leave the answer 'submitting' forever
            log.exception("reply %d: unexpected error", reply.reply_id)
            await self.store.run(self.replies.record_failed, reply, "internal error", permanent=False, charged=True)
        else:
            self._wake.set()
            await self.store.run(self.replies.record_sent, reply.reply_id, receipt.line)
            log.info(event_line("reply_sent", reply=reply.reply_id, line=receipt.line, to=mask_number(reply.e164),
                                parts=len(receipt.references) or None))
        self._last_progress = time.monotonic()
        self._wake.set()

    def line_status(self, status: LineStatus) -> None:
        previous = self._line_status.get(status.label)
        if previous is None or previous.state != status.state:
            log.info("line %s is %s%s", status.label, status.state,
                     f" ({status.last_error})" if status.last_error and status.state != LineState.UP else "")
        self._line_status[status.label] = status
        self._dirty.add(status.label)

    def capacity_available(self) -> None:
        self._wake.set()

    def late_call_outcome(self, delivery_id: int, attempt_id: int, outcome: AttemptOutcome, *,
                          line: str | None, answered_at: dt.datetime | None, cause: int | None) -> asyncio.Task:
        return self._spawn(self._record_late_call(delivery_id, attempt_id, outcome, line=line,
                                                  answered_at=answered_at, cause=cause),
                           f"recording the late outcome of delivery {delivery_id}")

    def poll_vote(self, delivery_id: int, option: int, voted_at: dt.datetime) -> asyncio.Task:
        return self._spawn(self._record_vote(delivery_id, option, voted_at),
                           f"recording a vote in the call of delivery {delivery_id}")

    async def _record_vote(self, delivery_id: int, option: int, voted_at: dt.datetime) -> None:
        result = await self.store.run(record_call_vote, self.store.store.sessions, delivery_id, option, voted_at)
        log.info(event_line("call_vote", delivery=delivery_id, option=option,
                            result=result.count if result is not None else "no such delivery"))

    async def _read_polls(self, claims: list[ClaimedDelivery]) -> None:
        """Read the polls of the alerts of these voice claims (once per alert: a poll never changes),
        before the claims reach the buffer: _deliver must not wait between taking a line's free slot
        and submitting, or the loop would hand the same free slot to another claim meanwhile."""
        for alert_id in {claim.alert_id for claim in claims} - self._polls.keys():
            self._polls[alert_id] = await self.store.run(alert_poll, self.store.store.sessions, alert_id)

    def _poll_options(self, alert_id: int) -> int:
        """How many options the calls of ``alert_id`` ask about now (0: no poll, or closed)."""
        poll = self._polls.get(alert_id)
        return options_to_ask(poll, utcnow()) if poll is not None else 0

    async def _record_late_call(self, delivery_id: int, attempt_id: int, outcome: AttemptOutcome, *,
                                line: str | None, answered_at: dt.datetime | None, cause: int | None) -> None:
        state = await self.store.record_late_call_outcome(attempt_id, outcome, line=line, answered_at=answered_at,
                                                          cause=cause)
        log.info(event_line("late_call", delivery=delivery_id, attempt=attempt_id, line=line,
                            outcome=outcome, state=state))
        self._wake.set()

    # --- running -----------------------------------------------------------------
    async def run(self, stop: asyncio.Event, *, once: bool = False) -> int:
        """Run until ``stop`` is set (or, with ``once``, until the work is drained). Returns an exit code."""
        self.store.worker.start()
        try:
            return await self._run(stop, once)
        finally:
            # What is still queued (the database held at the stop) lands before we exit;
            # past store_drain it is abandoned, and the next start recovers it.
            drain = self._drain_seconds()
            if not await asyncio.to_thread(self.store.worker.stop, drain):
                log.warning("stopping with database writes still queued after %.0f s: the next start "
                            "records what the outcome journal holds and resends the rest as possible duplicates",
                            drain)

    async def _replay_spool(self) -> None:
        """Reports a previous run spooled but did not see committed go in before anything is sent."""
        batches = await self._in_spool_thread(self._spool.unlanded)
        for line, reports in batches:
            await self.store.record_status_reports(line, reports)
        if batches:
            log.info("recorded %d status reports spooled by the previous run",
                     sum(len(reports) for _, reports in batches))
        await self._in_spool_thread(self._spool.clear)

    async def _replay_inbound_spool(self) -> None:
        """Parts a previous run spooled and did not see committed (stored once, whatever happened)."""
        try:
            batches = await self._in_spool_thread(self._inbound_spool.unlanded)
        except OSError as exc:
            # Not a reason to stay down: the modems keep what cannot be spooled until it is committed.
            log.error("cannot read the incoming SMS spool %s (%s): its parts are recorded once it can be read",
                      self.settings.inbound_spool, exc)
            return
        created = 0
        for _line, parts in batches:
            for part in parts:
                created += await self.store.record_part(part)
        if batches:
            log.info("recorded %d incoming SMS parts spooled by the previous run", sum(len(p) for _, p in batches))
        if created:
            self.inbound_arrived.set()
        await self._in_spool_thread(self._inbound_spool.clear)

    async def _run(self, stop: asyncio.Event, once: bool) -> int:
        if self._outcomes is not None:
            await self._replay_outcomes()
        if self._spool is not None:
            await self._replay_spool()
        if self._inbound_spool is not None:
            await self._replay_inbound_spool()
        # Calls claimed ahead that the journal does not list never left: given back unflagged.
        placed_ahead = self._journal.placed_ids() if self._journal else None
        recovered = await self.store.recover_interrupted(placed_ahead)
        if self._journal is not None:
            self._journal.start()
        if recovered:
            log.warning("%d deliveries were in flight when the engine last stopped: resending them, "
                        "flagged as possible duplicates", recovered)
        # Parts the last run stored and whose message timed out meanwhile.
        await self._assemble_overdue()
        replies = await self.store.run(self.replies.recover_interrupted)
        if replies:
            log.warning("%d answers to citizens were in flight when the engine last stopped: sending them again, "
                        "flagged as possible duplicates", replies)
        # Answering citizens belongs to the long-running engine, not to a --once drain of alerts:
        # what arrives meanwhile is committed and answered by the next run.
        self._answering = not once and any(channel.name == ChannelName.SMS for channel in self.channels)
        # Heartbeating from before the lines open: opening many modems may take longer than the lease.
        watcher = self._spawn(self._watch_nodes_forever(), "heartbeating") if self.nodes is not None else None
        for channel in self.channels:
            await channel.start(self)
        self.started.set()
        flusher = self._spawn(self._flush_status_forever(), "writing line statuses")
        assembler = self._spawn(self._assemble_overdue_forever(), "keeping incomplete incoming SMS")
        if self.citizens is not None and not once:
            self._spawn(self._answer_citizens(stop), "acting on incoming SMS")
        exit_code = 0
        try:
            while not stop.is_set():
                started_any = self._dispatch_round()
                if started_any:
                    # Let the new tasks reach their channel (which marks the line busy)
                    # before free slots are counted again.
                    await asyncio.sleep(0)
                    continue
                if once:
                    finished, code = await self._drained()
                    if finished:
                        exit_code = code
                        break
                self._wake.clear()
                waiters = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
                await asyncio.wait(waiters, timeout=self.settings.poll_interval, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
        finally:
            if self._inflight:
                log.info("stopping: waiting up to %.0f s for %d sends in flight", self.settings.stop_grace,
                         len(self._inflight))
                await asyncio.wait(set(self._inflight), timeout=self.settings.stop_grace)
            for channel in self.channels:
                await channel.stop()
            if self._inflight:
                # Sends a channel failed as it stopped (queued behind one on the wire) record
                # their result now; whatever is still stuck stays 'submitting' for the next start.
                await asyncio.wait(set(self._inflight), timeout=1.0)
                stuck = [task for task in self._inflight if not task.done()]
                if stuck:
                    log.warning("stopping with %d sends still in flight: they stay 'submitting' and the next "
                                "start resends them as possible duplicates", len(stuck))
                    for task in stuck:
                        task.cancel()
            flusher.cancel()
            assembler.cancel()
            if watcher is not None:
                watcher.cancel()
            bookkeeping = asyncio.ensure_future(self._stop_bookkeeping())
            # With the database unreachable nothing of it can land: the outcomes are in the journal,
            # and the next start gives back or resends (flagged) what was in hand.
            await asyncio.wait([bookkeeping], timeout=self._drain_seconds())
            if not bookkeeping.done():
                log.warning("stopping with the database unreachable: the next start records the outcomes "
                            "journaled in %s and resends what was in flight, flagged", self.settings.outcome_journal)
                bookkeeping.cancel()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=self.settings.stop_grace)
            for spool in (self._spool, self._inbound_spool, self._outcomes):
                if spool is not None:
                    await self._in_spool_thread(spool.close)
            if self._spool_thread is not None:
                self._spool_thread.shutdown()
            if self._journal is not None:
                self._journal.close()
        return exit_code

    def _drain_seconds(self) -> float:
        """How long the writes still queued at a stop may take to land: store_drain, or a second when
        the database is unreachable (waiting for it would only delay the stop)."""
        return 1.0 if self.store.worker.unreachable_since is not None else self.settings.store_drain

    async def _stop_bookkeeping(self) -> None:
        await self._release_buffered()
        # Nobody drives the lines now: say so, rather than leave the last "up" for the
        # CLI and the panel to count as capacity (signal, operator, counters are kept).
        # (A line already down or out of rotation keeps that state and its error.)
        for label, status in self._line_status.items():
            if status.state in (LineState.UP, LineState.STARTING):
                self._line_status[label] = replace(status, state=LineState.STOPPED, in_use=0)
                self._dirty.add(label)
        if self._flushing is not None:
            await asyncio.wait([self._flushing])
        await self._flush_status()
        # What ended with this run is 'completed' now, not when the engine next starts.
        await self.store.complete_finished_alerts()
        if self.nodes is not None:
            await self.store.run(self.nodes.stop)

    async def _release_buffered(self) -> None:
        """Claims taken ahead and never sent go back to the queue, unflagged (nothing was tried)."""
        claiming = [task for task in self._claiming.values() if not task.done()]
        if claiming:
            await asyncio.wait(claiming)
        unsent = [claim for buffer in self._buffers.values() for claim in buffer]
        for buffer in self._buffers.values():
            buffer.clear()
        if unsent:
            await self.store.release_claims(unsent)
        replies, self._reply_buffer = list(self._reply_buffer), deque()
        if replies:
            await self.store.run(self.replies.release, replies)

    def _journaled(self, channel: Channel) -> bool:
        """Whether this channel's claims ahead are listed in the journal as they go to a line."""
        return channel.name == ChannelName.VOICE and self._journal is not None

    def _claim_ahead(self, channel: Channel) -> int:
        """How many claims beyond the free lines this channel keeps: what its lines send in
        ``claim_ahead`` (SMS) or ``voice_claim_ahead`` seconds at their current rate."""
        seconds = {ChannelName.SMS: self.settings.claim_ahead,
                   ChannelName.VOICE: self.settings.voice_claim_ahead if self._journaled(channel) else 0.0,
                   }.get(channel.name, 0.0)
        if seconds <= 0:
            return 0
        ahead = math.ceil(channel.rate_per_minute() * seconds / 60.0)
        return min(ahead, self.settings.claim_ahead_max)

    def _placing(self, channel: Channel, claim: ClaimedDelivery) -> bool:
        """Journal a voice claim taken ahead just before it goes to a line; False when it must not
        go (the journal cannot be written: the claims ahead are given back and voice claims
        again one call at a time, each 'in_flight' on disk before it is placed)."""
        if not self._journaled(channel):
            return True
        try:
            self._journal.placing(claim.attempt_id)
            return True
        except OSError as exc:
            log.error("cannot write %s (%s): voice calls are no longer claimed ahead", self._journal.path, exc)
            self._journal = None
            buffer = self._buffers[channel.name]
            unsent = [claim, *buffer]
            buffer.clear()
            self._spawn(self.store.release_claims(unsent), f"giving back {len(unsent)} claims")
            return False

    def _dispatch_round(self) -> bool:
        if self._hold_for_database():
            return False
        started = False
        for channel in self.channels:
            buffer = self._buffers[channel.name]
            slots = channel.free_slots()
            while slots > 0 and buffer:
                claim = buffer.popleft()
                if not self._placing(channel, claim):
                    break
                self._spawn(self._deliver(channel, claim), f"delivery {claim.delivery_id}", self._inflight)
                slots -= 1
                started = True
            if channel.name == ChannelName.SMS and not buffer:
                # Below alerts: an answer takes a modem only when no alert SMS is in hand.
                while slots > 0 and self._reply_buffer:
                    reply = self._reply_buffer.popleft()
                    self._spawn(self._send_reply(channel, reply), f"reply {reply.reply_id}", self._inflight)
                    slots -= 1
                    started = True
                if self._reply_buffer and slots <= 0 and not self._inflight:
                    unsent_replies, self._reply_buffer = list(self._reply_buffer), deque()
                    self._spawn(self.store.run(self.replies.release, unsent_replies),
                                f"giving back {len(unsent_replies)} answers")
            if buffer and slots <= 0 and not self._inflight:
                # No line can take anything (daily caps reached, modems down or suspended):
                # the claims go back to the queue rather than sit 'submitting' meanwhile.
                unsent = list(buffer)
                buffer.clear()
                self._spawn(self.store.release_claims(unsent), f"giving back {len(unsent)} claims")
            self._refill(channel, max(slots, 0))
        if (any(self._buffers.values()) and time.monotonic() >= self._next_unwanted_check
                and (self._checking is None or self._checking.done())):
            # Every second, whether or not anything is being claimed: calls claimed ahead may
            # wait for a free trunk channel for as long as a call lasts.
            self._next_unwanted_check = time.monotonic() + UNWANTED_CHECK_SECONDS
            self._checking = self._spawn(self._drop_unwanted(), "checking the claims ahead")
        return started

    def _refill(self, channel: Channel, free: int) -> None:
        """Claim more in the background once the buffer is below one per free line plus the
        claim-ahead, in batches of a quarter of the claim-ahead; the loop goes on meanwhile,
        whatever the database is doing."""
        running = self._claiming.get(channel.name)
        if running is not None and not running.done():
            return
        buffer = self._buffers[channel.name]
        # Nothing sending and no line free: nothing to claim ahead for.
        ahead = self._claim_ahead(channel) if free > 0 or self._inflight else 0
        low = free + ahead
        if len(buffer) >= low:
            return
        self._claiming[channel.name] = self._spawn(
            self._claim_more(channel, low - len(buffer) + math.ceil(ahead / 4), free), f"claiming {channel.name} work")

    async def _claim_more(self, channel: Channel, count: int, free: int = 0) -> None:
        buffer = self._buffers[channel.name]
        claims = await self.store.claim(channel.name, count, ahead=self._journaled(channel))
        if channel.name == ChannelName.VOICE and claims:
            await self._read_polls(claims)
        buffer.extend(claims)
        if (not claims and not buffer and free > 0 and self._answering and channel.name == ChannelName.SMS
                and not self._reply_buffer):
            # No alert SMS is waiting: the free modems may answer citizens.
            await self._claim_replies(free)
        if claims:
            self._wake.set()

    async def _drop_unwanted(self) -> None:
        """Claims waiting in the buffers whose alert was cancelled or passed its deadline meanwhile
        are given back unsent (the store closes them as that alert's others)."""
        for name, buffer in self._buffers.items():
            if not buffer:
                continue
            unwanted = await self.store.unwanted_alerts({claim.alert_id for claim in buffer}, name)
            # The buffer as it is now: claims handed to a line meanwhile are gone from it.
            dropped = [claim for claim in buffer if claim.alert_id in unwanted]
            if not dropped:
                continue
            kept = [claim for claim in buffer if claim.alert_id not in unwanted]
            buffer.clear()
            buffer.extend(kept)
            await self.store.release_claims(dropped)
            log.info("%d claimed %s deliveries of alerts %s not sent: cancelled, past the deadline, or "
                     "information held by quiet hours", len(dropped), name, ",".join(map(str, sorted(unwanted))))

    async def _deliver(self, channel: Channel, claim: ClaimedDelivery) -> None:
        message = OutboundMessage(delivery_id=claim.delivery_id, alert_id=claim.alert_id, number=claim.e164,
                                  text=claim.text, language=claim.language, audio_path=claim.audio_path,
                                  possible_duplicate=claim.possible_duplicate,
                                  avoid_lines=frozenset(self._failed_lines.get(claim.delivery_id, ())),
                                  attempt_id=claim.attempt_id,
                                  poll_options=self._poll_options(claim.alert_id)
                                  if claim.channel == ChannelName.VOICE else 0)
        policy = self.policies[channel.name]
        try:
            receipt = await channel.submit(message)
        except DeliveryFailed as failure:
            verdict = policy.after_failure(claim.policy, claim.attempts, claim.submissions, failure, utcnow())
            state, _ = await self._record_result(claim, verdict, failure=failure)
            if failure.line and state == DeliveryState.PENDING:
                self._failed_lines.setdefault(claim.delivery_id, set()).add(failure.line)
            log.info(event_line(
                "failed", alert=claim.alert_id, delivery=claim.delivery_id, channel=channel.name, line=failure.line,
                to=mask_number(claim.e164),
                outcome=_log_outcome(channel.name, failure), state=state,
                # Some reasons name the number ("no voice trunk is allowed to call +39...").
                reason=failure.reason.replace(claim.e164, mask_number(claim.e164))))
        except Exception:  # noqa: BLE001 - a bug must not leave the delivery 'submitting' forever
            log.exception("delivery %d: unexpected error", claim.delivery_id)
            failure = DeliveryFailed(Failure(FailureKind.INTERNAL, "internal error"), charge_attempt=False)
            verdict = policy.after_failure(claim.policy, claim.attempts, claim.submissions, failure, utcnow())
            await self._record_result(claim, verdict, failure=failure)
        else:
            # The line is free again: let the main loop hand it the next delivery
            # before this one's bookkeeping, so the modem is not idle meanwhile.
            self._wake.set()
            verdict = policy.after_success(claim.policy, claim.attempts, claim.submissions, receipt, utcnow())
            state, early = await self._record_result(claim, verdict, receipt=receipt)
            self._failed_lines.pop(claim.delivery_id, None)
            # SMS: accepted by the network (sent); voice: how the call ended (confirmed, answered, ...).
            log.info(event_line("submitted" if channel.name == ChannelName.SMS else "call", alert=claim.alert_id,
                                delivery=claim.delivery_id, channel=channel.name, line=receipt.line,
                                to=mask_number(claim.e164), outcome=receipt.outcome, state=state,
                                parts=len(receipt.references) or None))
            for report, matched in early:
                self._log_report(matched, receipt.line, report)
        self._last_progress = time.monotonic()
        self._wake.set()

    async def _record_result(self, claim: ClaimedDelivery, verdict: RetryVerdict, *,
                             receipt: SubmitReceipt | None = None, failure: DeliveryFailed | None = None,
                             ) -> tuple[DeliveryState, list[tuple[StatusReport, ReportMatch]]]:
        """On disk first (the outcome journal), then in the database whenever it can take it."""
        batch = None
        if self._outcomes is not None:
            outcome = JournaledOutcome(claim, verdict, receipt, failure)
            try:
                batch = await self._in_spool_thread(self._outcomes.append, outcome.line, [outcome])
            except OSError as exc:   # disk full: the database alone will have it, as without a journal
                log.warning("cannot journal the outcome of delivery %d (%s): it waits for the database only",
                            claim.delivery_id, exc)
        result = await self.store.record_result(claim, verdict, receipt=receipt, failure=failure)
        if batch is not None:
            await self._in_spool_thread(self._outcomes.landed, batch)
        return result

    async def _replay_outcomes(self) -> None:
        """Outcomes a previous run journaled and did not see committed go in before the interrupted
        attempts are recovered (what they record is not resent); each once (record_once)."""
        try:
            batches = await self._in_spool_thread(self._outcomes.unlanded)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Not a reason to stay down: what it held is resent flagged, as without a journal.
            log.error("cannot read the outcome journal %s (%s): the deliveries it held are resent as possible "
                      "duplicates", self.settings.outcome_journal, exc)
            return
        outcomes = [outcome for _line, items in batches for outcome in items]
        recorded = 0
        for outcome in outcomes:
            if await self.store.run(record_once, self.store.store, outcome) is not None:
                recorded += 1
        if outcomes:
            log.info("recorded %d outcomes journaled by the previous run (%d were in the database already)",
                     recorded, len(outcomes) - recorded)
        await self._in_spool_thread(self._outcomes.clear)

    # --- the database lost and found --------------------------------------------------
    def _hold_for_database(self) -> bool:
        """True while nothing new may go to a line: the database is unreachable, or back but the
        outcomes queued meanwhile have not all landed yet."""
        since = self.store.worker.unreachable_since
        if since is not None:
            if not self._database_held:
                self._database_held = True
                held = sum(len(buffer) for buffer in self._buffers.values()) + len(self._reply_buffer)
                log.warning(event_line("database_lost", since=since.isoformat(timespec="seconds"),
                                       in_flight=len(self._inflight), held=held))
            return True
        if self._database_held and (self._resuming is None or self._resuming.done()):
            self._resuming = self._spawn(self._resume_after_outage(), "resuming after the database came back")
        return self._database_held

    async def _resume_after_outage(self) -> None:
        """The database is back: once everything queued during the outage has landed, give back the
        claims held through it (another node may have taken them back meanwhile: they are claimed
        afresh), record the outage as a database_lost alarm, raised and cleared, and go on."""
        await self.store.run(_landed)
        if self.store.worker.unreachable_since is not None:
            return   # lost again meanwhile: the next round waits for it to come back
        await self._release_buffered()
        outage = self.store.worker.last_outage
        if outage is not None:
            since, until = outage
            seconds = (until - since).total_seconds()
            if self.alarms is not None:
                message = (f"database irraggiungibile dal nodo {self.settings.node} dalle "
                           f"{since.isoformat(sep=' ', timespec='seconds')} UTC per {seconds:.0f} s; "
                           "nessun invio perso, ripreso da solo")
                await self.store.run(self.alarms.raise_alarm, DATABASE_LOST, self.settings.node, message)
                await self.store.run(self.alarms.clear_alarm, DATABASE_LOST, self.settings.node)
            log.warning(event_line("database_back", since=since.isoformat(timespec="seconds"),
                                   seconds=round(seconds)))
        self._database_held = False
        self._wake.set()

    async def _drained(self) -> tuple[bool, int]:
        if self._inflight or any(self._buffers.values()):
            return False, 0
        claiming = [task for task in self._claiming.values() if not task.done()]
        if claiming:
            # Nothing else to do: what they find decides. (Never awaited while there is
            # work in hand: a claim waits for the database, the sends must not.)
            await asyncio.wait(claiming)
            if self._inflight or any(self._buffers.values()):
                return False, 0
        unsent = awaiting = 0
        for channel in self.channels:
            u, a, _next = await self.store.work_left(channel.name)
            unsent += u
            awaiting += a
        idle_for = time.monotonic() - self._last_progress
        if unsent == 0 and awaiting == 0:
            return True, 0
        if idle_for > self.settings.report_timeout:
            log.warning("--once: giving up after %.0f s without progress (%d unsent, %d awaiting reports)",
                        idle_for, unsent, awaiting)
            return True, 0 if unsent == 0 else 1
        return False, 0

    async def _watch_nodes_forever(self) -> None:
        """Heartbeat every third of the lease, on the store's writer (database work never runs on
        this loop), and take back the work of a node past its lease (gateway.core.nodes)."""
        while True:
            try:
                taken = await self.store.run(self.nodes.tick)
            except Exception:  # noqa: BLE001 - a bug here must not stop the heartbeat for good
                log.exception("node heartbeat failed; trying again")
                taken = []
            if self.nodes.lost_claims:
                # This node was taken for dead (the database unreachable past the lease): what it had
                # claimed ahead is another node's work now and must not go out from here too. Given
                # back, not just dropped: the store changes only rows still this node's (a claim made
                # after the takeover goes back to pending, a taken one stays the other node's).
                self.nodes.lost_claims = False
                unsent = [claim for buffer in self._buffers.values() for claim in buffer]
                replies, self._reply_buffer = list(self._reply_buffer), deque()
                for buffer in self._buffers.values():
                    buffer.clear()
                log.warning("%d claims in hand not sent: the other nodes took this node's work back",
                            len(unsent) + len(replies))
                await self.store.release_claims(unsent)
                await self.store.run(self.replies.release, replies)
            if any(done.deliveries or done.replies for done in taken):
                await self._reclaim_in_order()
            await asyncio.sleep(self.nodes.me.heartbeat_interval)

    async def _reclaim_in_order(self) -> None:
        """Work taken back from a silent node goes before what this node claimed ahead meanwhile (it came
        first, the vulnerable among it): the claims ahead are given back and claimed again, in order."""
        unsent = [claim for buffer in self._buffers.values() for claim in buffer]
        for buffer in self._buffers.values():
            buffer.clear()
        if unsent:
            await self.store.release_claims(unsent)
        self._wake.set()

    async def _flush_status_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.status_flush_interval)
            # One write at a time: while the database is held, the changes pile up in
            # _dirty and go in the next write, not in a queue of stale ones.
            self._flushing = asyncio.ensure_future(self._flush_status())
            await self._flushing

    async def _flush_status(self) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.settings.line_heartbeat
            self._dirty.update(self._line_status)
        dirty, self._dirty = self._dirty, set()
        if dirty:
            await self.store.record_line_statuses([self._line_status[label] for label in dirty])
