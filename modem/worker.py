"""One modem, one thread.

python-gsmmodem-new blocks, so each modem gets a thread that owns its driver;
the event loop hands it sends and gets the results back through futures
resolved on the loop (see loop_bridge.py). Everything the loop reads (the
line's state, queued sends, counters) is written on the loop thread only.

This module wires the pieces together; each decision lives in its own:
port_discovery (which port holds the modem), send_queue (the sends handed
over), budget (per-minute and daily caps, the measured rate), suspension
(out of rotation and back), line_status (what is reported).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from gateway.core import states
from gateway.core.channels import LineStatus, ReceivedPart, StatusReport
from gateway.core.config import ModemConfig
from gateway.core.sms_text import SubmitPdu
from modem.budget import SendBudget, WirePacer
from modem.driver import ModemDriver, ModemError, SubmitError
from modem.line_status import LineState
from modem.loop_bridge import LoopBridge
from modem.port_discovery import PortFinder, PortRegistry
from modem.send_queue import SendJob, SendQueue
from modem.suspension import SILENT_PROBES_BEFORE_REOPEN, Suspension, off_network

# PortRegistry is named here too: the pool imports what it builds workers with from this module.
__all__ = ["ModemWorker", "Moved", "PortRegistry", "WorkerSettings"]

log = logging.getLogger(__name__)


class Moved(ModemError):
    """A send handed back unwritten (its modem hung): not the modem's send failing, nor the recipient's."""


@dataclass(frozen=True)
class WorkerSettings:
    send_timeout: float = 60.0
    error_threshold: int = 3
    probe_interval: float = 60.0
    health_interval: float = 30.0
    reopen_interval: float = 2.0
    # Where the udev rules put the stable names (systemd/60-allerta-modems.rules); a
    # modem with a known IMEI missing from its fixed port is looked for here. None: never.
    scan_dir: str | None = "/dev/allerta"


class ModemWorker:
    def __init__(self, config: ModemConfig, *, loop: asyncio.AbstractEventLoop, settings: WorkerSettings,
                 ports: PortRegistry, sent_today: int,
                 on_status_reports: Callable[[str, list[StatusReport]], None],
                 on_part: Callable[[ReceivedPart], object],
                 on_status: Callable[[LineStatus], None],
                 on_free: Callable[[], None],
                 driver_factory: Callable[..., ModemDriver] = ModemDriver) -> None:
        self.config = config
        self.label = config.label
        self._loop = loop
        self._bridge = LoopBridge(loop)
        self._settings = settings
        self._driver_factory = driver_factory
        self._on_status_reports = on_status_reports
        self._on_part = on_part
        self._on_status = on_status
        self._on_free = on_free
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"modem-{self.label}", daemon=True)
        # Thread side.
        self._driver: ModemDriver | None = None
        self._finder = PortFinder(self.label, config.port, config.imei, scan_dir=settings.scan_dir, ports=ports,
                                  make_driver=self._make_driver)
        self._pacer = WirePacer(config.per_minute, clock=time.monotonic)
        # Loop side (the suspension's silent-probe count excepted: see suspension.py).
        self._sends = SendQueue()
        self._budget = SendBudget(config.per_minute, config.daily_cap, sent_today, clock=time.monotonic)
        self._suspension = Suspension(settings.error_threshold, settings.probe_interval, clock=time.monotonic)
        self.line = LineState()
        self.concat_reference = 0
        # Set (on the loop) once the first attempt to open the modem ended, up or not:
        # the engine tells systemd it is ready only then.
        self.first_attempt_done = asyncio.Event()

    @property
    def state(self) -> str:
        """The line's state (the tests put a worker in one by hand)."""
        return self.line.state

    @state.setter
    def state(self, value: str) -> None:
        self.line.state = value

    @property
    def queued(self) -> int:
        """Sends handed to the thread and not finished (the pool prefers an idle modem)."""
        return self._sends.queued

    # --- loop side -------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        self._sends.stop()
        await asyncio.to_thread(self._thread.join, 15)

    def can_take(self, parts: int, now: float) -> bool:
        return (self.line.state == states.LineState.UP and self._sends.has_room()
                and self._budget.allows(parts, self._sends.queued_parts, now))

    def next_concat_reference(self) -> int:
        self.concat_reference = (self.concat_reference + 1) % 256
        return self.concat_reference

    def submit(self, pdus: list[SubmitPdu]) -> asyncio.Future[list[int]]:
        """Hand a send to the thread; counted from this very call (no await before it)."""
        # The thread also spaces what it writes (see _send).
        wait = self._budget.reserve(len(pdus))
        future: asyncio.Future[list[int]] = self._loop.create_future()
        self._sends.hand_over(SendJob(pdus, future))
        if wait > 1e-3:
            self._loop.call_at(self._loop.time() + wait, self._on_free)
        return future

    def job_done(self, parts: int, started: float, ok: bool, line_fault: bool, error: str | None) -> None:
        """Book-keeping after a submit, on the loop thread."""
        self._sends.done(parts)
        if ok:
            self._budget.spent(parts)
            self.line.sent_total += parts
        else:
            self.line.failed_total += 1
            self.line.last_error = error
        if self._suspension.send_ended(ok, line_fault) and self.line.state == states.LineState.UP:
            self.line.state = states.LineState.SUSPENDED
            self._suspension.probe_at = self._suspension.next_probe()
            log.warning("modem %s out of rotation after %d errors: %s", self.label,
                        self._suspension.consecutive_errors, error)
        self._publish()
        self._on_free()

    def job_moved(self, parts: int) -> None:
        """A send handed back unwritten: it frees its slot and counts as nothing else."""
        self._sends.done(parts)
        self._on_free()

    def stopped_answering(self, error: str) -> None:
        """A send got no answer within send_timeout (loop side): out of the rotation at once, not after
        error_threshold such sends (each costing send_timeout while the other modems idle), and the send
        waiting behind it goes back unsent to the dispatcher for another modem. The thread probes it
        back as for any suspension (and reopens its port if the probes go unanswered)."""
        if self.line.state == states.LineState.UP:
            self.line.state = states.LineState.SUSPENDED
            self._suspension.probe_at = self._suspension.next_probe()
            self.line.last_error = error
            log.warning("modem %s out of rotation: %s", self.label, error)
            self._publish()
        moved = Moved(f"modem {self.label} stopped answering; moved to another modem")
        for job in self._sends.drain():
            if not job.future.done():
                job.future.set_exception(moved)

    def measured_rate(self) -> float:
        """Segments per minute this modem can do: its cap, or what it really did lately."""
        return self._budget.measured_rate() if self.line.state == states.LineState.UP else 0.0

    def status(self) -> LineStatus:
        return self.line.report(self.label, sent_today=self._budget.sent_today, daily_cap=self.config.daily_cap,
                                rate_per_minute=self.measured_rate())

    def _publish(self) -> None:
        self._on_status(self.status())

    def _set(self, *, probe_at: float | None = None, **changes) -> None:
        """Apply changes to the line coming from the worker thread, on the loop thread;
        ``probe_at``: the suspension's next probe."""
        def apply() -> None:
            became_up = changes.get("state") == states.LineState.UP and self.line.state != states.LineState.UP
            for key, value in changes.items():
                setattr(self.line, key, value)
            if probe_at is not None:
                self._suspension.probe_at = probe_at
            if became_up:
                self._suspension.back_in_rotation()
            self._publish()
            if became_up:
                self._on_free()
        self._bridge.call(apply)

    # --- thread side -----------------------------------------------------------
    def _run(self) -> None:
        try:
            self._serve()
        finally:
            # Whatever happened (even a bug in _connect), never leave start() waiting.
            self._bridge.call(self.first_attempt_done.set)

    def _serve(self) -> None:
        next_health = 0.0
        while not self._stop.is_set():
            driver = self._driver
            if driver is None or not driver.alive:
                self._disconnect()
                connected = self._connect()
                # Queued after _connect's own state change, so the loop sees "up" or
                # "down" before it sees the attempt as done.
                self._bridge.call(self.first_attempt_done.set)
                if not connected:
                    # A send handed over just before the port went must not wait for it.
                    self._fail_queued(ModemError(f"modem {self.label} not connected"))
                    self._stop.wait(self._settings.reopen_interval)
                    continue
                next_health = 0.0
            now = time.monotonic()
            if now >= next_health:
                self._read_health()
                # From after the read: a hung modem's read outlasts a short interval,
                # and the queued sends must still get their turn (and their timeout).
                next_health = time.monotonic() + self._settings.health_interval
                continue
            if self.line.state == states.LineState.SUSPENDED and self._suspension.probe_due(now):
                self._probe()
                continue
            # Stored status reports: at once when no send waits, else in batches.
            if self._driver is not None:
                self._driver.service_reports(idle=self._sends.empty())
                self._driver.service_inbox()
            job = self._sends.take(timeout=min(1.0, max(0.05, next_health - now)))
            if job is None:     # a timeout, a wake-up or the stop: look again
                continue
            if self._driver is not None:
                # A modem drops the status reports its memory cannot hold.
                self._driver.make_room_for_reports()
            self._send(job)
        # Fail what is still queued so no future is left hanging.
        self._fail_queued(ModemError("engine stopping"))
        if self._driver is not None and self._driver.alive:
            # Delete the reports the engine has committed, so the next start does not read them again.
            self._driver.finish_reports()
        self._disconnect()

    def _fail_queued(self, error: ModemError) -> None:
        for job in self._sends.drain():
            self._bridge.resolve(job.future, error=error)

    def _make_driver(self, port: str) -> ModemDriver:
        return self._driver_factory(
            port, self.config.baud, self.config.pin,
            on_status_reports=lambda reports: self._bridge.call_soon(self._on_status_reports, self.label, reports),
            # The future ends with the commit: the modem deletes (or acknowledges) its copy only then.
            on_part=lambda part: self._bridge.call_soon(self._on_part, replace(part, line=self.label)),
            on_lost=self._lost, on_reports_waiting=self._sends.wake, receive=self.config.receive)

    def _connect(self) -> bool:
        driver, problem = self._finder.open()
        if driver is None:
            if self.line.state != states.LineState.DOWN or self.line.last_error != problem:
                self._set(state=states.LineState.DOWN, last_error=problem)
            return False
        self._driver = driver
        log.info("modem %s up on %s (IMEI %s, %s %s)", self.label, driver.port, driver.imei,
                 driver.manufacturer, driver.model)
        self._set(state=states.LineState.UP, port=driver.port, imei=driver.imei, last_error=None)
        return True

    def _disconnect(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.close()
        self._finder.release()

    def _lost(self, reason: str) -> None:
        log.warning("modem %s: %s", self.label, reason)
        self._set(state=states.LineState.DOWN, last_error=reason)

    def _read_health(self) -> None:
        try:
            health = self._driver.health() if self._driver else None
        except ModemError as exc:
            self._set(last_error=str(exc))
            return
        if health is not None:
            if off_network(health.registration) and self.line.state == states.LineState.UP:
                self._set(health=health, state=states.LineState.SUSPENDED, probe_at=self._suspension.next_probe(),
                          last_error=f"not registered on the network ({health.registration})")
            else:
                self._set(health=health)

    def _probe(self) -> None:
        try:
            health = self._driver.health() if self._driver else None
        except ModemError as exc:
            if self._suspension.probe_silent():
                # A modem that stopped answering is often stuck mid-command: reopening
                # the port starts with ESC (see ModemDriver._wake), which frees it.
                log.warning("modem %s silent through %d probes: reopening its port", self.label,
                            SILENT_PROBES_BEFORE_REOPEN)
                self._disconnect()
            self._set(probe_at=self._suspension.next_probe(), last_error=str(exc))
            return
        if self._suspension.probe_answered(health.registration if health else None):
            log.info("modem %s back in rotation", self.label)
            self._set(state=states.LineState.UP, health=health)
        else:
            self._set(probe_at=self._suspension.next_probe(), health=health)

    def _send(self, job: SendJob) -> None:
        waited = time.monotonic() - job.handed_at
        if waited > self._settings.send_timeout:
            # Nothing was written: another modem takes it, no duplicate.
            self._bridge.resolve(job.future, error=Moved(
                f"modem {self.label} busy or silent for {waited:.0f} s; moved to another modem"))
            return
        try:
            if self._driver is None:
                raise ModemError("modem not connected")
            wait = self._pacer.wait()
            if wait > 0:
                time.sleep(wait)
            self._pacer.writing(len(job.pdus))
            references = self._driver.submit(job.pdus, self._settings.send_timeout)
        except (SubmitError, ModemError) as exc:
            self._bridge.resolve(job.future, error=exc)
            return
        except Exception as exc:  # noqa: BLE001 - never leave the loop waiting on a dead thread
            log.exception("modem %s: unexpected error while sending", self.label)
            self._bridge.resolve(job.future, error=exc)
            return
        self._bridge.resolve(job.future, result=references)
