"""systemd notifications: READY=1, WATCHDOG=1 from the event loop, STATUS= lines.

The engine gets a ``Notifier`` from the composition root. The watchdog pings
come from a task on the engine's own event loop: if the loop stalls (a
blocking call, a deadlock), the pings stop, systemd kills the engine after
WatchdogSec and restarts it. The socket itself is the ``sdnotify`` package's,
opened only when systemd asked for notifications.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Protocol

import sdnotify

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def notify(self, state: str) -> None: ...


class NullNotifier:
    """Not started by systemd (or no notifications wanted): say nothing."""

    def notify(self, state: str) -> None:
        pass


def notifier_from_environment(environ: Mapping[str, str] = os.environ) -> Notifier:
    """The systemd notifier when NOTIFY_SOCKET is set, else a silent one."""
    if not environ.get("NOTIFY_SOCKET"):
        return NullNotifier()
    return sdnotify.SystemdNotifier()   # opens the datagram socket


def watchdog_interval(environ: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises.

    None when no watchdog is configured, or when it is meant for another process
    (WATCHDOG_PID set to a different pid).
    """
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 1_000_000 / 2


def lines_summary(states: Mapping[str, str]) -> str:
    """STATUS= text: e.g. '3 lines up, 1 down: m2'. ASCII only (sdnotify sends latin-1)."""
    if not states:
        return "no line configured"
    counts = Counter(states.values())
    text = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    troubled = sorted(label for label, state in states.items() if state != "up")
    return f"lines: {text}" + (f" ({', '.join(troubled)} not up)" if troubled else "")


async def supervise(notifier: Notifier, started: asyncio.Event, status: Callable[[], str], *,
                    watchdog: float | None, status_interval: float = 5.0) -> None:
    """READY=1 once ``started`` is set, then WATCHDOG=1 every ``watchdog`` seconds and
    STATUS= whenever ``status()`` changes. Runs until cancelled."""
    if watchdog is not None:
        # Until READY the start timeout applies, not the watchdog; pinging early is harmless.
        notifier.notify("WATCHDOG=1")
    while not started.is_set():
        try:
            await asyncio.wait_for(started.wait(), watchdog or 3600)
        except asyncio.TimeoutError:
            notifier.notify("WATCHDOG=1")
    last = status()
    notifier.notify(f"READY=1\nSTATUS=running; {last}")
    log.info("engine ready: %s", last)
    period = min(watchdog, status_interval) if watchdog is not None else status_interval
    while True:
        await asyncio.sleep(period)
        if watchdog is not None:
            notifier.notify("WATCHDOG=1")
        current = status()
        if current != last:
            notifier.notify(f"STATUS=running; {current}")
            last = current
