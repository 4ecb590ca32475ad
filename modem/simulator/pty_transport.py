"""One simulated modem behind a real pseudo-terminal, served by a shared asyncio loop.

The simulator keeps its own slave fd open so a client closing the port does
not make the master read fail with EIO (it still handles EIO). Output of a
modem is written strictly in order: a per-port queue with one loop timer for
its head, so thousands of pending actions cost one heap entry per modem.
"""
from __future__ import annotations

import asyncio
import collections
import errno
import fcntl
import logging
import os
import termios
import time
import tty
from pathlib import Path
from typing import Callable

from .at_engine import Action, SimulatedModem

TIOCGEXCL = 0x80045440  # Linux: is TIOCEXCL set? (not in the termios module)
# Timers of the network's side (a status report, an SMS on its way): they outlive an unplug.
NETWORK_TIMERS = frozenset({"status_report", "incoming", "network_resend"})

log = logging.getLogger(__name__)


class PtyPort:
    def __init__(self, loop: asyncio.AbstractEventLoop, modem: SimulatedModem,
                 link_dir: Path | None, on_event: Callable[[dict, "PtyPort"], None], *,
                 on_bytes: Callable[[str, bytes, "PtyPort"], None] | None = None) -> None:
        self.loop, self.modem, self.link_dir, self.on_event = loop, modem, link_dir, on_event
        # "<" for what the client wrote, ">" for what the modem answered: the --trace file.
        self.on_bytes = on_bytes
        self.master: int | None = None
        self.slave: int | None = None
        self.port: str | None = None
        self._queue: collections.deque[tuple[float, Action]] = collections.deque()
        self._head_handle: asyncio.TimerHandle | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._last_due = 0.0
        self.last_rx = 0.0
        self.dropped_bytes = 0
        self._dropping = False
        self.plug_count = 0

    @property
    def link(self) -> Path | None:
        return self.link_dir / self.modem.name if self.link_dir else None

    @property
    def plugged(self) -> bool:
        return self.master is not None

    # ----- plug / unplug ------------------------------------------------------
    def plug(self) -> None:
        """Power the modem on behind a NEW pty (like a USB modem re-enumerating)."""
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)  # until a client configures it: no echo back into the master
        os.set_blocking(master, False)
        self.master, self.slave = master, slave
        self.port = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.port)
            tmp.replace(self.link)  # atomic, like udev updating a symlink
        self.loop.add_reader(master, self._readable)
        self.plug_count += 1
        self.last_rx = time.time()
        self.schedule(self.modem.power_on(time.time()))

    def power_cycle(self) -> None:
        """Restart the modem on the same pty (no re-enumeration)."""
        self._cancel_output()
        self.modem.power_off()
        self.schedule(self.modem.power_on(time.time()))

    def _cancel_output(self) -> None:
        for handle in [self._head_handle, *self._timers]:
            if handle is not None:
                handle.cancel()
        self._head_handle, self._timers = None, set()
        self._queue.clear()
        self._last_due = 0.0

    def unplug(self) -> None:
        """Clients see EIO/hangup on their next read; the symlink disappears."""
        if self.master is None:
            return
        self.modem.power_off()
        self.loop.remove_reader(self.master)
        self._cancel_output()
        if self.link is not None and self.link.is_symlink() and os.readlink(self.link) == self.port:
            self.link.unlink()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError as exc:
                log.warning("modem simulator %s: closing %s at unplug failed: %s", self.modem.name, self.port, exc)
        self.master = self.slave = None

    # ----- input --------------------------------------------------------------
    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                log.error("modem simulator %s: reading %s failed: %s; trying again in 0.5 s", self.modem.name,
                          self.port, exc)
            # No slave open anywhere (only if our own slave fd was lost): wait for a reopen.
            self.loop.remove_reader(self.master)
            self.loop.call_later(0.5, self._reattach)
            return
        if data:
            self.last_rx = time.time()
            if self.on_bytes is not None:
                self.on_bytes("<", data, self)
            self.schedule(self.modem.feed(data, time.time()))

    def _reattach(self) -> None:
        if self.master is not None:
            self.loop.add_reader(self.master, self._readable)

    def release_stale_exclusive(self, idle_seconds: float) -> bool:
        """Clear a TIOCEXCL left by a client that has gone away.

        gammu sets TIOCEXCL and never clears it; on a real port the last close
        clears it, but our own slave fd keeps the pty open, so without this a
        second non-root gammu would get EBUSY forever.
        """
        if self.slave is None or time.time() - self.last_rx < idle_seconds:
            return False
        flag = bytearray(4)
        try:
            fcntl.ioctl(self.slave, TIOCGEXCL, flag)
            if int.from_bytes(flag, "little"):
                fcntl.ioctl(self.slave, termios.TIOCNXCL)
                return True
        except OSError as exc:
            log.warning("modem simulator %s: cannot clear a stale TIOCEXCL on %s: %s", self.modem.name, self.port, exc)
        return False

    # ----- output -------------------------------------------------------------
    def schedule(self, actions: list[Action]) -> None:
        now = self.loop.time()
        for action in actions:
            if action.timer is not None and action.timer.kind in NETWORK_TIMERS:
                # Network-side: survives an unplug (see SimulatedModem.network_pending, network_sms).
                self.loop.call_later(action.delay, self._fire_timer, action)
            elif action.timer is not None:
                handle = self.loop.call_later(action.delay, self._fire_timer, action)
                self._timers.add(handle)
            if action.data or action.event:
                due = max(now + action.delay, self._last_due)
                self._last_due = due
                self._queue.append((due, action))
        self._arm()

    def _arm(self) -> None:
        if self._head_handle is None and self._queue:
            self._head_handle = self.loop.call_at(self._queue[0][0], self._drain)

    def _drain(self) -> None:
        self._head_handle = None
        now = self.loop.time()
        while self._queue and self._queue[0][0] <= now + 0.0005:
            _, action = self._queue.popleft()
            if action.data:
                self._write(action.data)
            if action.event:
                self.on_event(action.event, self)
        self._arm()

    def _fire_timer(self, action: Action) -> None:
        self._timers = {h for h in self._timers if not h.cancelled() and h.when() > self.loop.time()}
        if self.master is not None:
            try:
                actions = self.modem.on_timer(action.timer, time.time())
            except Exception:  # noqa: BLE001 - a simulator bug: logged with the port, the loop goes on
                log.exception("modem simulator %s on %s: the %s timer failed", self.modem.name, self.port,
                              action.timer.kind)
                return
            self.schedule(actions)
        elif action.timer.kind == "status_report":
            self.modem.network_pending.append(action.timer)
        elif action.timer.kind == "incoming":
            self.modem.network_sms.append(action.timer.payload[0])   # sent once the modem is back

    def _write(self, data: bytes) -> None:
        if self.master is None:
            return
        try:
            written = os.write(self.master, data)
            if self.on_bytes is not None and written:
                self.on_bytes(">", data[:written], self)
        except BlockingIOError:
            written = 0  # nobody is reading and the pty buffer is full: bytes are lost, as on a UART
        except OSError as exc:
            written = 0
            log.warning("modem simulator %s: writing %d bytes to %s failed: %s", self.modem.name, len(data),
                        self.port, exc)
        if written < len(data) and not self._dropping:
            # Once per run of losses (a port nobody reads drops every URC): logged, and counted in status.
            log.info("modem simulator %s: %s is not being read; output is dropped (%d bytes so far)",
                     self.modem.name, self.port, self.dropped_bytes + len(data) - written)
        self._dropping = written < len(data)
        self.modem.counters.bytes_out += written
        self.dropped_bytes += len(data) - written

    def status(self) -> dict:
        return {"port": self.port, "link": str(self.link) if self.link else None,
                "plugged": self.plugged, "plug_count": self.plug_count,
                "dropped_bytes": self.dropped_bytes, **self.modem.status()}
