"""One modem, one thread.

python-gsmmodem-new blocks, so each modem gets a thread that owns its driver;
the event loop hands it jobs and gets the results back through futures
resolved with ``call_soon_threadsafe`` (the pattern of Home Assistant's sms
integration). Everything the loop reads (state, busy, counters) is written on
the loop thread only.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import glob
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

from gateway.channels import LineStatus
from gateway.config import ModemConfig
from gateway.sms_text import SubmitPdu
from modem.driver import Health, ModemDriver, ModemError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    send_timeout: float = 60.0
    error_threshold: int = 3
    probe_interval: float = 60.0
    health_interval: float = 30.0
    reopen_interval: float = 2.0


class PortRegistry:
    """Ports currently owned by one of our workers, so a glob never steals a sibling's modem."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owned: set[str] = set()

    def take(self, port: str) -> bool:
        with self._lock:
            if port in self._owned:
                return False
            self._owned.add(port)
            return True

    def release(self, port: str) -> None:
        with self._lock:
            self._owned.discard(port)


class ModemWorker:
    def __init__(self, config: ModemConfig, *, loop: asyncio.AbstractEventLoop, settings: WorkerSettings,
                 ports: PortRegistry, sent_today: int,
                 on_status_report: Callable[[str, int, bool, str], None],
                 on_incoming: Callable[[str, str, str], None],
                 on_status: Callable[[LineStatus], None],
                 on_free: Callable[[], None],
                 driver_factory: Callable[..., ModemDriver] = ModemDriver) -> None:
        self.config = config
        self.label = config.label
        self._loop = loop
        self._settings = settings
        self._ports = ports
        self._driver_factory = driver_factory
        self._on_status_report = on_status_report
        self._on_incoming = on_incoming
        self._on_status = on_status
        self._on_free = on_free
        self._jobs: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"modem-{self.label}", daemon=True)
        self._driver: ModemDriver | None = None
        self._port_in_use: str | None = None
        self._expected_imei = config.imei or None
        # Loop-thread state.
        self.state = "starting"
        self.busy = False
        self.next_allowed = 0.0
        self.suspended_until = 0.0
        self.consecutive_errors = 0
        self.sent_today = sent_today
        self._day = dt.date.today()
        self._next_day_check = 0.0
        self.sent_total = 0
        self.failed_total = 0
        self.last_error: str | None = None
        self.health = Health(None, None, None, None)
        self.imei: str | None = None
        self.port: str | None = None
        self.concat_reference = 0
        self._recent: list[tuple[float, int]] = []  # (monotonic time, parts) for the measured rate
        # Set (on the loop) once the first attempt to open the modem ended, up or not:
        # the engine tells systemd it is ready only then.
        self.first_attempt_done = asyncio.Event()

    # --- loop side -------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join, 15)

    def can_take(self, parts: int, now: float) -> bool:
        self._roll_day()
        return (self.state == "up" and not self.busy and now >= self.next_allowed
                and self.sent_today + parts <= self.config.daily_cap)

    def _roll_day(self) -> None:
        # Looked at once a minute: can_take runs for every free-slot count.
        now = time.monotonic()
        if now < self._next_day_check:
            return
        self._next_day_check = now + 60.0
        today = dt.date.today()
        if today != self._day:
            self._day, self.sent_today = today, 0

    def next_concat_reference(self) -> int:
        self.concat_reference = (self.concat_reference + 1) % 256
        return self.concat_reference

    def submit(self, pdus: list[SubmitPdu]) -> asyncio.Future[list[int]]:
        """Start sending; the worker is busy from this very call (no await before it)."""
        self.busy = True
        started = time.monotonic()
        future: asyncio.Future[list[int]] = self._loop.create_future()
        self._jobs.put((pdus, future, started))
        return future

    def job_done(self, parts: int, started: float, ok: bool, line_fault: bool, error: str | None) -> None:
        """Book-keeping after a submit, on the loop thread."""
        now = time.monotonic()
        self.busy = False
        # The operator's per-minute cap spaces segments out from the start of the send.
        self.next_allowed = started + parts * 60.0 / self.config.per_minute
        if ok:
            self.sent_today += parts
            self.sent_total += parts
            self.consecutive_errors = 0
            self._recent.append((now, parts))
        else:
            self.failed_total += 1
            self.last_error = error
            if line_fault:
                self.consecutive_errors += 1
                if self.consecutive_errors >= self._settings.error_threshold and self.state == "up":
                    self.state = "suspended"
                    self.suspended_until = now + self._settings.probe_interval
                    log.warning("modem %s out of rotation after %d errors: %s", self.label,
                                self.consecutive_errors, error)
            else:
                self.consecutive_errors = 0
        self._publish()
        self._on_free()
        if self.next_allowed > now:
            self._loop.call_at(self._loop.time() + (self.next_allowed - now), self._on_free)

    def measured_rate(self) -> float:
        """Segments per minute this modem can do: its cap, or what it really did lately."""
        if self.state != "up":
            return 0.0
        now = time.monotonic()
        self._recent = [(t, n) for t, n in self._recent if now - t < 120]
        cap = self.config.per_minute
        if len(self._recent) < 3:
            return cap
        span = max(1e-3, now - self._recent[0][0])
        return min(cap, sum(n for _, n in self._recent[1:]) * 60.0 / span)

    def status(self) -> LineStatus:
        return LineStatus(channel="sms", label=self.label, state=self.state, port=self.port, imei=self.imei,
                          signal=self.health.signal, registration=self.health.registration,
                          operator=self.health.operator, sim_state=self.health.sim_state,
                          last_error=self.last_error, sent_today=self.sent_today, daily_cap=self.config.daily_cap,
                          sent_total=self.sent_total, failed_total=self.failed_total,
                          rate_per_minute=round(self.measured_rate(), 2))

    def _publish(self) -> None:
        self._on_status(self.status())

    def _set(self, **changes) -> None:
        """Apply state changes coming from the worker thread, on the loop thread."""
        def apply() -> None:
            became_up = changes.get("state") == "up" and self.state != "up"
            for key, value in changes.items():
                setattr(self, key, value)
            if became_up:
                self.consecutive_errors = 0
            self._publish()
            if became_up:
                self._on_free()
        self._call(apply)

    def _call_and_wait(self, fn: Callable, *args, timeout: float = 30.0) -> None:
        """Run ``fn`` on the loop and wait until it returned (i.e. the database committed),
        so the modem's stored copy is deleted only after ours is safe. Raises on failure."""
        done: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed back to the waiting thread
                done.set_exception(exc)
            else:
                done.set_result(None)
        self._loop.call_soon_threadsafe(run)
        done.result(timeout)

    def _call(self, fn: Callable, *args) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed during shutdown
            pass

    # --- thread side -----------------------------------------------------------
    def _run(self) -> None:
        try:
            self._serve()
        finally:
            # Whatever happened (even a bug in _connect), never leave start() waiting.
            self._call(self.first_attempt_done.set)

    def _serve(self) -> None:
        next_health = 0.0
        while not self._stop.is_set():
            driver = self._driver
            if driver is None or not driver.alive:
                self._disconnect()
                connected = self._connect()
                # Queued after _connect's own state change, so the loop sees "up" or
                # "down" before it sees the attempt as done.
                self._call(self.first_attempt_done.set)
                if not connected:
                    self._stop.wait(self._settings.reopen_interval)
                    continue
                next_health = 0.0
            now = time.monotonic()
            if now >= next_health:
                self._read_health()
                next_health = now + self._settings.health_interval
                continue
            if self.state == "suspended" and now >= self.suspended_until:
                self._probe()
                continue
            try:
                job = self._jobs.get(timeout=min(1.0, max(0.05, next_health - now)))
            except queue.Empty:
                continue
            if job is None:
                break
            self._send(*job)
        # Fail what is still queued so no future is left hanging.
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self._finish(job[1], error=ModemError("engine stopping"))
        self._disconnect()

    def _connect(self) -> bool:
        pattern = self.config.port
        candidates = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        last_problem = f"no port matches {pattern}"
        for port in candidates:
            if not self._ports.take(port):
                continue
            driver = self._driver_factory(
                port, self.config.baud, self.config.pin,
                on_status_report=lambda ref, ok, detail: self._call_and_wait(
                    self._on_status_report, self.label, ref, ok, detail),
                on_incoming=lambda sender, text: self._call_and_wait(self._on_incoming, self.label, sender, text),
                on_lost=self._lost)
            try:
                driver.open()
            except ModemError as exc:
                self._ports.release(port)
                last_problem = str(exc)
                continue
            if self._expected_imei and driver.imei != self._expected_imei:
                # A different modem answered on this port (USB renumbering): not ours.
                driver.close()
                self._ports.release(port)
                last_problem = f"{port} holds IMEI {driver.imei}, expected {self._expected_imei}"
                continue
            self._expected_imei = self._expected_imei or driver.imei
            self._driver, self._port_in_use = driver, port
            log.info("modem %s up on %s (IMEI %s, %s %s)", self.label, port, driver.imei,
                     driver.manufacturer, driver.model)
            self._set(state="up", port=port, imei=driver.imei, last_error=None)
            return True
        if self.state != "down" or self.last_error != last_problem:
            self._set(state="down", last_error=last_problem)
        return False

    def _disconnect(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.close()
        if self._port_in_use is not None:
            self._ports.release(self._port_in_use)
            self._port_in_use = None

    def _lost(self, reason: str) -> None:
        log.warning("modem %s: %s", self.label, reason)
        self._set(state="down", last_error=reason)

    def _read_health(self) -> None:
        try:
            health = self._driver.health() if self._driver else None
        except ModemError as exc:
            self._set(last_error=str(exc))
            return
        if health is not None:
            changes: dict = {"health": health}
            if health.registration in ("denied", "unregistered", "searching") and self.state == "up":
                changes.update(state="suspended", suspended_until=time.monotonic() + self._settings.probe_interval,
                               last_error=f"not registered on the network ({health.registration})")
            self._set(**changes)

    def _probe(self) -> None:
        try:
            health = self._driver.health() if self._driver else None
        except ModemError as exc:
            self._set(suspended_until=time.monotonic() + self._settings.probe_interval, last_error=str(exc))
            return
        if health and health.registration in ("home", "roaming"):
            log.info("modem %s back in rotation", self.label)
            self._set(state="up", health=health)
        else:
            self._set(suspended_until=time.monotonic() + self._settings.probe_interval, health=health)

    def _send(self, pdus: list[SubmitPdu], future: asyncio.Future, started: float) -> None:
        from modem.driver import SubmitError  # local: keeps the import graph obvious
        try:
            if self._driver is None:
                raise ModemError("modem not connected")
            references = self._driver.submit(pdus, self._settings.send_timeout)
        except (SubmitError, ModemError) as exc:
            self._finish(future, error=exc)
            return
        except Exception as exc:  # noqa: BLE001 - never leave the loop waiting on a dead thread
            log.exception("modem %s: unexpected error while sending", self.label)
            self._finish(future, error=exc)
            return
        self._finish(future, result=references)

    def _finish(self, future: asyncio.Future, *, result: list[int] | None = None,
                error: BaseException | None = None) -> None:
        def resolve() -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        self._call(resolve)
