"""One modem, one thread.

python-gsmmodem-new blocks, so each modem gets a thread that owns its driver;
the event loop hands it jobs and gets the results back through futures
resolved with ``call_soon_threadsafe`` (the pattern of Home Assistant's sms
integration). Everything the loop reads (state, queued sends, counters) is written on
the loop thread only.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import glob
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

from gateway.core.channels import LineStatus, StatusReport
from gateway.core.config import ModemConfig
from gateway.core.sms_text import SubmitPdu
from modem.driver import Health, ModemDriver, ModemError, PortUnavailable, WrongModem

log = logging.getLogger(__name__)

# Sends a modem may hold: the one on the wire and one waiting behind it. The
# waiting one goes out the moment +CMGS answers, without a round trip through
# the event loop and the database (which cost each modem ~10% of its time at
# 64 modems). It is 'submitting' in the database from the moment it is handed
# over, so a crash resends it as a possible duplicate, like the one on the wire.
PIPELINE_DEPTH = 2
SILENT_PROBES_BEFORE_REOPEN = 2
# Put in the job queue to wake an idle worker: stored status reports wait to be collected.
_WAKE = object()


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


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


class PortRegistry:
    """Ports currently owned by one of our workers, so a glob never steals a sibling's modem."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owned: set[str] = set()

    def take(self, port: str) -> str | None:
        """The key to release later, or None when a sibling owns the device.

        By device, not by name: udev links one tty under several names, and a
        second open of a modem in use (even our ESC) would break its exchange.
        The key is kept because a link may point elsewhere by release time.
        """
        device = os.path.realpath(port)
        with self._lock:
            if device in self._owned:
                return None
            self._owned.add(device)
            return device

    def release(self, key: str) -> None:
        with self._lock:
            self._owned.discard(key)


