"""Which serial port holds a modem: its configured port or glob, else its IMEI under the udev names.

Used from the modem's own thread: opening a port talks to the modem (the
driver's open reads the IMEI before it sends the PIN). The PortRegistry is
shared by every worker of the pool, so a glob never takes a sibling's modem.
"""
from __future__ import annotations

import glob
import logging
import os
import threading
from collections.abc import Callable

from modem.driver import ModemDriver, ModemError, PortUnavailable, WrongModem

log = logging.getLogger(__name__)


def is_glob(pattern: str) -> bool:
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


class PortFinder:
    """Opens one modem wherever it is now, and keeps its port taken until ``release``.

    The IMEI it looks for is the configured one, else the one the first open
    found: from then on the same modem is wanted, whatever port name it gets.
    """

    def __init__(self, label: str, pattern: str, expected_imei: str | None, *, scan_dir: str | None,
                 ports: PortRegistry, make_driver: Callable[[str], ModemDriver]) -> None:
        self.label = label
        self.pattern = pattern
        self.expected_imei = expected_imei or None
        self.scan_dir = scan_dir
        self._ports = ports
        self._make_driver = make_driver
        self._taken: str | None = None

    def open(self) -> tuple[ModemDriver | None, str | None]:
        """The opened driver, or None and what is wrong (for the line's last error)."""
        pattern = self.pattern
        candidates = self._candidates()
        driver, problems = self._open_first(candidates)
        last_problem = problems[-1][0] if problems else \
            f"{pattern} is in use by another line" if candidates else f"no port matches {pattern}"
        if driver is None and not is_glob(pattern) and problems and problems[-1][1] in ("absent", "other"):
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
                    f"{last_problem}; no {self.scan_dir}/modem-* holds IMEI {self.expected_imei}"
        if driver is None:
            return None, last_problem
        self.expected_imei = self.expected_imei or driver.imei
        return driver, None

    def release(self) -> None:
        """The driver was closed: its port may be taken by a sibling (or by us again)."""
        if self._taken is not None:
            self._ports.release(self._taken)
            self._taken = None

    def _candidates(self) -> list[str]:
        pattern = self.pattern
        return sorted(glob.glob(pattern)) if is_glob(pattern) else [pattern]

    def _scan_candidates(self, tried: list[str]) -> list[str]:
        """The stable names under the scan directory, for a fixed port that went missing or
        holds another modem: a dongle moved to another USB socket gets a new path-based
        name, and the IMEI says which name it has now."""
        if not self.expected_imei or not self.scan_dir:
            return []
        seen = {os.path.realpath(port) for port in tried}
        found = []
        for port in sorted(glob.glob(os.path.join(self.scan_dir, "modem-*"))):
            # udev gives one device several names (by serial, by path): ask each device once.
            real = os.path.realpath(port)
            if real not in seen:
                seen.add(real)
                found.append(port)
        return found

    def _open_first(self, candidates: list[str]) -> tuple[ModemDriver | None, list[tuple[str, str]]]:
        """Open the first candidate that holds our modem; else None and each port's problem
        with its kind: "absent" (cannot be opened), "other" (another modem), "ours" (our
        IMEI, then a failure: PIN, no answer)."""
        problems: list[tuple[str, str]] = []
        for port in candidates:
            key = self._ports.take(port)
            if key is None:
                continue
            driver = self._make_driver(port)
            try:
                # With an expected IMEI the driver refuses another modem before our PIN
                # reaches its SIM or its stored reports are read.
                driver.open(self.expected_imei)
            except ModemError as exc:
                self._ports.release(key)
                kind = "absent" if isinstance(exc, PortUnavailable) else "other" if isinstance(exc, WrongModem) \
                    else "ours"
                problems.append((str(exc), kind))
                continue
            if self.expected_imei and driver.imei != self.expected_imei:
                # The session's own AT+CGSN disagrees with the one read before it: not ours either.
                driver.close()
                self._ports.release(key)
                problems.append((f"{port} holds IMEI {driver.imei}, expected {self.expected_imei}", "other"))
                continue
            self._taken = key
            return driver, problems
        return None, problems
