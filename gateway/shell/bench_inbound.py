"""``allerta bench inbound``: a reply storm while an SMS alert goes out.

Two runs of the real engine (``allerta run`` in a subprocess) against the modem simulator, with
the same alert to ``--recipients`` people over ``--modems`` modems:

1. the alert alone: its send ratio to the modem-bound limit (as ``bench sms`` measures it);
2. the alert while ``--messages`` of its recipients answer (the simulator's ``incoming_flood``,
   spread over most of the alert's expected duration, starting once a twentieth of it went out):
   the alert's send ratio again, and for the replies: from arrival at the modem to their commit
   in the database, and to their automatic answer being queued (p50, p95); replies lost; the
   SIM memory's high-water mark over every modem.

The storm's texts are what people write back after an alert: confirmations, a vote, thanks,
questions, help requests, STOP. Each sender answers once, so a reply is matched to its message
by its sender.
"""
from __future__ import annotations

import datetime as dt
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.config import load_config
from gateway.core.models import Delivery, InboundSms
from gateway.core.models_citizens import SmsReply
from gateway.core.services import build_services
from gateway.shell.bench import (BENCH_TEXT, _parse_time, child_env, ensure_importable_children,
                                 process_cpu_seconds, seed_contacts, work_dir, write_config)
from modem.simulator.harness import SimulatorProcess
from modem.simulator.latency import PROMPT_LATENCY

FIRST_MOBILE = 3_335_000_000
STORM_TEXTS = ("OK", "Ricevuto, grazie", "1", "ok 👍", "Siamo bloccati al primo piano, aiuto", "Grazie mille",
               "Dove si trova il punto di raccolta?", "STOP", "ricevuto", "Tutto bene qui",
               "Siamo in casa in 4, il piano terra è allagato ma stiamo bene. Ci sono aggiornamenti su quando "
               "riapre la strada per Fregene? Grazie")   # the last one takes two parts
FINAL_SMS_STATES = ("delivered", "failed", "cancelled", "sent")


def bench_inbound(modems: int, recipients: int, messages: int, latency: float, *, keep: str | None = None,
                  timeout: float | None = None) -> dict:
    if modems < 1 or recipients < 1 or latency <= 0 or not 0 < messages <= recipients:
        raise ValueError("--modems and --recipients at least 1, --latency greater than 0, "
                         "--messages from 1 to --recipients (each recipient answers at most once)")
    ensure_importable_children()
    prompt = min(PROMPT_LATENCY.median, latency / 4)
    limit_per_minute = modems * 60.0 / latency
    alert_seconds = recipients / limit_per_minute * 60
    if timeout is None:
        timeout = 180 + 4 * alert_seconds
    quiet = _run(modems, recipients, 0, latency, prompt, alert_seconds, keep, timeout, "quiet")
    storm = _run(modems, recipients, messages, latency, prompt, alert_seconds, keep, timeout, "storm")
    cost = (1 - storm["ratio"] / quiet["ratio"]) if quiet["ratio"] else None
    return {
        "benchmark": "inbound", "modems": modems, "recipients": recipients, "replies": messages,
        "latency_seconds": latency, "modem_bound_messages_per_minute": round(limit_per_minute, 1),
        "alert_ratio_without_storm": quiet["ratio"], "alert_ratio_with_storm": storm["ratio"],
        "storm_cost": round(cost, 4) if cost is not None else None,
        "storm_cost_goal": "< 0.05",
        "quiet_run": quiet, "storm_run": storm,
    }


def _run(modems: int, recipients: int, messages: int, latency: float, prompt: float, alert_seconds: float,
         keep: str | None, timeout: float, name: str) -> dict:
    with work_dir(f"{keep}/{name}" if keep else None, "allerta-bench-inbound-") as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        with SimulatorProcess(count=modems, profile="telit", link_dir=tmp / "links", latency_median=latency - prompt,
                              latency_sigma=0, prompt_latency=prompt, report_delay=0.05,
                              log=tmp / "simulator.jsonl", ready_timeout=60) as sim:
            config_path = write_config(tmp, [m["link"] for m in sim.modems])
            services = build_services(load_config(config_path))
            seed_contacts(services.engine, recipients, zones=("Bench",), first_mobile=FIRST_MOBILE)
            alert_id, _preview = services.alerts.create(AlertRequest(text=BENCH_TEXT, target=Target(everyone=True)))
            senders = [f"+39{FIRST_MOBILE + i}" for i in range(messages)]
            with open(tmp / "engine.log", "w") as log:
                started = time.time()
                engine = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path),
                                           "run"], stdout=log, stderr=subprocess.STDOUT, env=child_env())
                try:
                    flood = _storm(sim, senders, recipients, alert_seconds, started, timeout) if messages else None
                    done = _wait_done(services, alert_id, senders, started + timeout, engine)
                    cpu = process_cpu_seconds(engine.pid)
                finally:
                    engine.send_signal(signal.SIGTERM)
                    try:
                        engine.wait(60)
                    except subprocess.TimeoutExpired:
                        engine.kill()
            submits = [r for r in sim.log_records("submit") if r["text"] == BENCH_TEXT]
            arrivals = {r["sender"]: _parse_time(r["time"]) for r in sim.log_records("incoming")
                        if r.get("part", 1) == 1 and "time" in r}
            high_water = _high_water(sim)
            result = {"finished": done, "engine_cpu_seconds": round(cpu, 2) if cpu is not None else None}
            result.update(_alert_ratio(submits, latency, modems))
            result["deliveries_by_state"] = _by_state(services, alert_id)
            if messages:
                result.update(_replies(services, senders, arrivals))
                result["flood"] = flood
                result["sim_memory_high_water"] = high_water
            services.engine.dispose()
        if not done:
            result["engine_log_tail"] = (tmp / "engine.log").read_text(errors="replace")[-2000:]
    return result


