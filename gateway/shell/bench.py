"""`allerta bench`: measure the engine against simulated modems, and the fan-out of a big alert.

Both benchmarks work in a temporary directory (or ``--keep DIR``) and return a
dict that the CLI prints as JSON. Seeding contacts is never part of what is
timed: it uses bulk SQLAlchemy core inserts, not the CSV importer.

``bench sms`` runs the real engine (``allerta run --once`` in a subprocess)
against the modem simulator and reads the simulator's event log to see when
each message really left. Three windows are reported, because they answer
different questions:

* ``submit_window``: from the moment the first submission *started* (first
  ``submit`` event time minus one modem latency) to the last ``submit`` event.
  Includes the ramp-up while the engine hands out the first messages, excludes
  the engine's start-up (imports, migrations, opening the modems) and the wait
  for the last status reports. This is the headline ``messages_per_minute``.
* ``steady_state``: between the 10th and 90th percentile submit: the pace the
  engine keeps once every modem is busy.
* ``engine``: the whole ``allerta run --once`` process, start to exit
  (includes start-up and the status-report tail).

``--latency`` is the modem's time for one AT+CMGS exchange, from the command
to its +CMGS reply: the simulator spends a fixed part of it before the ``> ``
prompt (as a real modem does) and the rest before answering. The modem-bound
limit is then exactly ``modems x 60 / latency`` messages per minute: every
modem busy all the time with nothing lost between two submits. What the
engine does besides (its own bookkeeping, reading and deleting each stored
status report with AT+CMGR/AT+CMGD) counts against its ratio.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import func, select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.config import load_config
from gateway.core.db import shown_url
from gateway.core.models import Contact, Delivery, PhoneNumberRow, Zone, contact_numbers
from gateway.core.services import build_services
from gateway.shell.db_lock import WriteLockHolder
from modem.simulator.harness import SimulatorProcess
from modem.simulator.latency import PROMPT_LATENCY

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
BENCH_TEXT = "Allerta: esondazione in corso, salire ai piani alti"  # one GSM-7 segment
BENCH_ZONES = tuple(f"Zona {i + 1}" for i in range(8))


# --- shared helpers ------------------------------------------------------------
def child_env() -> dict:
    """Environment for our subprocesses: the package importable even when not installed."""
    env = dict(os.environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(PACKAGE_ROOT) not in parts:
        parts.insert(0, str(PACKAGE_ROOT))
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def ensure_importable_children() -> None:
    """SimulatorProcess starts ``python -m modem.simulator`` with our environment."""
    os.environ["PYTHONPATH"] = child_env()["PYTHONPATH"]


@contextmanager
def work_dir(keep: str | None, prefix: str) -> Iterator[Path]:
    if keep:
        path = Path(keep).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def write_config(directory: Path, links: list[str], *, per_minute: float = 100_000, poll_interval: float = 0.05,
                 report_timeout: float = 60, send_timeout: float = 10, database_url: str | None = None) -> Path:
    """The bench's config; ``database_url``: an empty database to use instead of SQLite in ``directory``
    (``--database-url``, so the figures can be taken on PostgreSQL too)."""
    database = f'\n[database]\nurl = "{database_url}"\n' if database_url else ""
    modems = "".join(f'\n[[modems]]\nlabel = "m{i}"\nport = "{link}"\nper_minute = {per_minute}\n'
                     f"daily_cap = 1000000\n" for i, link in enumerate(links))
    path = directory / "allerta.toml"
    path.write_text(f"""[general]
