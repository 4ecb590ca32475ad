"""When a modem leaves the rotation, and how it is probed back in.

A modem leaves the rotation (``suspended``) after ``error_threshold`` line
faults in a row (a failure of the recipient, such as an unknown number, does
not count and breaks the series) or when its health read finds it off the
network. From then its thread probes it (a health read) every
``probe_interval`` seconds; registered again, it is back. A modem that does
not answer SILENT_PROBES_BEFORE_REOPEN probes in a row is often stuck
mid-command: its port is reopened, which starts with ESC (see
ModemDriver._wake) and frees it.

Pure decisions with an injected clock (monotonic seconds). The error series
and the probe time are the event loop's (written there only, the probe time
read by the thread); the silent-probe count is the modem thread's.
"""
from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]

SILENT_PROBES_BEFORE_REOPEN = 2
# Registration states (AT+CREG) in which a modem cannot send, and those in which it can.
OFF_NETWORK = ("denied", "unregistered", "searching")
ON_NETWORK = ("home", "roaming")


class Suspension:
    def __init__(self, error_threshold: int, probe_interval: float, *, clock: Clock) -> None:
        self.error_threshold = error_threshold
        self.probe_interval = probe_interval
        self._clock = clock
        self.consecutive_errors = 0
        self.probe_at = 0.0         # while suspended: the next probe, on the clock
        self._silent_probes = 0

    # --- loop side ----------------------------------------------------------------
    def send_ended(self, ok: bool, line_fault: bool) -> bool:
        """Count a send's outcome; True when it is the line fault that takes the modem out."""
        if ok or not line_fault:
            self.consecutive_errors = 0
            return False
        self.consecutive_errors += 1
        return self.consecutive_errors >= self.error_threshold

    def back_in_rotation(self) -> None:
        """The modem is up again: its old errors no longer count."""
        self.consecutive_errors = 0

    # --- either side ----------------------------------------------------------------
    def next_probe(self) -> float:
        """When to probe a modem suspended (or found still unfit) now."""
        return self._clock() + self.probe_interval

    def probe_due(self, now: float) -> bool:
        return now >= self.probe_at

    # --- thread side ----------------------------------------------------------------
    def probe_silent(self) -> bool:
        """A probe got no answer; True when the port must be reopened (the count starts over)."""
        self._silent_probes += 1
        if self._silent_probes < SILENT_PROBES_BEFORE_REOPEN:
            return False
        self._silent_probes = 0
        return True

    def probe_answered(self, registration: str | None) -> bool:
        """A probe got the modem's health; True when it may go back in the rotation."""
        self._silent_probes = 0
        return registration in ON_NETWORK


def off_network(registration: str | None) -> bool:
    """A registration in which a modem that is up must leave the rotation."""
    return registration in OFF_NETWORK
