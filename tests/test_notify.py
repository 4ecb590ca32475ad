"""systemd notifications: READY=1, WATCHDOG=1 from the event loop, STATUS=, over a real NOTIFY_SOCKET."""
import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gateway.core.alerts import AlertRequest, Target
from gateway.core.channels import LineStatus, SubmitReceipt
from gateway.core.dispatcher import Dispatcher, DispatcherSettings
from gateway.shell.notify import lines_summary, watchdog_interval
from gateway.core.retry import SmsPolicy, SmsRetry
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import engine_config, wait_until


class NotifySocket:
    """A unix datagram socket standing in for systemd's; records (monotonic time, message)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            for line in data.decode("latin-1").splitlines():
                self.messages.append((time.monotonic(), line))

    def times(self, message: str) -> list[float]:
        return [t for t, m in list(self.messages) if m == message]

    def starting(self, prefix: str) -> list[str]:
        return [m for _, m in list(self.messages) if m.startswith(prefix)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    receiver = NotifySocket(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(receiver.path))
    yield receiver
    receiver.close()


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_us():
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, pid=42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "42"}, pid=42) == 1.0


def test_status_line_names_the_lines_that_are_not_up():
    assert lines_summary({"m0": "up", "m1": "down"}) == "lines: 1 down, 1 up (m1 not up)"
    assert lines_summary({}) == "no line configured"


class StallingChannel:
    """Its first submit blocks the event loop (a blocking call where none belongs)."""

    name = "sms"

    def __init__(self, stall: float) -> None:
        self.stall = stall
        self.stalled_at: tuple[float, float] | None = None

    async def start(self, events):
        events.line_status(LineStatus(channel="sms", label="s1", state="up"))

    async def stop(self):
        pass

    def free_slots(self):
        return 1 if self.stalled_at is None else 0

    def rate_per_minute(self):
        return 60.0

    async def submit(self, message):
        await asyncio.sleep(0.5)  # the loop runs freely first
        started = time.monotonic()
        time.sleep(self.stall)   # deliberately blocks the whole loop
        self.stalled_at = (started, time.monotonic())
        return SubmitReceipt(line="s1", references=[1])


def test_a_stalled_event_loop_stops_the_watchdog_pings(contacts, notify_socket, monkeypatch):
    """run_engine's own wiring, with a dispatcher whose only send blocks the loop for 1.5 s."""
    import gateway.shell.composition as composition
    contacts.alerts.create(AlertRequest(text="x", target=Target(numbers=("+393331110009",))))
    channel = StallingChannel(stall=1.5)
    dispatcher = Dispatcher(contacts.store, [channel], {"sms": SmsPolicy(SmsRetry.from_config(dataclasses.replace(contacts.config.retry, initial_delay=0)))},
                            DispatcherSettings(poll_interval=0.02, report_timeout=1.0))
    monkeypatch.setattr(composition, "build_dispatcher", lambda services, alarms=None: dispatcher)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")   # a ping every 50 ms
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    switch = sys.getswitchinterval()
    try:
        assert asyncio.run(composition.run_engine(contacts, once=True)) == 0
    finally:
        sys.setswitchinterval(switch)
    assert wait_until(lambda: notify_socket.starting("STOPPING=1"), 2)
    assert notify_socket.times("READY=1")
    stall_start, stall_end = channel.stalled_at
    pings = notify_socket.times("WATCHDOG=1")
    during = [t for t in pings if stall_start + 0.05 < t < stall_end - 0.05]
    before = [t for t in pings if notify_socket.times("READY=1")[0] <= t < stall_start]
    after = [t for t in pings if t > stall_end]
    assert during == [], "pings went on while the event loop was blocked"
    assert before and len(after) >= 5, (len(before), len(after))
    # Outside the stall they keep the pace: never more than a few intervals apart.
    healthy = after[1:]
    assert max(b - a for a, b in zip(healthy, healthy[1:])) < 0.3
    assert any(s.startswith("STATUS=running; lines: 1 up") for s in notify_socket.starting("STATUS="))


@pytest.mark.integration
def test_engine_under_notify_socket_sends_ready_then_keeps_pinging(tmp_path, notify_socket):
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", latency_median=0.02, report_delay=0.05) as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems])
        env = dict(os.environ, WATCHDOG_USEC="200000", PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        env.pop("WATCHDOG_PID", None)
        engine = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path), "run"],
                                  stdout=open(tmp_path / "engine.log", "w"), stderr=subprocess.STDOUT, env=env)
        try:
            assert wait_until(lambda: notify_socket.times("READY=1"), 30), (tmp_path / "engine.log").read_text()
            ready = notify_socket.times("READY=1")[0]
            # READY=1 comes once the modems were opened: the STATUS= sent with it
            # (the same datagram) already counts both lines up, none "starting".
            assert notify_socket.starting("STATUS=")[0] == "STATUS=running; lines: 2 up"
            time.sleep(1.5)
            pings = [t for t in notify_socket.times("WATCHDOG=1") if t > ready]
            assert len(pings) >= 8, pings      # one every 0.1 s
            assert max(b - a for a, b in zip(pings, pings[1:])) < 0.5
            engine.send_signal(signal.SIGTERM)
            assert engine.wait(timeout=30) == 0
        finally:
            if engine.poll() is None:
                engine.kill()
        assert notify_socket.starting("STOPPING=1")
        assert len(notify_socket.times("READY=1")) == 1