data_dir = "{directory / 'data'}"
[engine]
poll_interval = {poll_interval}
report_timeout = {report_timeout}
[retry]
initial_delay = 0.5
max_delay = 5
send_timeout = {send_timeout}
{modems}{database}""", encoding="utf-8")
    return path


def seed_contacts(engine, count: int, zones: tuple[str, ...] = BENCH_ZONES, *, first_mobile: int = 3_335_000_000,
                  batch: int = 20_000) -> None:
    """``count`` contacts, one distinct mobile number each, spread round-robin over ``zones``."""
    zone_table, contact_table, number_table = Zone.__table__, Contact.__table__, PhoneNumberRow.__table__
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:
        zone_base = conn.execute(select(func.coalesce(func.max(zone_table.c.id), 0))).scalar_one()
        contact_base = conn.execute(select(func.coalesce(func.max(contact_table.c.id), 0))).scalar_one()
        number_base = conn.execute(select(func.coalesce(func.max(number_table.c.id), 0))).scalar_one()
        conn.execute(zone_table.insert(), [{"id": zone_base + i + 1, "name": name} for i, name in enumerate(zones)])
        for start in range(0, count, batch):
            idx = range(start, min(count, start + batch))
            conn.execute(number_table.insert(), [
                {"id": number_base + i + 1, "e164": f"+39{first_mobile + i}", "kind": "mobile", "opted_out": False}
                for i in idx])
            conn.execute(contact_table.insert(), [
                {"id": contact_base + i + 1, "name": f"Residente {i + 1}", "zone_id": zone_base + i % len(zones) + 1,
                 "language": "it", "vulnerable": i % 12 == 0, "created_at": now}
                for i in idx])
            conn.execute(contact_numbers.insert(), [
                {"contact_id": contact_base + i + 1, "number_id": number_base + i + 1} for i in idx])


def _parse_time(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def _wait_with_rusage(process: subprocess.Popen, timeout: float,
                      tick: Callable[[], None] | None = None) -> tuple[int, resource.struct_rusage]:
    """Wait for the child and get *its own* resource usage (wait4), not every child's; ``tick()`` about
    once a second meanwhile (the progress shown on a terminal)."""
    deadline = time.monotonic() + timeout
    next_tick = time.monotonic() + 1.0
    while True:
        if tick is not None and time.monotonic() >= next_tick:
            tick()
            next_tick = time.monotonic() + 1.0
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage
        if time.monotonic() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            raise TimeoutError(f"the engine did not finish within {timeout:.0f} s")
        time.sleep(0.02)


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a running process (Linux /proc), for the simulator we do not reap yet."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- bench sms ---------------------------------------------------------------------
@dataclass
class _SmsRun:
    """What one ``allerta run --once`` against the modem simulator left to measure."""
    exit_code: int
    usage: resource.struct_rusage
    started: float
    ended: float
    submits: list[dict]
    reports: list[dict]
    by_state: dict[str, int]
    segments: int
    sim_cpu_seconds: float | None
    engine_log_tail: str | None
    lock_held: tuple[float, float] | None = None


def bench_sms(modems: int, messages: int, latency: float, *, report_delay: float = 0.05,
              keep: str | None = None, cprofile: str | None = None, timeout: float | None = None,
              database_url: str | None = None, lock_db: float = 0.0, profile: str = "telit",
              progress: Callable[[int, int], None] | None = None) -> dict:
    """``progress(sent, messages)``: about once a second while the engine runs, from a count in the
    database (only asked for on a terminal: a run measured through a pipe reads nothing more)."""
    if modems < 1 or messages < 1 or latency <= 0 or lock_db < 0:
        raise ValueError("--modems and --messages must be at least 1, --latency greater than 0, "
                         "--lock-db not negative")
    if lock_db and database_url:
        raise ValueError("--lock-db locks the bench's own SQLite file: leave out --database-url")
    # The "> " prompt is part of the exchange --latency measures (see the module docstring).
    prompt = min(PROMPT_LATENCY.median, latency / 4)
    ensure_importable_children()
    limit_per_minute = modems * 60.0 / latency
    if timeout is None:
        timeout = 120 + 4 * messages / limit_per_minute * 60 + lock_db
    run = _run_sms_engine(modems, messages, latency, prompt, report_delay=report_delay, keep=keep,
                          cprofile=cprofile, timeout=timeout, database_url=database_url, lock_db=lock_db,
                          profile=profile, progress=progress)
    first_parts = Counter(r["destination"] for r in run.submits if r["part"] == 1)
    per_modem = Counter(r["modem"] for r in run.submits)
    result: dict = {
        "benchmark": "sms",
        "modems": modems, "profile": profile, "messages": messages, "latency_seconds": latency,
        "report_delay_seconds": report_delay,
        "segments_per_message": run.segments,
        "engine_exit_code": run.exit_code,
        "delivered": run.by_state.get("delivered", 0),
        "deliveries_by_state": run.by_state,
        "submitted": len(first_parts),
        "submits": len(run.submits),
        "status_reports": len(run.reports),
        # Reports a modem could not store (its report memory was full): lost to the engine.
        "status_reports_dropped": sum(1 for r in run.reports if r.get("dropped")),
        "duplicates": sum(1 for n in first_parts.values() if n > 1),
        "submits_per_modem": {"min": min(per_modem.values(), default=0), "max": max(per_modem.values(), default=0),
                              "modems_used": len(per_modem)},
        "modem_bound_messages_per_minute": round(limit_per_minute, 1),
        "database": _database_shown(database_url),
    }
    result.update(_sms_rates(run, len(first_parts), latency, prompt, limit_per_minute))
    result.update(_sms_cpu(run, len(first_parts)))
    if lock_db:
        result["lock_db"] = _lock_rates(run, lock_db)
    if cprofile:
        result["cprofile"] = str(Path(cprofile).resolve())
    if run.engine_log_tail:
        result["engine_log_tail"] = run.engine_log_tail
    return result


def _database_shown(url: str | None) -> str:
    return shown_url(url) if url else "sqlite (WAL), file in a temporary directory"


def _run_sms_engine(modems: int, messages: int, latency: float, prompt: float, *, report_delay: float,
                    database_url: str | None,
                    keep: str | None, cprofile: str | None, timeout: float, lock_db: float = 0.0,
                    profile: str = "telit", progress: Callable[[int, int], None] | None = None) -> _SmsRun:
    """Start the simulator, seed ``messages`` contacts, create the alert, run the engine until it drains."""
    with work_dir(keep, "allerta-bench-") as tmp:
        with SimulatorProcess(count=modems, profile=profile, link_dir=tmp / "links",
                              latency_median=latency - prompt, latency_sigma=0, prompt_latency=prompt,
                              report_delay=report_delay, log=tmp / "simulator.jsonl",
                              ready_timeout=60) as sim:
            links = [m["link"] for m in sim.modems]
            config_path = write_config(tmp, links, database_url=database_url)
            services = build_services(load_config(config_path))
            seed_contacts(services.engine, messages, zones=("Bench",))
            alert_id, preview = services.alerts.create(AlertRequest(text=BENCH_TEXT, target=Target(everyone=True)))
            sim_cpu_before = process_cpu_seconds(sim.process.pid)
            # --lock-db: someone else write-locks the database once a fifth of the messages went out.
            holder = WriteLockHolder(str(tmp / "data" / "allerta.db"), lock_db,
                                     lambda: len(sim.log_records("submit")) >= messages // 5, poll=0.2)
            tick = None if progress is None else lambda: progress(_gone_out(services, alert_id), messages)
            with holder if lock_db else _no_lock():
                started, ended, exit_code, usage = _run_engine_once(tmp, config_path, cprofile, timeout, tick)
            sim_cpu_after = process_cpu_seconds(sim.process.pid)
            submits = sim.log_records("submit")
            reports = sim.log_records("status_report")
            with services.sessions() as s:
                by_state = dict(s.execute(select(Delivery.state, func.count()).where(
                    Delivery.alert_id == alert_id).group_by(Delivery.state)).all())
            services.engine.dispose()
        engine_log_tail = (tmp / "engine.log").read_text(errors="replace")[-2000:] if exit_code else None
    return _SmsRun(exit_code=exit_code, usage=usage, started=started, ended=ended, submits=submits, reports=reports,
                   by_state=by_state, segments=preview.plan.segments,
                   sim_cpu_seconds=(sim_cpu_after - sim_cpu_before
                                    if sim_cpu_before is not None and sim_cpu_after is not None else None),
                   engine_log_tail=engine_log_tail, lock_held=holder.held)


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


def _lock_rates(run: _SmsRun, seconds: float) -> dict:
    """Messages per minute the modems took while the database was write-locked, and outside
    the lock (from the first to the last submit)."""
    if run.lock_held is None:
        return {"seconds": seconds, "error": "the lock was never taken (the run ended first: more --messages)"}
    start, end = run.lock_held
    times = sorted(_parse_time(r["time"]) for r in run.submits if r["part"] == 1)
    during = sum(1 for t in times if start <= t <= end)
    outside_span = (times[-1] - times[0]) - (min(end, times[-1]) - max(start, times[0])) if times else 0.0
    return {
        "seconds": round(end - start, 3),
        "messages_during_lock": during,
        "messages_per_minute_during_lock": round(during / (end - start) * 60, 1),
        "messages_outside_lock": len(times) - during,
        "messages_per_minute_outside_lock": round((len(times) - during) / outside_span * 60, 1)
        if outside_span > 0 else None,
        "lost": sum(n for state, n in run.by_state.items() if state not in ("delivered", "sent")),
    }


def _gone_out(services, alert_id: int) -> int:  # noqa: ANN001 - gateway.core.services.Services
    """Messages of the alert sent or delivered so far."""
    with services.sessions() as s:
        return s.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.alert_id == alert_id, Delivery.state.in_(("sent", "delivered")))) or 0


def _run_engine_once(tmp: Path, config_path: Path, cprofile: str | None, timeout: float,
                     tick: Callable[[], None] | None = None) -> tuple[float, float, int, resource.struct_rusage]:
    """``allerta run --once`` (under cProfile if asked): start and end times, exit code, its own rusage."""
    argv = [sys.executable]
    if cprofile:
        argv += ["-m", "cProfile", "-o", str(Path(cprofile).resolve())]
    argv += ["-m", "gateway.shell.cli", "--config", str(config_path), "run", "--once"]
    with open(tmp / "engine.log", "w") as log:
        started = time.time()
        engine = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=child_env())
        exit_code, usage = _wait_with_rusage(engine, timeout, tick)
        ended = time.time()
    return started, ended, exit_code, usage


def _sms_rates(run: _SmsRun, submitted: int, latency: float, prompt: float, limit_per_minute: float) -> dict:
    """The three windows of the module docstring, from the simulator's submit events."""
    submits = run.submits
    times = sorted(_parse_time(r["time"]) for r in submits)
    if not times:
        return {"messages_per_minute": 0.0, "ratio": 0.0}
    segments = run.segments
    window = times[-1] - times[0] + latency
    rate = len(submits) / window * 60 / segments
    lo, hi = int(len(times) * 0.1), int(len(times) * 0.9) - 1
    steady_span = times[hi] - times[lo] if hi > lo else 0.0
    steady = (hi - lo) / steady_span * 60 / segments if steady_span > 0 else None
    engine_wall = run.ended - run.started
    return {
        "first_to_last_submit_seconds": round(times[-1] - times[0], 3),
        "submit_window": {
            "definition": "first submission start (first submit event time - latency) to last submit event; "
                          "includes ramp-up, excludes engine start-up and the status-report tail",
            "seconds": round(window, 3),
            "messages_per_minute": round(rate, 1),
            "ratio": round(rate / limit_per_minute, 4),
        },
        "steady_state": {
            "definition": "10th to 90th percentile submit event (every modem busy)",
            "seconds": round(steady_span, 3),
            "messages_per_minute": round(steady, 1) if steady else None,
            "ratio": round(steady / limit_per_minute, 4) if steady else None,
        },
        "engine": {
            "definition": "whole 'allerta run --once' process: start-up, opening modems, sending, "
                          "waiting for the last status reports, exit",
            "wall_seconds": round(engine_wall, 3),
            "start_to_first_submit_seconds": round(times[0] - latency - run.started, 3),
            "last_submit_to_exit_seconds": round(run.ended - times[-1], 3),
            "messages_per_minute": round(submitted / engine_wall * 60, 1),
            "ratio": round(submitted / engine_wall * 60 / limit_per_minute, 4),
        },
        # Headline figures (the submit window).
        "messages_per_minute": round(rate, 1),
        "ratio": round(rate / limit_per_minute, 4),
        "modem_exchange_seconds": {"total": latency, "before_prompt": prompt,
                                   "prompt_to_cmgs_reply": round(latency - prompt, 4)},
    }


