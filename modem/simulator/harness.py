"""Run the simulator as a subprocess from tests and benchmarks."""
from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway.core.files import complete_lines


class SimulatorError(RuntimeError):
    pass


class SimulatorProcess:
    """``with SimulatorProcess(count=2, profile="sim800", latency_median=0.05) as sim: ...``

    Keyword options become command-line flags (``latency_median=0.05`` ->
    ``--latency-median 0.05``). A control socket and a log file are created in
    a temporary directory unless given.
    """

    def __init__(self, *, ready_timeout: float = 15.0, **options: object) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="allerta-sim-")
        tmp = Path(self._tmp.name)
        options.setdefault("control", tmp / "control.sock")
        options.setdefault("log", tmp / "events.jsonl")
        self.control_path = Path(str(options["control"]))
        self.log_path = Path(str(options["log"]))
        self.options = options
        self.ready_timeout = ready_timeout
        self.modems: list[dict] = []
        self.process: subprocess.Popen | None = None
        self._stderr_path = tmp / "stderr.txt"

    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "modem.simulator"]
        for key, value in self.options.items():
            if value is None or value is False:
                continue
            argv.append("--" + key.replace("_", "-"))
            if value is not True:
                argv.append(str(value))
        return argv

    def start(self) -> "SimulatorProcess":
        self._stderr = open(self._stderr_path, "w+")
        self.process = subprocess.Popen(self._argv(), stdout=subprocess.PIPE, stderr=self._stderr,
                                        cwd=os.getcwd())
        deadline = time.monotonic() + self.ready_timeout
        fd = self.process.stdout.fileno()
        pending = b""
        selector = selectors.DefaultSelector()
        selector.register(fd, selectors.EVENT_READ)
        try:
            while True:
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    record = json.loads(line)
                    if record.get("ready"):
                        return self
                    self.modems.append(record)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    self._fail(f"not ready within {self.ready_timeout} s")
                chunk = os.read(fd, 65536)
                if not chunk:
                    self._fail(f"exited with code {self.process.wait()} before it was ready")
                pending += chunk
        finally:
            selector.close()

    def _fail(self, reason: str) -> None:
        self.stop()
        self._stderr.seek(0)
        stderr = self._stderr.read()
        self._stderr.close()
        self._tmp.cleanup()
        raise SimulatorError(f"simulator {reason}; stderr:\n{stderr}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def control(self, command: dict, timeout: float = 10.0) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.control_path))
            sock.sendall((json.dumps(command) + "\n").encode())
            buffer = b""
            while not buffer.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise SimulatorError("control socket closed without a reply")
                buffer += chunk
        return json.loads(buffer)

    def log_records(self, event: str | None = None) -> list[dict]:
        if not self.log_path.exists():
            return []
        records = [json.loads(line) for line in complete_lines(self.log_path.read_text()) if line.strip()]
        return [r for r in records if event is None or r.get("event") == event]

    def wait_for_records(self, event: str, count: int = 1, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            records = self.log_records(event)
            if len(records) >= count or time.monotonic() > deadline:
                return records
            time.sleep(0.05)

    def port(self, name: str = "modem-0") -> str:
        return next(m["port"] for m in self.modems if m["modem"] == name)

    def __enter__(self) -> "SimulatorProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self._stderr.close()
        self._tmp.cleanup()
