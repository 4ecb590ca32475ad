"""`allerta bench voice`: the real engine against the PBX simulator, time-scaled.

In a temporary directory: start the PBX simulator (one trunk of ``--channels``
channels, a population where everyone answers, listens for about
``--message-seconds`` and presses 1, so every number is called exactly once),
seed ``--calls`` landline contacts, create one voice alert, run
``allerta run --once`` in a subprocess and read the simulator's call log
(one JSON line per call, with ISO start and end times).

Time scale: the simulator makes every ring and every second of message last
``time_scale`` real seconds (0.02: a 20 s message lasts 0.4 s), so the engine
sees the call rate of a real trunk multiplied by ``1 / time_scale``. Figures
measured on the simulator's clock are reported as such (``*_scaled``) and also
converted back to real time by dividing by the time scale (``*_real``). The
engine's own latencies (database, AMI parsing) are NOT scaled: a run at 0.02
asks the engine for fifty times the pace of a real E1, so utilisation here is
a lower bound of what a real trunk gets.

Channel utilisation = busy channel-seconds (sum over calls of end - start, as
the PBX saw them) / (channels x wall), wall being first call start to last
call end. The trunk-bound limit is channels x 3600 / mean call duration: every
channel busy all the time, nothing lost between two calls.

``calls_per_second`` of the trunk: by default high enough never to bind
(``NON_BINDING_CPS`` engine-side), so the figure measures the engine. Pass a
realistic real-world value (``args.calls_per_second``, e.g. 1.0, the config
default) to see the pacing's effect: it is written to the engine's config
multiplied by ``1 / time_scale`` so it means the same on the scaled clock.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import func, select

from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.core.alerts import AlertRequest, Target
from gateway.core.config import load_config
from gateway.core.models import Attempt, Contact, Delivery, PhoneNumberRow, contact_numbers
from gateway.core.services import Services, build_services
from gateway.shell.bench import process_cpu_seconds  # shared with the SMS benchmark

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
TRUNK = "bench"
SECRET = "bench-secret"
NON_BINDING_CPS = 100_000.0          # engine-side calls per second: never binds
RING_SECONDS = (1.0, 3.0)            # simulated (real-world) seconds of ringing before the answer
LISTEN_SPREAD = 0.1                  # listen time = message-seconds +/- 10 %
# What the simulator adds to every answered call besides ring and listen (calls.py).
SIM_OVERHEAD_SECONDS = 0.3 + 1.0     # ringing state after 0.3 s; Wait(1) after Answer


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(PACKAGE_ROOT) not in parts:
        parts.insert(0, str(PACKAGE_ROOT))
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


@contextmanager
def _work_dir(keep: str | None) -> Iterator[Path]:
    if keep:
        path = Path(keep).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="allerta-bench-voice-") as tmp:
        yield Path(tmp)


def population(message_seconds: float, seed: int = 1) -> dict[str, Any]:
    """Everyone answers, listens for about ``message_seconds`` and presses 1."""
    listen = [round(message_seconds * (1 - LISTEN_SPREAD), 3), round(message_seconds * (1 + LISTEN_SPREAD), 3)]
    return {"seed": seed, "answer": 1.0, "busy": 0, "no_answer": 0, "invalid_number": 0, "voicemail": 0,
            "congestion": 0, "press_1": 1.0, "ring_seconds": list(RING_SECONDS), "listen_seconds": listen}


def write_config(directory: Path, port: int, channels: int, calls_per_second: float, *,
                 poll_interval: float = 0.05, report_timeout: float = 30) -> Path:
    path = directory / "allerta.toml"
    path.write_text(f"""[general]
