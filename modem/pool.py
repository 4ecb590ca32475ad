"""The SMS channel: a pool of GSM modems behind the channel contract."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Callable

from gateway.core.channels import ChannelEvents, DeliveryFailed, LineStatus, OutboundMessage, SubmitReceipt
from gateway.core.config import ModemConfig
from gateway.core.failures import Failure, FailureKind
from gateway.core.sms_text import SmsTextError, encode_submit_pdus, plan_sms
from gateway.core import states
from gateway.core.states import Channel
from modem.driver import ModemDriver, ModemError, SubmitError
from modem.worker import ModemWorker, Moved, PortRegistry, WorkerSettings

log = logging.getLogger(__name__)


class SmsChannel:
    name = Channel.SMS

    def __init__(self, modems: tuple[ModemConfig, ...] | list[ModemConfig], settings: WorkerSettings, *,
                 sent_today: dict[str, int] | None = None,
                 driver_factory: Callable[..., ModemDriver] = ModemDriver,
                 start_timeout: float = 60.0) -> None:
        self._configs = list(modems)
        # How long start() waits for the modems' first open. Below the engine unit's
        # TimeoutStartSec (180 s) with room for the AMI link, so a hung modem delays
        # READY=1 but never gets the engine killed as "failed to start".
        self._start_timeout = start_timeout
        self._settings = settings
        self._sent_today = sent_today or {}
        self._driver_factory = driver_factory
        self.workers: list[ModemWorker] = []
        self._index: dict[str, int] = {}
        self._events: ChannelEvents | None = None
        self._rotation = 0

    async def start(self, events: ChannelEvents) -> None:
        self._events = events
        loop = asyncio.get_running_loop()
        ports = PortRegistry()
        for config in self._configs:
            worker = ModemWorker(
                config, loop=loop, settings=self._settings, ports=ports,
                sent_today=self._sent_today.get(config.label, 0),
                on_status_reports=events.status_reports,
                on_part=events.inbound_part,
                on_status=events.line_status, on_free=events.capacity_available,
                driver_factory=self._driver_factory)
            self._index[config.label] = len(self.workers)
            self.workers.append(worker)
            events.line_status(worker.status())
            worker.start()
        # Return (and so let the engine send READY=1) only once every modem was opened
        # or found missing: a READY engine whose lines are all still "starting" would
        # tell systemd and the operator that the box works before anyone knows.
        waits = [asyncio.create_task(worker.first_attempt_done.wait()) for worker in self.workers]
        if not waits:
            return
        _done, pending = await asyncio.wait(waits, timeout=self._start_timeout)
        for task in pending:
            task.cancel()
        if pending:
            slow = [w.label for w in self.workers if not w.first_attempt_done.is_set()]
            log.warning("modems %s still opening after %g s; ready without them", ", ".join(slow),
                        self._start_timeout)

    async def stop(self) -> None:
        await asyncio.gather(*(worker.stop() for worker in self.workers))

    def lines(self) -> list[LineStatus]:
        return [worker.status() for worker in self.workers]

    def free_slots(self) -> int:
        now = time.monotonic()
        return sum(1 for worker in self.workers if worker.can_take(1, now))

    def rate_per_minute(self) -> float:
        return sum(worker.measured_rate() for worker in self.workers)

    def _pick(self, parts: int, avoid: frozenset[str]) -> ModemWorker | None:
        now = time.monotonic()
        ready = [w for w in self.workers if w.can_take(parts, now)]
        if not ready:
            return None
        preferred = [w for w in ready if w.label not in avoid]
        if not preferred:
            # Only the modem that just failed this delivery is free. While another modem is up (only
            # busy with its own send), the delivery waits for it: a transient failure (CMS 38, a
            # timeout) is retried elsewhere, as the README promises; alone, the same modem tries again.
            if any(w.label not in avoid and w.line.state == states.LineState.UP for w in self.workers):
                return None
            preferred = ready
        # Rotate so the load (and the daily caps) spread over every SIM.
        self._rotation = (self._rotation + 1) % len(self.workers)
        count = len(self.workers)
        # An idle modem before one that would queue the send behind its current one.
        return min(preferred, key=lambda w: (w.queued, (self._index[w.label] - self._rotation) % count))

    async def submit(self, message: OutboundMessage) -> SubmitReceipt:
        try:
            plan = plan_sms(message.text)
        except SmsTextError as exc:
            raise DeliveryFailed(Failure(FailureKind.TEXT, str(exc), permanent=True)) from None
        worker = self._pick(plan.segments, message.avoid_lines)
        if worker is None:
            raise DeliveryFailed(Failure(FailureKind.NO_LINE, "no modem free"), charge_attempt=False)
        try:
            pdus = encode_submit_pdus(message.number, plan, concat_reference=worker.next_concat_reference())
        except ValueError as exc:
            raise DeliveryFailed(Failure(FailureKind.NUMBER, f"cannot encode for {message.number}: {exc}",
                                         permanent=True)) from None
        started_wall = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        started = time.monotonic()
        future = worker.submit(pdus)
        try:
            references = await future
        except SubmitError as exc:
            worker.job_done(len(pdus), started, ok=False, line_fault=exc.verdict.line_fault,
                            error=str(exc.verdict.failure))
            if exc.timed_out:
                worker.stopped_answering(str(exc.verdict.failure))
            raise DeliveryFailed(exc.verdict.failure, line=worker.label, charge_attempt=not exc.modem_gone,
                                 possible_duplicate=exc.maybe_sent) from None
        except Moved as exc:
            worker.job_moved(len(pdus))
            raise DeliveryFailed(Failure(FailureKind.NO_LINE, str(exc)), line=worker.label,
                                 charge_attempt=False) from None
        except (ModemError, Exception) as exc:  # noqa: BLE001 - any other failure is the line's, not the recipient's
            worker.job_done(len(pdus), started, ok=False, line_fault=True, error=str(exc))
            raise DeliveryFailed(Failure(FailureKind.LINE, str(exc) or type(exc).__name__), line=worker.label,
                                 charge_attempt=False) from None
        worker.job_done(len(pdus), started, ok=True, line_fault=False, error=None)
        return SubmitReceipt(line=worker.label, references=references, started_at=started_wall)