class ModemWorker:
    def __init__(self, config: ModemConfig, *, loop: asyncio.AbstractEventLoop, settings: WorkerSettings,
                 ports: PortRegistry, sent_today: int,
                 on_status_reports: Callable[[str, list[StatusReport]], None],
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
        self._on_status_reports = on_status_reports
        self._on_incoming = on_incoming
        self._on_status = on_status
        self._on_free = on_free
        self._jobs: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._idle = False         # thread side: waiting for a job (a wake-up is worth sending)
        self._thread = threading.Thread(target=self._run, name=f"modem-{self.label}", daemon=True)
        self._driver: ModemDriver | None = None
        self._port_in_use: str | None = None
        self._expected_imei = config.imei or None
        # Loop-thread state.
        self.state = "starting"
        self._wire_next = 0.0      # thread side: earliest start of the next write
        self._silent_probes = 0    # thread side: probes in a row the modem did not answer
        self.queued = 0            # sends handed to the thread and not finished
        self.queued_parts = 0
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
        return (self.state == "up" and self.queued < PIPELINE_DEPTH and now >= self.next_allowed
                and self.sent_today + self.queued_parts + parts <= self.config.daily_cap)

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
        """Hand a send to the thread; counted from this very call (no await before it)."""
        self.queued += 1
        self.queued_parts += len(pdus)
        started = time.monotonic()
        # The operator's per-minute cap spaces sends out: the next one may be handed
        # over while this one is on the wire, but not sooner than the cap allows (the
        # thread also spaces what it writes, see _send).
        self.next_allowed = max(self.next_allowed, started) + len(pdus) * 60.0 / self.config.per_minute
        future: asyncio.Future[list[int]] = self._loop.create_future()
        self._jobs.put((pdus, future, started))
        if self.next_allowed > started + 1e-3:
            self._loop.call_at(self._loop.time() + (self.next_allowed - started), self._on_free)
        return future

    def job_done(self, parts: int, started: float, ok: bool, line_fault: bool, error: str | None) -> None:
        """Book-keeping after a submit, on the loop thread."""
        now = time.monotonic()
        self.queued -= 1
        self.queued_parts -= parts
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
                          operator=self.health.operator, sim_state=self.health.sim_state, smsc=self.health.smsc,
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
        self._call_soon(fn, *args).result(timeout)

    def _call_soon(self, fn: Callable, *args) -> concurrent.futures.Future:
        """Run ``fn`` on the loop without waiting; the future ends when it returned."""
        done: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed back through the future
                done.set_exception(exc)
            else:
                done.set_result(None)
        try:
            self._loop.call_soon_threadsafe(run)
        except RuntimeError as exc:  # loop closed during shutdown
            done.set_exception(exc)
        return done

    def _wake_up(self) -> None:
        if self._idle:
            self._jobs.put(_WAKE)

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
                    # A send handed over just before the port went must not wait for it.
                    if self._fail_queued(ModemError(f"modem {self.label} not connected")):
                        break
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
            if self.state == "suspended" and now >= self.suspended_until:
                self._probe()
                continue
            # Stored status reports: at once when no send waits, else in batches.
            if self._driver is not None:
                self._driver.service_reports(idle=self._jobs.empty())
            timeout = min(1.0, max(0.05, next_health - now))
            self._idle = True
            try:
                job = self._jobs.get(timeout=timeout)
            except queue.Empty:
                continue
            finally:
                self._idle = False
            if job is _WAKE:
                continue
            if job is None:
                break
            if self._driver is not None:
                # A modem drops the status reports its memory cannot hold.
                self._driver.make_room_for_reports()
            self._send(*job)
        # Fail what is still queued so no future is left hanging.
        self._fail_queued(ModemError("engine stopping"))
        if self._driver is not None and self._driver.alive:
            # Delete the reports the engine has committed, so the next start does not read them again.
            self._driver.finish_reports()
        self._disconnect()

    def _fail_queued(self, error: ModemError) -> bool:
        """Fail every send waiting in the queue; True when the stop sentinel was among them."""
        stopping = False
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return stopping
            if job is None:
                stopping = True
            elif job is not _WAKE:
                self._finish(job[1], error=error)

    def _candidates(self) -> list[str]:
        pattern = self.config.port
        return sorted(glob.glob(pattern)) if _is_glob(pattern) else [pattern]

    def _scan_candidates(self, tried: list[str]) -> list[str]:
        """The stable names under the scan directory, for a fixed port that went missing or
        holds another modem: a dongle moved to another USB socket gets a new path-based
        name, and the IMEI says which name it has now."""
        if not self._expected_imei or not self._settings.scan_dir:
            return []
        seen = {os.path.realpath(port) for port in tried}
        found = []
        for port in sorted(glob.glob(os.path.join(self._settings.scan_dir, "modem-*"))):
            # udev gives one device several names (by serial, by path): ask each device once.
            real = os.path.realpath(port)
            if real not in seen:
                seen.add(real)
                found.append(port)
        return found

    def _connect(self) -> bool:
        pattern = self.config.port
        candidates = self._candidates()
        driver, problems = self._open_first(candidates)
        last_problem = problems[-1][0] if problems else \
            f"{pattern} is in use by another line" if candidates else f"no port matches {pattern}"
        if driver is None and not _is_glob(pattern) and problems and problems[-1][1] in ("absent", "other"):
            scanned = self._scan_candidates(candidates)
            driver, scan_problems = self._open_first(scanned)
            if driver is not None:
                log.info("modem %s (IMEI %s) found on %s instead of %s", self.label, driver.imei,
                         driver.port, pattern)
            elif scanned:
                # Our IMEI answered on a scanned port and then failed (PIN, timeout): say that;
                # else the configured port's problem, and that the scan found nothing.
                ours = [problem for problem, kind in scan_problems if kind == "ours"]
                last_problem = ours[-1] if ours else \
                    f"{last_problem}; no {self._settings.scan_dir}/modem-* holds IMEI {self._expected_imei}"
        if driver is None:
            if self.state != "down" or self.last_error != last_problem:
                self._set(state="down", last_error=last_problem)
            return False
        self._expected_imei = self._expected_imei or driver.imei
        self._driver = driver
        log.info("modem %s up on %s (IMEI %s, %s %s)", self.label, driver.port, driver.imei,
                 driver.manufacturer, driver.model)
        self._set(state="up", port=driver.port, imei=driver.imei, last_error=None)
        return True

    def _open_first(self, candidates: list[str]) -> tuple[ModemDriver | None, list[tuple[str, str]]]:
        """Open the first candidate that holds our modem; else None and each port's problem
        with its kind: "absent" (cannot be opened), "other" (another modem), "ours" (our
        IMEI, then a failure: PIN, no answer)."""
        problems: list[tuple[str, str]] = []
        for port in candidates:
            key = self._ports.take(port)
            if key is None:
                continue
            driver = self._driver_factory(
                port, self.config.baud, self.config.pin,
                on_status_reports=lambda reports: self._call_soon(self._on_status_reports, self.label, reports),
                on_incoming=lambda sender, text: self._call_and_wait(self._on_incoming, self.label, sender, text),
                on_lost=self._lost, on_reports_waiting=self._wake_up)
            try:
                # With an expected IMEI the driver refuses another modem before our PIN
                # reaches its SIM or its stored reports are read.
                driver.open(self._expected_imei)
            except ModemError as exc:
                self._ports.release(key)
                kind = "absent" if isinstance(exc, PortUnavailable) else "other" if isinstance(exc, WrongModem) \
                    else "ours"
                problems.append((str(exc), kind))
                continue
            if self._expected_imei and driver.imei != self._expected_imei:
                # The session's own AT+CGSN disagrees with the one read before it: not ours either.
                driver.close()
                self._ports.release(key)
                problems.append((f"{port} holds IMEI {driver.imei}, expected {self._expected_imei}", "other"))
                continue
            self._port_in_use = key
            return driver, problems
        return None, problems

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
            self._silent_probes += 1
            if self._silent_probes >= SILENT_PROBES_BEFORE_REOPEN:
                # A modem that stopped answering is often stuck mid-command: reopening
                # the port starts with ESC (see ModemDriver._wake), which frees it.
                log.warning("modem %s silent through %d probes: reopening its port", self.label,
                            self._silent_probes)
                self._silent_probes = 0
                self._disconnect()
            self._set(suspended_until=time.monotonic() + self._settings.probe_interval, last_error=str(exc))
            return
        self._silent_probes = 0
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
            # The per-minute cap counted from what really went on the wire: a send
            # that waited behind another must not follow it closer than the cap allows.
            wait = self._wire_next - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._wire_next = time.monotonic() + len(pdus) * 60.0 / self.config.per_minute
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