def _sms_cpu(run: _SmsRun, submitted: int) -> dict:
    usage = run.usage
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "engine_cpu_seconds": round(cpu, 3),
        "engine_cpu_user_seconds": round(usage.ru_utime, 3),
        "engine_cpu_system_seconds": round(usage.ru_stime, 3),
        "cpu_seconds_per_message": round(cpu / max(1, submitted), 5),
        "engine_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),   # Linux: kilobytes
        "simulator_cpu_seconds_during_run": (round(run.sim_cpu_seconds, 3)
                                             if run.sim_cpu_seconds is not None else None),
        "cpu_count": os.cpu_count(),
        "measurement": "engine CPU and peak RSS from wait4() on the engine process alone; the simulator runs "
                       "on the same machine and competes for the CPU",
    }


# --- bench fanout ------------------------------------------------------------------
def bench_fanout(contacts: int, *, keep: str | None = None, database_url: str | None = None) -> dict:
    if contacts < 1:
        raise ValueError("--contacts must be at least 1")
    with work_dir(keep, "allerta-fanout-") as tmp:
        config_path = write_config(tmp, [], database_url=database_url)
        services = build_services(load_config(config_path))
        seed_started = time.perf_counter()
        seed_contacts(services.engine, contacts)
        seed_seconds = time.perf_counter() - seed_started
        started = time.perf_counter()
        alert_id, preview = services.alerts.create(AlertRequest(text=BENCH_TEXT, target=Target(everyone=True)))
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        _zone_id, zone_preview = services.alerts.create(
            AlertRequest(text=BENCH_TEXT, target=Target(zones=(BENCH_ZONES[0],))))
        zone_seconds = time.perf_counter() - started
        services.engine.dispose()
    return {
        "benchmark": "fanout",
        "contacts": contacts,
        "recipients": preview.recipients.get("sms", 0),
        "seconds": round(seconds, 3),
        "deliveries_per_second": round(preview.recipients.get("sms", 0) / seconds) if seconds > 0 else None,
        "zone": {"zone": BENCH_ZONES[0], "zones_total": len(BENCH_ZONES),
                 "recipients": zone_preview.recipients.get("sms", 0), "seconds": round(zone_seconds, 3)},
        "seed_seconds_not_measured": round(seed_seconds, 3),
        "database": _database_shown(database_url),
        "measurement": "AlertService.create(): plan, target check, alert row and one INSERT ... SELECT "
                       "of every delivery, committed",
    }