def _storm(sim: SimulatorProcess, senders: list[str], recipients: int, alert_seconds: float, started: float,
           timeout: float) -> dict:
    """Once a twentieth of the alert went out, the replies arrive over 60 % of its expected duration."""
    deadline = started + timeout
    while len([r for r in sim.log_records("submit") if r["text"] == BENCH_TEXT]) < recipients // 20:
        if time.time() > deadline:
            raise RuntimeError("the alert never started: no storm")
        time.sleep(0.2)
    rate = len(senders) / max(1.0, 0.6 * alert_seconds)
    return sim.control({"cmd": "incoming_flood", "count": len(senders), "senders": senders,
                        "texts": list(STORM_TEXTS), "rate": rate}, timeout=60)


def _wait_done(services, alert_id: int, senders: list[str], deadline: float, engine: subprocess.Popen) -> bool:
    """The alert's SMS all final, every reply stored and handled, and no automatic answer left to send."""
    while time.time() < deadline and engine.poll() is None:
        with services.sessions() as s:
            open_alert = s.scalar(select(func.count()).select_from(Delivery).where(
                Delivery.alert_id == alert_id, Delivery.state.not_in(FINAL_SMS_STATES)))
            stored = s.scalar(select(func.count()).select_from(InboundSms).where(
                InboundSms.sender.in_(senders), InboundSms.handled.is_(True))) if senders else 0
            unsent = s.scalar(select(func.count()).select_from(SmsReply).where(
                SmsReply.state.in_(("pending", "submitting"))))
        if open_alert == 0 and stored >= len(senders) and unsent == 0:
            return True
        time.sleep(0.5)
    return False


def _alert_ratio(submits: list[dict], latency: float, modems: int) -> dict:
    """The alert's own SMS, from the first submission's start to the last submit (as bench sms)."""
    times = sorted(_parse_time(r["time"]) for r in submits)
    if not times:
        return {"alert_messages": 0, "ratio": 0.0}
    window = times[-1] - times[0] + latency
    rate = len(times) / window * 60
    limit = modems * 60.0 / latency
    return {"alert_messages": len(times), "alert_seconds": round(window, 2),
            "messages_per_minute": round(rate, 1), "ratio": round(rate / limit, 4)}


def _by_state(services, alert_id: int) -> dict:
    with services.sessions() as s:
        return dict(s.execute(select(Delivery.state, func.count()).where(Delivery.alert_id == alert_id)
                              .group_by(Delivery.state)).all())


def _replies(services, senders: list[str], arrivals: dict[str, float]) -> dict:
    with services.sessions() as s:
        stored = {row.sender: row for row in s.execute(
            select(InboundSms.id, InboundSms.sender, InboundSms.received_at, InboundSms.kind)
            .where(InboundSms.sender.in_(senders)))}
        queued = dict(s.execute(select(InboundSms.sender, func.min(SmsReply.created_at))
                                .join(SmsReply, SmsReply.inbound_id == InboundSms.id)
                                .where(InboundSms.sender.in_(senders)).group_by(InboundSms.sender)).all())
        kinds = dict(s.execute(select(InboundSms.kind, func.count()).where(InboundSms.sender.in_(senders))
                               .group_by(InboundSms.kind)).all())
        replies_sent = s.scalar(select(func.count()).select_from(SmsReply).where(SmsReply.state == "sent"))
    to_commit = [_epoch(row.received_at) - arrivals[sender] for sender, row in stored.items() if sender in arrivals]
    to_answer = [_epoch(at) - arrivals[sender] for sender, at in queued.items() if sender in arrivals]
    return {
        "replies_stored": len(stored), "replies_lost": len(senders) - len(stored),
        "replies_by_kind": {str(k): n for k, n in kinds.items()},
        "automatic_answers_queued": len(queued), "automatic_answers_sent": replies_sent,
        "arrival_to_commit_seconds": _percentiles(to_commit),
        "arrival_to_answer_queued_seconds": _percentiles(to_answer),
        "definition": "arrival: the simulator hands the (first) part to the modem (+CMTI or +CMT); commit: "
                      "inbound_sms.received_at, written by the engine in the transaction that stores it; "
                      "answer queued: the sms_replies row's created_at",
    }


def _epoch(naive_utc: dt.datetime) -> float:
    return naive_utc.replace(tzinfo=dt.timezone.utc).timestamp()


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {"count": len(ordered), "p50": round(statistics.median(ordered), 3),
            "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 3),
            "max": round(ordered[-1], 3)}


def _high_water(sim: SimulatorProcess) -> dict:
    # The status lists the modems, each with the most every memory ever held; SM and ME take incoming SMS.
    per_modem = {modem["modem"]: modem.get("stored_high_water", {}) for modem in sim.control({"cmd": "status"})["modems"]}
    highest = max((n for memories in per_modem.values() for memory, n in memories.items() if memory in ("SM", "ME")),
                  default=0)
    return {"max_messages_stored": highest, "per_modem": per_modem}


def run(args) -> dict:  # noqa: ANN001 - argparse.Namespace
    return bench_inbound(args.modems, args.recipients, args.messages, args.latency, keep=getattr(args, "keep", None))
