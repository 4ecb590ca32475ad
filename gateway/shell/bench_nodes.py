"""`allerta bench sms --nodes N`: N engines on one PostgreSQL, each with ``--modems`` simulated modems of
its own, sharing one alert (docs/nodes.md).

``--nodes 2 --modems 32`` next to ``--nodes 1 --modems 64`` measures what sharing the database costs: the
ratio of each node's and of all nodes' messages a minute to their modem-bound limit (``modems x 60 /
latency``), over each one's submit window (first submission start to last submit, as ``bench sms``).
With ``--kill-after SECONDS`` the first node is killed with -9 that long after its own first submit: the
others take its work in flight back once its lease (``--lease``) has passed; the takeover time is from
the kill to the first submit, by another node, of a message the dead node held 'submitting'.

Without ``--database-url`` a throwaway PostgreSQL cluster is started (gateway/shell/pg_cluster.py).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import func, select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.config import load_config
from gateway.core.models import Delivery
from gateway.core.services import build_services
from gateway.shell.bench import (BENCH_TEXT, _database_shown, _parse_time, child_env, ensure_importable_children,
                                 seed_contacts, work_dir)
from gateway.shell.pg_cluster import PostgresCluster
from modem.simulator.harness import SimulatorProcess
from modem.simulator.latency import PROMPT_LATENCY

# Claimed ahead, in seconds of a node's rate: what one node takes of the alert before the others, and
# what a killed node holds in flight (all of it comes back flagged).
CLAIM_AHEAD_SECONDS = 5.0


def node_config(directory: Path, name: str, database_url: str, links: list[str], *, lease: float,
                report_timeout: float, per_minute: float) -> Path:
    """One node's configuration: its own data_dir and modems (named after it), the shared database."""
    directory.mkdir(parents=True, exist_ok=True)
    modems = "".join(f'\n[[modems]]\nlabel = "{name}-m{i}"\nport = "{link}"\nper_minute = {per_minute}\n'
                     f"daily_cap = 1000000\n" for i, link in enumerate(links))
    path = directory / "allerta.toml"
    path.write_text(f"""[general]
data_dir = "{directory / 'data'}"
[engine]
node = "{name}"
lease_seconds = {lease}
claim_ahead_seconds = {CLAIM_AHEAD_SECONDS}
poll_interval = 0.05
report_timeout = {report_timeout}
[retry]
initial_delay = 0.5
max_delay = 5
send_timeout = 10
[database]
url = "{database_url}"
{modems}""", encoding="utf-8")
    return path


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    cluster = PostgresCluster().start()
    try:
        yield cluster.new_database()
    finally:
        cluster.stop()