def run(args: argparse.Namespace, progress: Callable[[int, int], None] | None = None) -> dict:
    """The benchmark ``args.what``; ``progress(done, total)`` where it can tell (bench sms)."""
    if args.what == "sms" and getattr(args, "nodes", None):
        # Here, not at the top: a real cycle (bench_nodes takes seed_contacts, work_dir, ... from this module).
        from gateway.shell import bench_nodes
        return bench_nodes.run(args)
    if args.what == "sms":
        return bench_sms(args.modems, args.messages, args.latency, report_delay=getattr(args, "report_delay", 0.05),
                         keep=getattr(args, "keep", None), cprofile=getattr(args, "cprofile", None),
                         database_url=getattr(args, "database_url", None), lock_db=getattr(args, "lock_db", 0.0),
                         profile=getattr(args, "profile", "telit"), progress=progress)
    if args.what == "fanout":
        return bench_fanout(args.contacts, keep=getattr(args, "keep", None),
                            database_url=getattr(args, "database_url", None))
    if args.what == "voice":
        # Here, not at the top: a real cycle (bench_voice takes process_cpu_seconds from this module).
        from gateway.shell import bench_voice
        return bench_voice.run(args)
    if args.what == "hotline":
        # Here, not at the top: a real cycle (bench_hotline takes process_cpu_seconds from this module).
        from gateway.shell import bench_hotline
        return bench_hotline.run(args)
    if args.what == "web":
        # Here, not at the top: a real cycle (bench_web takes seed_contacts, work_dir, ... from this module).
        from gateway.shell import bench_web
        return bench_web.run(args)
    if args.what == "inbound":
        # Here, not at the top: a real cycle (bench_inbound takes seed_contacts, work_dir, ... from this module).
        from gateway.shell import bench_inbound
        return bench_inbound.run(args)
    raise ValueError(f"unknown benchmark {args.what!r}")


if __name__ == "__main__":  # pragma: no cover - convenience: python -m gateway.shell.bench sms ...
    from gateway.shell.cli import build_parser
    parsed = build_parser().parse_args(["bench", *sys.argv[1:]])
    print(json.dumps(run(parsed), indent=2))
