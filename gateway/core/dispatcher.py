"""The engine's heart: claim deliveries from the database, hand them to channels, record outcomes."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, replace

from gateway.core.channels import Channel, DeliveryFailed, LineStatus, OutboundMessage, StatusReport
from gateway.core.db import utcnow
from gateway.core.failures import Failure, FailureKind
from gateway.core.logs import event_line, mask_number
from gateway.core.retry import DeliveryPolicy
from gateway.core.states import AttemptOutcome, Channel as ChannelName, DeliveryState, LineState
from gateway.core.store import ClaimedDelivery, ReportMatch, Store

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


EARLY_REPORT_SECONDS = 120.0


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


class Dispatcher:
    def __init__(self, store: Store, channels: list[Channel], policies: dict[ChannelName, DeliveryPolicy],
                 settings: DispatcherSettings) -> None:
        self.store = store
        self.channels = channels
        self.policies = policies
        self.settings = settings
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task] = set()
        self._line_status: dict[str, LineStatus] = {}
        self._dirty: set[str] = set()
        self._failed_lines: dict[int, set[str]] = {}
        self._early_reports: dict[tuple[str, int], tuple[bool, str, float]] = {}
        self._last_progress = time.monotonic()
        self._next_heartbeat = time.monotonic() + settings.line_heartbeat
        # Set once every channel's start() returned (lines opened or given up on): READY=1.
        self.started = asyncio.Event()

    def line_states(self) -> dict[str, str]:
        """Each line's last reported state (up, down, suspended, starting), by label."""
        return {label: status.state for label, status in self._line_status.items()}

    # --- ChannelEvents ---------------------------------------------------------
    def status_reports(self, line: str, reports: list[StatusReport]) -> None:
        matches = self.store.record_status_reports(line, reports)
        for report, matched in zip(reports, matches):
            if matched:
                self._log_report(matched, line, report)
            else:
                # The report can beat its own +CMGS bookkeeping: the worker thread resolves
                # the send and the modem reports within milliseconds, before _deliver has
                # stored the parts. Keep it briefly and apply it once the parts exist. (A
                # crash in that window leaves the delivery 'submitting': it is resent anyway.)
                self._early_reports[(line, report.reference)] = (report.delivered, report.detail, time.monotonic())
        self._last_progress = time.monotonic()
        self._wake.set()

    def _apply_early_reports(self, line: str, references: list[int]) -> None:
        early = [(reference, self._early_reports.pop((line, reference), None)) for reference in references]
        reports = [StatusReport(reference, kept[0], kept[1]) for reference, kept in early if kept is not None]
        if reports:
            for report, matched in zip(reports, self.store.record_status_reports(line, reports)):
                if matched:
                    self._log_report(matched, line, report)

    @staticmethod
    def _log_report(matched: ReportMatch, line: str, report: StatusReport) -> None:
        log.info(event_line("status_report", alert=matched.alert_id, delivery=matched.delivery_id,
                            channel=ChannelName.SMS,
                            line=line, to=mask_number(matched.e164),
                            outcome="delivered" if report.delivered else "not_delivered", ref=report.reference,
                            detail=report.detail))

    def _forget_old_reports(self) -> None:
        horizon = time.monotonic() - EARLY_REPORT_SECONDS
        for key in [k for k, (_, _, at) in self._early_reports.items() if at < horizon]:
            del self._early_reports[key]
            log.info("status report on %s for unknown reference %d", *key)

    def inbound_sms(self, line: str, sender: str, text: str, received_at: dt.datetime) -> None:
        self.store.record_inbound(line, sender, text, received_at)
        log.info("inbound SMS on %s from %s", line, mask_number(sender))

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
                          line: str | None, answered_at: dt.datetime | None, cause: int | None) -> None:
        state = self.store.record_late_call_outcome(attempt_id, outcome, line=line, answered_at=answered_at,
                                                    cause=cause)
        log.info(event_line("late_call", delivery=delivery_id, attempt=attempt_id, line=line,
                            outcome=outcome, state=state))
        self._wake.set()

    # --- running -----------------------------------------------------------------
    async def run(self, stop: asyncio.Event, *, once: bool = False) -> int:
        """Run until ``stop`` is set (or, with ``once``, until the work is drained). Returns an exit code."""
        recovered = self.store.recover_interrupted()
        if recovered:
            log.warning("%d deliveries were in flight when the engine last stopped: resending them, "
                        "flagged as possible duplicates", recovered)
        for channel in self.channels:
            await channel.start(self)
        self.started.set()
        flusher = asyncio.create_task(self._flush_status_forever())
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
                    finished, code = self._drained()
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
            # Nobody drives the lines now: say so, rather than leave the last "up" for the
            # CLI and the panel to count as capacity (signal, operator, counters are kept).
            # (A line already down or out of rotation keeps that state and its error.)
            for label, status in self._line_status.items():
                if status.state in (LineState.UP, LineState.STARTING):
                    self._line_status[label] = replace(status, state=LineState.STOPPED, in_use=0)
                    self._dirty.add(label)
            self._flush_status()
            # What ended with this run is 'completed' now, not when the engine next starts.
            self.store.complete_finished_alerts()
        return exit_code

    def _dispatch_round(self) -> bool:
        started = False
        for channel in self.channels:
            slots = channel.free_slots()
            if slots <= 0:
                continue
            for claim in self.store.claim(channel.name, slots):
                task = asyncio.create_task(self._deliver(channel, claim))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                started = True
        return started

    async def _deliver(self, channel: Channel, claim: ClaimedDelivery) -> None:
        message = OutboundMessage(delivery_id=claim.delivery_id, alert_id=claim.alert_id, number=claim.e164,
                                  text=claim.text, language=claim.language, audio_path=claim.audio_path,
                                  possible_duplicate=claim.possible_duplicate,
                                  avoid_lines=frozenset(self._failed_lines.get(claim.delivery_id, ())),
                                  attempt_id=claim.attempt_id)
        policy = self.policies[channel.name]
        try:
            receipt = await channel.submit(message)
        except DeliveryFailed as failure:
            verdict = policy.after_failure(claim.policy, claim.attempts, claim.submissions, failure, utcnow())
            state = self.store.record_result(claim, verdict, failure=failure)
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
            self.store.record_result(claim, verdict, failure=failure)
        else:
            # The line is free again: let the main loop hand it the next delivery
            # before this one's bookkeeping, so the modem is not idle meanwhile.
            self._wake.set()
            await asyncio.sleep(0)
            verdict = policy.after_success(claim.policy, claim.attempts, claim.submissions, receipt, utcnow())
            state = self.store.record_result(claim, verdict, receipt=receipt)
            if receipt.references and self._early_reports:
                self._apply_early_reports(receipt.line, receipt.references)
            self._failed_lines.pop(claim.delivery_id, None)
            # SMS: accepted by the network (sent); voice: how the call ended (confirmed, answered, ...).
            log.info(event_line("submitted" if channel.name == ChannelName.SMS else "call", alert=claim.alert_id,
                                delivery=claim.delivery_id, channel=channel.name, line=receipt.line,
                                to=mask_number(claim.e164), outcome=receipt.outcome, state=state,
                                parts=len(receipt.references) or None))
        self._last_progress = time.monotonic()
        self._wake.set()

    def _drained(self) -> tuple[bool, int]:
        if self._inflight:
            return False, 0
        unsent = awaiting = 0
        for channel in self.channels:
            u, a, _next = self.store.work_left(channel.name)
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

    async def _flush_status_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.status_flush_interval)
            self._flush_status()

    def _flush_status(self) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.settings.line_heartbeat
            self._dirty.update(self._line_status)
        dirty, self._dirty = self._dirty, set()
        if dirty:
            self.store.record_line_statuses([self._line_status[label] for label in dirty])
        if self._early_reports:
            self._forget_old_reports()