def bench_sms_nodes(nodes: int, modems: int, messages: int, latency: float, *, report_delay: float = 0.05,
                    database_url: str | None = None, kill_after: float | None = None, lease: float = 10.0,
                    keep: str | None = None, profile: str = "telit", timeout: float | None = None) -> dict:
    if nodes < 1 or modems < 1 or messages < 1 or latency <= 0:
        raise ValueError("--nodes, --modems and --messages must be at least 1, --latency greater than 0")
    if kill_after is not None and nodes < 2:
        raise ValueError("--kill-after needs --nodes 2 or more: someone must take the work over")
    if database_url and not database_url.startswith("postgresql"):
        raise ValueError("--nodes runs on PostgreSQL (SQLite is single-node): give a postgresql URL or none")
    ensure_importable_children()
    prompt = min(PROMPT_LATENCY.median, latency / 4)
    limit_per_node = modems * 60.0 / latency
    timeout = timeout or 120 + 4 * messages / (limit_per_node * nodes) * 60 + (lease if kill_after else 0)
    names = [f"node{i + 1}" for i in range(nodes)]
    with work_dir(keep, "allerta-bench-nodes-") as tmp, _database(database_url) as url, \
            SimulatorProcess(count=nodes * modems, profile=profile, link_dir=tmp / "links",
                             latency_median=latency - prompt, latency_sigma=0, prompt_latency=prompt,
                             report_delay=report_delay, log=tmp / "simulator.jsonl", ready_timeout=120) as sim:
        links = [m["link"] for m in sim.modems]
        # per_minute a quarter above what a modem can do: it never slows one down, and a node's first
        # claim ahead (before it measured its rate) is CLAIM_AHEAD_SECONDS of it, not the whole alert.
        configs = [node_config(tmp / name, name, url, links[i * modems:(i + 1) * modems], lease=lease,
                               report_timeout=10.0 if kill_after is not None else 60.0,
                               per_minute=round(60.0 / latency * 1.25, 1))
                   for i, name in enumerate(names)]
        services = build_services(load_config(configs[0]))
        seed_contacts(services.engine, messages, zones=("Bench",))
        alert_id, _preview = services.alerts.create(AlertRequest(text=BENCH_TEXT, target=Target(everyone=True)))
        engines = [_start(config) for config in configs]
        kill = None
        try:
            if kill_after is not None:
                victim_modems = {f"modem-{i}" for i in range(modems)}
                kill = _kill_first(engines[0], sim, victim_modems, services, alert_id, names[0], kill_after, timeout)
            deadline = time.monotonic() + timeout
            codes = [_wait(engine, deadline) for engine in engines[1 if kill else 0:]]
        finally:
            for engine in engines:
                if engine.poll() is None:
                    engine.kill()
                    engine.wait()
        submits = [r for r in sim.log_records("submit") if r["part"] == 1]
        with services.sessions() as s:
            by_state = dict(s.execute(select(Delivery.state, func.count()).where(
                Delivery.alert_id == alert_id).group_by(Delivery.state)).all())
            flagged = s.scalar(select(func.count()).select_from(Delivery).where(
                Delivery.alert_id == alert_id, Delivery.possible_duplicate.is_(True)))
        services.engine.dispose()
        tails = {name: (config.parent / "engine.log").read_text(errors="replace")[-1500:]
                 for name, config, code in zip(names[1 if kill else 0:], configs[1 if kill else 0:], codes) if code}
    node_of = {f"modem-{i}": names[i // modems] for i in range(nodes * modems)}
    per_node = {name: _rates([r for r in submits if node_of[r["modem"]] == name], latency, limit_per_node)
                for name in names}
    sent = Counter(r["destination"] for r in submits)
    result: dict = {
        "benchmark": "sms-nodes", "nodes": nodes, "modems_per_node": modems, "messages": messages,
        "latency_seconds": latency, "lease_seconds": lease, "claim_ahead_seconds": CLAIM_AHEAD_SECONDS,
        "database": _database_shown(url) if database_url else "PostgreSQL, throwaway cluster (fsync off)",
        "engine_exit_codes": dict(zip(names[1 if kill else 0:], codes)),
        "deliveries_by_state": by_state,
        "submitted": len(sent), "lost": messages - len(sent),
        "sent_twice": sum(1 for n in sent.values() if n > 1), "flagged_possible_duplicate": flagged,
        "modem_bound_messages_per_minute": {"per_node": round(limit_per_node, 1),
                                            "total": round(limit_per_node * nodes, 1)},
        "per_node": per_node,
        "total": _rates(submits, latency, limit_per_node * nodes),
    }
    if kill is not None:
        result["kill"] = kill
        result["kill"].update(_takeover(kill, submits, node_of, names[0]))
    if tails:
        result["engine_log_tails"] = tails
    return result


def _start(config: Path) -> subprocess.Popen:
    log = open(config.parent / "engine.log", "w")
    argv = [sys.executable, "-m", "gateway.shell.cli", "--config", str(config), "run", "--once"]
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=child_env())


def _wait(engine: subprocess.Popen, deadline: float) -> int:
    try:
        return engine.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        engine.kill()
        engine.wait()
        return -9


def _kill_first(engine: subprocess.Popen, sim: SimulatorProcess, its_modems: set[str],  # noqa: PLR0913
                services, alert_id: int, name: str, after: float, timeout: float) -> dict:  # noqa: ANN001
    """kill -9 the first node ``after`` seconds past its own first submit (the nodes do not start sending at
    the same moment); what it held in flight then."""
    deadline = time.monotonic() + timeout
    while not (its_submits := [r for r in sim.log_records("submit") if r["modem"] in its_modems]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} sent nothing: nothing to kill it in the middle of")
        time.sleep(0.05)
    first = _parse_time(its_submits[0]["time"])
    time.sleep(max(0.0, first + after - time.time()))
    os.kill(engine.pid, signal.SIGKILL)
    killed_at = time.time()
    engine.wait()
    with services.sessions() as s:
        held = set(s.scalars(select(Delivery.e164).where(Delivery.alert_id == alert_id, Delivery.node == name,
                                                         Delivery.state == "submitting")))
    return {"node": name, "after_first_submit_seconds": round(killed_at - first, 3), "killed_at": killed_at,
            "held_in_flight": sorted(held)}


def _takeover(kill: dict, submits: list[dict], node_of: dict[str, str], dead: str) -> dict:
    held = set(kill.pop("held_in_flight"))
    killed_at = kill.pop("killed_at")
    resends = sorted(_parse_time(r["time"]) for r in submits
                     if node_of[r["modem"]] != dead and r["destination"].lstrip("+") in
                     {number.lstrip("+") for number in held} and _parse_time(r["time"]) > killed_at)
    return {"held_in_flight": len(held), "resent": len(resends),
            "takeover_seconds": round(resends[0] - killed_at, 3) if resends else None,
            "definition": "from the kill -9 to the first submit, by another node, of a message the killed node "
                          "held 'submitting' (goal: lease + 5 s)"}


def _rates(submits: list[dict], latency: float, limit: float) -> dict:
    times = sorted(_parse_time(r["time"]) for r in submits)
    if not times:
        return {"messages": 0, "messages_per_minute": 0.0, "ratio": 0.0}
    window = times[-1] - times[0] + latency
    rate = len(times) / window * 60
    return {"messages": len(times), "seconds": round(window, 3), "messages_per_minute": round(rate, 1),
            "ratio": round(rate / limit, 4)}


def run(args: argparse.Namespace) -> dict:
    return bench_sms_nodes(args.nodes, args.modems, args.messages, args.latency,
                           report_delay=args.report_delay, database_url=args.database_url,
                           kill_after=args.kill_after, lease=args.lease, keep=args.keep, profile=args.profile)
