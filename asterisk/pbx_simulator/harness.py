"""Run the PBX simulator as a subprocess from tests.

    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 2}, time_scale=0.01) as pbx:
        ... connect to 127.0.0.1:pbx.port ...
        pbx.control({"cmd": "status"})
        pbx.calls()
"""
from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gateway.core.files import complete_lines


class SimulatorStartError(RuntimeError):
    """The simulator did not print its ready line in time; includes its stderr."""


class PbxSimulatorProcess:
    def __init__(self, workdir: str | Path, *, trunks: dict[str, int] | None = None,
                 population: dict[str, Any] | None = None, seed: int = 1,
                 time_scale: float = 0.01, username: str = "allerta", secret: str = "allerta",
                 extra_args: list[str] | None = None, ready_timeout: float = 10.0) -> None:
        self.workdir = Path(workdir)
        self.trunks = trunks if trunks is not None else {"trunk1": 4}
        self.population = population
        self.seed = seed
        self.time_scale = time_scale
        self.username = username
        self.secret = secret
        self.extra_args = extra_args or []
        self.ready_timeout = ready_timeout
        self.log_path = self.workdir / "pbx-calls.jsonl"
        self.control_path = self.workdir / "pbx-control.sock"
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "asterisk.pbx_simulator", "--port", "0",
                   "--username", self.username, "--secret", self.secret,
                   "--seed", str(self.seed), "--time-scale", str(self.time_scale),
                   "--log", str(self.log_path), "--control", str(self.control_path)]
        for name, limit in self.trunks.items():
            command += ["--trunk", f"{name}={limit}"]
        if self.population is not None:
            population_file = self.workdir / "pbx-population.json"
            population_file.write_text(json.dumps(self.population))
            command += ["--population", str(population_file)]
        return command + self.extra_args

    def __enter__(self) -> PbxSimulatorProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self._command(), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            self.port = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> int:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + self.ready_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not selector.select(left):
                    continue
                line = self.process.stdout.readline()
                if not line:
                    break
                try:
                    ready = json.loads(line)
                except ValueError:
                    continue
                if isinstance(ready, dict) and ready.get("ready"):
                    return int(ready["port"])
        stderr = ""
        try:
            # stdout closed: the process is exiting; give it a moment to be reaped.
            self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        if self.process.poll() is not None and self.process.stderr is not None:
            stderr = self.process.stderr.read()
        raise SimulatorStartError(
            f"PBX simulator gave no ready line within {self.ready_timeout} s "
            f"(exit code {self.process.poll()}): {stderr.strip()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self.process = None

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def control(self, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send one control command and return the reply."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.control_path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return json.loads(reply)

    def calls(self) -> list[dict[str, Any]]:
        """Every finished call the simulator logged, oldest first."""
        if not self.log_path.exists():
            return []
        # The simulator may be appending a line right now: only complete lines count.
        return [json.loads(line) for line in complete_lines(self.log_path.read_text()) if line]