data_dir = "{directory / 'data'}"
[engine]
poll_interval = {poll_interval}
report_timeout = {report_timeout}
[asterisk]
enabled = true
port = {port}
secret = "{SECRET}"
amd = false
ring_timeout = 30
[[trunks]]
name = "{TRUNK}"
dial = "PJSIP/{{number}}@{TRUNK}"
max_channels = {channels}
calls_per_second = {calls_per_second!r}
caller_id = "+390665210000"
""", encoding="utf-8")
    return path


def seed_landlines(engine, count: int, *, first: int = 66_000_000, batch: int = 20_000) -> None:
    """``count`` contacts with one distinct landline each (+39 06 ...), bulk inserts, not timed."""
    contact_table, number_table = Contact.__table__, PhoneNumberRow.__table__
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:
        contact_base = conn.execute(select(func.coalesce(func.max(contact_table.c.id), 0))).scalar_one()
        number_base = conn.execute(select(func.coalesce(func.max(number_table.c.id), 0))).scalar_one()
        for start in range(0, count, batch):
            idx = range(start, min(count, start + batch))
            conn.execute(number_table.insert(), [
                {"id": number_base + i + 1, "e164": f"+390{first + i}", "kind": "landline", "opted_out": False}
                for i in idx])
            conn.execute(contact_table.insert(), [
                {"id": contact_base + i + 1, "name": f"Casa {i + 1}", "language": "it", "vulnerable": False,
                 "created_at": now} for i in idx])
            conn.execute(contact_numbers.insert(), [
                {"contact_id": contact_base + i + 1, "number_id": number_base + i + 1} for i in idx])


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def peak_concurrency(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at once; an end and a start at the same instant do not overlap."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, step in points:
        current += step
        peak = max(peak, current)
    return peak


def refill_gaps(intervals: list[tuple[float, float]], channels: int) -> list[float]:
    """Seconds from a channel freeing to the next call starting, once the trunk was first full.

    Pairs the k-th call start (k > channels) with the (k - channels)-th call end,
    both in time order: with the trunk kept full, that end is what freed the
    channel the start took. Only meaningful when every number is called once.
    """
    starts = sorted(start for start, _ in intervals)
    ends = sorted(end for _, end in intervals)
    return [starts[k] - ends[k - channels] for k in range(channels, len(starts))]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@dataclass
class _VoiceRun:
    """What one ``allerta run --once`` against the PBX simulator left to measure."""
    exit_code: int | None
    started: float
    ended: float
    cpu_user: float
    cpu_system: float
    records: list[dict[str, Any]]
    by_state: dict[str, int]
    attempts: int
    sim_cpu_seconds: float | None
    engine_log_tail: str | None


def bench_voice(channels: int, calls: int, message_seconds: float, *, time_scale: float = 0.02,
                calls_per_second: float | None = None, keep: str | None = None, cprofile: str | None = None,
                poll_interval: float = 0.05, timeout: float | None = None) -> dict[str, Any]:
    if channels < 1 or calls < 1 or message_seconds <= 0 or time_scale <= 0:
        raise ValueError("--channels and --calls must be at least 1, --message-seconds and --time-scale "
                         "greater than 0")
    if calls_per_second is not None and calls_per_second <= 0:
        raise ValueError("calls_per_second must be greater than 0")
    os.environ["PYTHONPATH"] = _child_env()["PYTHONPATH"]   # the simulator subprocess imports us too
    engine_cps = NON_BINDING_CPS if calls_per_second is None else calls_per_second / time_scale
    expected_call = SIM_OVERHEAD_SECONDS + sum(RING_SECONDS) / 2 + message_seconds
    if timeout is None:
        timeout = 120 + 4 * calls / channels * expected_call * time_scale
        if calls_per_second is not None:
            timeout += 2 * calls / engine_cps
    run = _run_voice_engine(channels, calls, message_seconds, time_scale=time_scale, engine_cps=engine_cps,
                            keep=keep, cprofile=cprofile, poll_interval=poll_interval, timeout=timeout)
    records = run.records
    intervals = [(_ts(r["start"]), _ts(r["end"])) for r in records if r.get("start") and r.get("end")]
    outcomes = Counter(r.get("outcome") for r in records)
    per_number = Counter(r["number"] for r in records)
    result: dict[str, Any] = {
        "benchmark": "voice",
        "channels": channels, "calls": calls, "message_seconds": message_seconds, "time_scale": time_scale,
        "time_scale_note": ("the simulator runs every call time_scale times faster; *_scaled figures are on its "
                            "clock, *_real ones are divided by time_scale to give real-world time. The engine's "
                            "own latencies are not scaled, so this run asks it for 1/time_scale times a real "
                            "trunk's call rate."),
        "calls_per_second": {
            "mode": "non-binding" if calls_per_second is None else "realistic",
            "engine_config": engine_cps,
            "real_equivalent": None if calls_per_second is None else calls_per_second,
        },
        "population": "everyone answers after 1-3 s of ringing, listens for message_seconds +/- 10 % "
                      "and presses 1 (one call per number)",
        "engine_exit_code": run.exit_code,
        "deliveries_by_state": run.by_state,
        "attempts_recorded": run.attempts,
        "calls_logged": len(records),
        "numbers_called": len(per_number),
        "numbers_called_more_than_once": sum(1 for n in per_number.values() if n > 1),
        "outcomes": dict(outcomes),
    }
    if intervals:
        # Refill gaps pair starts with ends: only meaningful when every number is called once.
        result.update(_call_figures(intervals, records, channels, time_scale, run,
                                    once_each=len(per_number) == len(records)))
    result.update(_voice_cpu(run))
    if cprofile:
        result["cprofile"] = str(Path(cprofile).resolve())
    if run.engine_log_tail:
        result["engine_log_tail"] = run.engine_log_tail
    return result


def _run_voice_engine(channels: int, calls: int, message_seconds: float, *, time_scale: float, engine_cps: float,
                      keep: str | None, cprofile: str | None, poll_interval: float, timeout: float) -> _VoiceRun:
    """Start the PBX simulator, seed ``calls`` landlines, create the alert, run the engine until it drains."""
    with _work_dir(keep) as tmp:
        with PbxSimulatorProcess(tmp / "pbx", trunks={TRUNK: channels}, population=population(message_seconds),
                                 time_scale=time_scale, secret=SECRET, ready_timeout=30) as pbx:
            config_path = write_config(tmp, pbx.port, channels, engine_cps, poll_interval=poll_interval)
            services = build_services(load_config(config_path))
            seed_landlines(services.engine, calls)
            alert_id = _create_voice_alert(services, tmp, message_seconds)
            sim_cpu_before = process_cpu_seconds(pbx.process.pid) if pbx.process else None
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started, ended, exit_code = _run_engine_once(tmp, config_path, cprofile, timeout)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            sim_cpu_after = process_cpu_seconds(pbx.process.pid) if pbx.process else None
            records = pbx.calls()
            with services.sessions() as s:
                by_state = dict(s.execute(select(Delivery.state, func.count()).where(
                    Delivery.alert_id == alert_id).group_by(Delivery.state)).all())
                attempts = s.execute(select(func.count()).select_from(Attempt).join(
                    Delivery, Delivery.id == Attempt.delivery_id).where(Delivery.alert_id == alert_id)).scalar_one()
            services.engine.dispose()
        engine_log_tail = (tmp / "engine.log").read_text(errors="replace")[-3000:] if exit_code != 0 else None
    return _VoiceRun(exit_code=exit_code, started=started, ended=ended,
                     cpu_user=after.ru_utime - before.ru_utime, cpu_system=after.ru_stime - before.ru_stime,
                     records=records, by_state=by_state, attempts=attempts,
                     sim_cpu_seconds=(sim_cpu_after - sim_cpu_before
                                      if sim_cpu_before is not None and sim_cpu_after is not None else None),
                     engine_log_tail=engine_log_tail)


def _create_voice_alert(services: Services, tmp: Path, message_seconds: float) -> int:
    (tmp / "bench-message.wav").write_bytes(b"")   # the simulator plays nothing; the path travels
    alert_id, _preview = services.alerts.create(AlertRequest(
        text="Allerta: esondazione in corso, salire ai piani alti", channels=("voice",),
        target=Target(everyone=True), audio_path=str(tmp / "bench-message"),
        audio_seconds=message_seconds, audio_source="recording", max_attempts=5,
        voice_interval=0.2, voice_growth=1.0, voice_cap=5))
    return alert_id


def _run_engine_once(tmp: Path, config_path: Path, cprofile: str | None,
                     timeout: float) -> tuple[float, float, int | None]:
    """``allerta run --once`` (under cProfile if asked): start and end times, exit code (None: killed at timeout)."""
    argv = [sys.executable]
    if cprofile:
        argv += ["-m", "cProfile", "-o", str(Path(cprofile).resolve())]
    argv += ["-m", "gateway.shell.cli", "--config", str(config_path), "run", "--once"]
    with open(tmp / "engine.log", "w") as log:
        started = time.time()
        engine = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=_child_env())
        try:
            exit_code = engine.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.wait()
            exit_code = None
        ended = time.time()
    return started, ended, exit_code


def _call_figures(intervals: list[tuple[float, float]], records: list[dict[str, Any]], channels: int,
                  time_scale: float, run: _VoiceRun, *, once_each: bool) -> dict[str, Any]:
    """Utilisation, call rate and the engine's refill latency, from the PBX's call log."""
    first_start = min(s for s, _ in intervals)
    last_end = max(e for _, e in intervals)
    wall = last_end - first_start
    durations = [e - s for s, e in intervals]
    busy = sum(durations)
    mean_call = busy / len(durations)
    utilisation = busy / (channels * wall) if wall > 0 else None
    limit_per_hour = channels * 3600 / (mean_call / time_scale)
    achieved_per_hour = len(intervals) / (wall / time_scale) * 3600 if wall > 0 else None
    gaps = refill_gaps(intervals, channels) if once_each else []
    # Steady state: the middle 80 % of the run, where the ramp-up and the tail are out.
    lo, hi = first_start + 0.1 * wall, first_start + 0.9 * wall
    steady_busy = sum(max(0.0, min(e, hi) - max(s, lo)) for s, e in intervals)
    return {
        "utilisation": round(utilisation, 4) if utilisation is not None else None,
        "utilisation_target": 0.95,
        "utilisation_definition": "busy channel-seconds (sum of end - start in the PBX call log) / "
                                  "(channels x wall, first call start to last call end)",
        "steady_state_utilisation": round(steady_busy / (channels * (hi - lo)), 4) if hi > lo else None,
        "wall_seconds_scaled": round(wall, 3),
        "wall_seconds_real": round(wall / time_scale, 1),
        "busy_channel_seconds_scaled": round(busy, 3),
        "mean_call_seconds_scaled": round(mean_call, 4),
        "mean_call_seconds_real": round(mean_call / time_scale, 2),
        "calls_per_hour_real": round(achieved_per_hour, 1) if achieved_per_hour else None,
        "trunk_bound_calls_per_hour_real": round(limit_per_hour, 1),
        "calls_per_hour_ratio": round(achieved_per_hour / limit_per_hour, 4) if achieved_per_hour else None,
        "calls_per_second_scaled": round(len(intervals) / wall, 2) if wall > 0 else None,
        "max_simultaneous_calls": peak_concurrency(intervals),
        "max_simultaneous_calls_pbx": max((r.get("concurrent", 0) for r in records), default=0),
        "refill_gap_seconds_scaled": {
            "definition": "channel freed (call end) to the next call start, trunk full; engine latency",
            "median": round(statistics.median(gaps), 4) if gaps else None,
            "p95": round(_percentile(gaps, 0.95), 4) if gaps else None,
            "max": round(max(gaps), 4) if gaps else None,
        },
        "engine_start_to_first_call_seconds": round(first_start - run.started, 3),
        "last_call_end_to_engine_exit_seconds": round(run.ended - last_end, 3),
    }


def _voice_cpu(run: _VoiceRun) -> dict[str, Any]:
    cpu = run.cpu_user + run.cpu_system
    return {
        "engine_wall_seconds": round(run.ended - run.started, 3),
        "engine_cpu_seconds": round(cpu, 3),
        "engine_cpu_user_seconds": round(run.cpu_user, 3),
        "engine_cpu_system_seconds": round(run.cpu_system, 3),
        "engine_cpu_seconds_per_call": round(cpu / max(1, len(run.records)), 5),
        "engine_cpu_measurement": "getrusage(RUSAGE_CHILDREN) delta around the engine subprocess "
                                  "(includes start-up: imports, migrations, AMI login)",
        "simulator_cpu_seconds_during_run": (round(run.sim_cpu_seconds, 3)
                                             if run.sim_cpu_seconds is not None else None),
        "cpu_count": os.cpu_count(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Entry point for ``allerta bench voice`` (gateway/shell/cli.py parses the arguments)."""
    return bench_voice(args.channels, args.calls, args.message_seconds,
                       time_scale=getattr(args, "time_scale", 0.02) or 0.02,
                       calls_per_second=getattr(args, "calls_per_second", None),
                       keep=getattr(args, "keep", None), cprofile=getattr(args, "cprofile", None))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway.shell.bench_voice", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=30)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--message-seconds", type=float, default=20.0)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--calls-per-second", type=float, default=None,
                        help="real-world trunk pacing (default: non-binding)")
    parser.add_argument("--keep", metavar="DIR", help="keep the benchmark's files in DIR")
    parser.add_argument("--cprofile", metavar="FILE", help="run the engine under cProfile, stats to FILE")
    return parser


if __name__ == "__main__":  # pragma: no cover - python -m gateway.shell.bench_voice ...
    print(json.dumps(run(_parser().parse_args()), indent=2))
