"""`allerta bench hotline`: callers ringing the town's number while an alert keeps the trunk busy.

In a temporary directory: the PBX simulator (one trunk of ``--channels``, running our dialplan with
the hotline context pointed at the engine's FastAGI port), ``allerta run`` with ``[asterisk] hotline``
and ``inbound_reserved``, landlines enough to keep the outbound share busy for the whole window, one
voice alert to all of them. Once the outbound share is full, ``--callers`` callers ring in, evenly
over ``--minutes`` simulated minutes, each hearing the welcome and the message and hanging up after
``--caller-seconds``.

Figures: calls answered; the time from the call reaching our context (the AGI connection) to the
first prompt, p50/p95 in real seconds (the engine's latency, not scaled); callers refused while
fewer than ``inbound_reserved`` callers were on the trunk (refused with reserved channels free);
outbound utilisation of its share during the window; the engine's CPU during the window per caller
(an upper bound: the outbound calls of the same window are in it).
"""
from __future__ import annotations

import argparse
import datetime as dt
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from asterisk.asterisk_config import render_configs
from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.core.config import load_config
from gateway.core.hotline_prompts import PROMPTS, render_hotline_sounds
from gateway.core.services import build_services
from gateway.shell.bench import process_cpu_seconds
from gateway.shell.bench_voice import (SECRET, TRUNK, _child_env, _create_voice_alert, _percentile, _work_dir,
                                       population, seed_landlines, write_config)

CALL_SECONDS = 1.3 + 2.0   # what the simulator adds to each outbound call besides the message (bench_voice)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(predicate, timeout: float) -> bool:   # noqa: ANN001 - a callable returning bool
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def bench_hotline(channels: int, inbound_reserved: int, callers: int, *, minutes: float = 10.0,
                  message_seconds: float = 30.0, caller_seconds: float = 8.0, time_scale: float = 0.05,
                  keep: str | None = None) -> dict[str, Any]:
    if not 0 < inbound_reserved < channels or callers < 1 or minutes <= 0 or time_scale <= 0:
        raise ValueError("--inbound-reserved must be between 1 and --channels - 1, --callers at least 1, "
                         "--minutes and --time-scale greater than 0")
    outbound_share = channels - inbound_reserved
    window = minutes * 60.0
    landlines = int(outbound_share * (window + 120) / (message_seconds + CALL_SECONDS) * 1.3) + outbound_share
    port = free_port()
    with _work_dir(keep) as tmp:
        sounds = tmp / "data" / "sounds"
        dialplan = tmp / "extensions_allerta.conf"
        dialplan.write_text(render_configs("allerta", SECRET, str(sounds), agi_port=port)["extensions_allerta.conf"])
        # The prompts as files: the benchmark measures the engine, not espeak-ng.
        render_hotline_sounds(sounds, [], PROMPTS, render=lambda text, lang, path, **_: path.write_bytes(b""))
        with PbxSimulatorProcess(tmp / "pbx", trunks={TRUNK: channels}, population=population(message_seconds),
                                 time_scale=time_scale, secret=SECRET, ready_timeout=30,
                                 extra_args=["--dialplan", str(dialplan)]) as pbx:
            config_path = write_config(tmp, pbx.port, channels, 100_000.0)
            text = config_path.read_text().replace("[asterisk]\n", f"[asterisk]\nhotline = true\nagi_port = {port}\n")
            config_path.write_text(text + f"inbound_reserved = {inbound_reserved}\n")
            services = build_services(load_config(config_path))
            seed_landlines(services.engine, landlines)
            _create_voice_alert(services, tmp, message_seconds)
            services.engine.dispose()
            with open(tmp / "engine.log", "w") as log:
                engine = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path),
                                           "run"], stdout=log, stderr=subprocess.STDOUT, env=_child_env())
            try:
                if not _wait(lambda: listening(port), 60) or not _wait(
                        lambda: pbx.control({"cmd": "status"})["trunks"][TRUNK]["active"] >= outbound_share, 60):
                    raise RuntimeError("the engine did not start or fill its share: "
                                       + (tmp / "engine.log").read_text(errors="replace")[-2000:])
                cpu_before = process_cpu_seconds(engine.pid)
                window_start = time.time()
                interval = window / callers * time_scale
                for index in range(callers):
                    due = window_start + index * interval
                    time.sleep(max(0.0, due - time.time()))
                    pbx.control({"cmd": "incoming_call", "caller": f"+39333{8000000 + index:07d}", "keys": "",
                                 "hangup_after": caller_seconds})
                _wait(lambda: pbx.control({"cmd": "status"})["inbound_calls"] == 0, 60)
                window_end = time.time()
                cpu_after = process_cpu_seconds(engine.pid)
                inbound = pbx.control({"cmd": "inbound_calls"})["calls"]
            finally:
                engine.terminate()
                try:
                    engine.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    engine.kill()
            outbound = [r for r in pbx.calls() if r.get("start") and r.get("end")]
    answered = [c for c in inbound if c["agi_status"] not in ("refused", "FAILURE")]
    refused = [c for c in inbound if c["agi_status"] == "refused"]
    first_prompt = sorted(c["first_prompt_seconds"] for c in answered if c["first_prompt_seconds"] is not None)
    busy = sum(max(0.0, min(_ts(r["end"]), window_end) - max(_ts(r["start"]), window_start)) for r in outbound)
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    return {
        "benchmark": "hotline",
        "channels": channels, "inbound_reserved": inbound_reserved, "callers": callers, "minutes": minutes,
        "time_scale": time_scale, "message_seconds": message_seconds, "caller_seconds": caller_seconds,
        "calls_answered": len(answered),
        "callers_refused": len(refused),
        "callers_refused_while_reserved_channels_free": sum(
            1 for c in refused if (c["inbound_on_trunk"] or 0) < inbound_reserved),
        "first_prompt_seconds_real": {
            "definition": "AGI connection (the call reaching our context) to the first STREAM FILE, real "
                          "seconds: the engine's latency, not scaled",
            "p50": round(_percentile(first_prompt, 0.5), 4) if first_prompt else None,
            "p95": round(_percentile(first_prompt, 0.95), 4) if first_prompt else None,
            "goal_p95": 1.0,
        },
        "outbound_utilisation_of_its_share": round(busy / (outbound_share * (window_end - window_start)), 4),
        "outbound_utilisation_goal": 0.95,
        "engine_cpu_seconds_per_inbound_call": round(cpu / max(1, len(answered)), 5) if cpu is not None else None,
        "engine_cpu_note": "engine CPU during the callers' window / callers answered: an upper bound, the "
                           "outbound calls placed meanwhile are in it",
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Entry point for ``allerta bench hotline`` (gateway/shell/cli.py parses the arguments)."""
    return bench_hotline(args.channels, args.inbound_reserved, args.callers, minutes=args.minutes,
                         time_scale=args.time_scale, keep=getattr(args, "keep", None))
