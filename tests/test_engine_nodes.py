"""Two engines ("nodes") on one PostgreSQL, each with its own simulated modems or PBX: an alert split
between them goes out once; a node killed with -9 loses nothing (the other takes its work back after
the lease, flagged); calls across both nodes' trunks never exceed a number's cap. And SQLite refuses a
second engine. The lease is 3 s here (30 s by default)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.core.alerts import AlertRequest, Target
from gateway.core.contacts_import import import_contacts
from gateway.core.models import Delivery
from gateway.core.models_ops import Alarm
from gateway.core.nodes import NODE_DOWN
from gateway.core.states import DuplicateCause
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import (allerta, contacts_csv, engine_config, kill9, services_for, start_engine, states,
                                  submits_by_destination, wait_until)

pytestmark = pytest.mark.integration

LEASE = 3


def node_config(directory: Path, name: str, database_url: str, *, modem_links=(), per_minute: float = 6000,
                pbx: PbxSimulatorProcess | None = None, report_timeout: float = 5, claim_ahead: float = 1) -> Path:
    """One node's configuration: its own data_dir, lines named after it, the shared database."""
    directory.mkdir(parents=True, exist_ok=True)
    modems = "".join(f'\n[[modems]]\nlabel = "{name}-m{i}"\nport = "{link}"\nper_minute = {per_minute}\n'
                     for i, link in enumerate(modem_links))
    voice = "" if pbx is None else f"""[asterisk]
enabled = true
port = {pbx.port}
secret = "s3cret"
ring_timeout = 30
[[trunks]]
name = "{name}-trunk"
dial = "PJSIP/{{number}}@{name}-trunk"
max_channels = 4
calls_per_second = 500
"""
    path = directory / "allerta.toml"
    path.write_text(f"""[general]
data_dir = "{directory / 'data'}"
[engine]
node = "{name}"
lease_seconds = {LEASE}
claim_ahead_seconds = {claim_ahead}
poll_interval = 0.05
health_interval = 5
report_timeout = {report_timeout}
[retry]
initial_delay = 0.2
max_delay = 1
send_timeout = 10
[database]
url = "{database_url}"
{voice}{modems}""", encoding="utf-8")
    return path


def sms_nodes(tmp_path: Path, sim: SimulatorProcess, database_url: str, **options) -> tuple[Path, Path]:
    links = [m["link"] for m in sim.modems]
    half = len(links) // 2
    return (node_config(tmp_path / "a", "a", database_url, modem_links=links[:half], **options),
            node_config(tmp_path / "b", "b", database_url, modem_links=links[half:], **options))


def log_of(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


@pytest.mark.postgresql
def test_an_alert_split_over_two_engines_goes_to_everyone_once(tmp_path, postgres_cluster):
    with SimulatorProcess(count=4, link_dir=tmp_path / "links", latency_median=0.03, latency_sigma=0.2,
                          report_delay=0.05) as sim:
        # 20 SMS a second per modem: a node's first claim (before it measured its rate) is not the whole alert.
        config_a, config_b = sms_nodes(tmp_path, sim, postgres_cluster.new_database(), per_minute=1200,
                                       report_timeout=20)
        services = services_for(config_a)
        assert import_contacts(services.sessions, contacts_csv(300)).imported
        alert_id, _ = services.alerts.create(AlertRequest(text="Allerta: salire ai piani alti",
                                                          target=Target(zones=("Isola Sacra",))))
        engines = [start_engine(config, "--once", log_path=config.parent / "engine.log")
                   for config in (config_a, config_b)]
        try:
            for engine, config in zip(engines, (config_a, config_b)):
                assert engine.wait(timeout=120) == 0, log_of(config.parent / "engine.log")
        finally:
            for engine in engines:
                if engine.poll() is None:
                    engine.kill()
        assert states(services, alert_id) == {"delivered": 300}
        submitted = submits_by_destination(sim)
        assert len(submitted) == 300 and set(submitted.values()) == {1}
        # Both nodes sent, each through its own modems.
        with services.sessions() as s:
            by_node = Counter(s.scalars(select(Delivery.node).where(Delivery.alert_id == alert_id)))
            lines = dict(s.execute(select(Delivery.line, Delivery.node).where(Delivery.alert_id == alert_id)).all())
        assert set(by_node) == {"a", "b"} and all(lines[line] == line.split("-")[0] for line in lines)
        modems = json.loads(allerta(config_a, "modems", "--json").stdout)
        assert {(m["label"], m["node"]) for m in modems} == {("a-m0", "a"), ("a-m1", "a"), ("b-m0", "b"),
                                                              ("b-m1", "b")}
        # The alert's status (its ETA's lines): every node's modems, with their node.
        status = json.loads(allerta(config_b, "alert", "status", str(alert_id), "--json").stdout)
        assert {line: entry["node"] for line, entry in status["lines"].items()} == {
            "a-m0": "a", "a-m1": "a", "b-m0": "b", "b-m1": "b"}
        assert sum(entry["segments_delivered"] for entry in status["lines"].values()) == 300
        assert "a-m0 (a): stopped" in allerta(config_b, "alert", "status", str(alert_id)).stdout


@pytest.mark.postgresql
def test_kill_9_of_one_engine_the_other_finishes_after_the_lease_nothing_lost(tmp_path, postgres_cluster):
    with SimulatorProcess(count=4, link_dir=tmp_path / "links", latency_median=0.05, latency_sigma=0.2,
                          report_delay=0.05) as sim:
        config_a, config_b = sms_nodes(tmp_path, sim, postgres_cluster.new_database(), per_minute=1200,
                                       claim_ahead=3, report_timeout=5)
        services = services_for(config_a)
        assert import_contacts(services.sessions, contacts_csv(200)).imported
        alert_id, _ = services.alerts.create(AlertRequest(text="Allerta: salire ai piani alti",
                                                          target=Target(zones=("Isola Sacra",))))
        victim = start_engine(config_a, log_path=tmp_path / "a" / "engine.log")
        survivor = start_engine(config_b, "--once", log_path=tmp_path / "b" / "engine.log")
        try:
            assert wait_until(lambda: sum(1 for r in sim.log_records("submit") if r["modem"] in ("modem-0", "modem-1"))
                              >= 40, 60), log_of(tmp_path / "a" / "engine.log")
            kill9(victim)
            with services.sessions() as s:
                held = set(s.scalars(select(Delivery.e164).where(Delivery.alert_id == alert_id,
                                                                  Delivery.state == "submitting",
                                                                  Delivery.node == "a")))
            assert held, "the victim held nothing when it was killed: nothing to take over"
            assert survivor.wait(timeout=120) == 0, log_of(tmp_path / "b" / "engine.log")
        finally:
            for engine in (victim, survivor):
                if engine.poll() is None:
                    engine.kill()
        by_state = states(services, alert_id)
        # The victim's sent SMS wait for status reports its modems will never read: 'sent', not lost.
        assert set(by_state) <= {"delivered", "sent"} and sum(by_state.values()) == 200, by_state
        submitted = submits_by_destination(sim)
        assert len(submitted) == 200
        with services.sessions() as s:
            flagged = dict(s.execute(select(Delivery.e164, Delivery.duplicate_cause).where(
                Delivery.alert_id == alert_id, Delivery.possible_duplicate.is_(True))).all())
            alarms = s.execute(select(Alarm.kind, Alarm.subject, Alarm.cleared_at)).all()
        twice = {number for number, count in submitted.items() if count > 1}
        assert twice <= set(flagged)
        # Every one the victim held in flight went again flagged, with the node's loss as the reason.
        assert held <= set(flagged) and set(flagged.values()) == {DuplicateCause.NODE_DOWN}
        assert [(kind, subject) for kind, subject, cleared in alarms if cleared is None] == [(NODE_DOWN, "a")]
        assert "node a silent for" in (tmp_path / "b" / "engine.log").read_text()


@pytest.mark.postgresql
def test_a_voice_alert_over_two_nodes_trunks_never_calls_a_number_more_than_its_cap(tmp_path, postgres_cluster):
    # Nobody answers: every number is called until its cap, some calls by one node, some by the other,
    # and one node is killed on the way (its calls that may have rung count).
    busy = {"answer": 0.0, "busy": 1.0, "no_answer": 0.0, "invalid_number": 0.0, "voicemail": 0.0,
            "congestion": 0.0}
    cap = 3
    with PbxSimulatorProcess(tmp_path / "pbx-a", trunks={"a-trunk": 4}, population=busy, time_scale=0.01,
                             secret="s3cret") as pbx_a, \
            PbxSimulatorProcess(tmp_path / "pbx-b", trunks={"b-trunk": 4}, population=busy, time_scale=0.01,
                                secret="s3cret") as pbx_b:
        database_url = postgres_cluster.new_database()
        config_a = node_config(tmp_path / "a", "a", database_url, pbx=pbx_a)
        config_b = node_config(tmp_path / "b", "b", database_url, pbx=pbx_b)
        services = services_for(config_a)
        rows = ["nome;telefono;zona"] + [f"Casa {i};06 6500 {i:04d};Fregene" for i in range(30)]
        assert import_contacts(services.sessions, ("\n".join(rows) + "\n").encode()).imported
        (tmp_path / "msg.wav").write_bytes(b"")
        alert_id, _ = services.alerts.create(AlertRequest(
            text="Allerta alluvione", channels=("voice",), target=Target(zones=("Fregene",)),
            audio_path=str(tmp_path / "msg"), audio_seconds=5.0, audio_source="tts", max_attempts=cap + 2,
            voice_interval=0.3, voice_growth=1.0, voice_cap=cap))
        victim = start_engine(config_a, log_path=tmp_path / "a" / "engine.log")
        survivor = start_engine(config_b, "--once", log_path=tmp_path / "b" / "engine.log")
        try:
            assert wait_until(lambda: len(pbx_a.calls()) >= 15, 60), log_of(tmp_path / "a" / "engine.log")
            kill9(victim)
            assert survivor.wait(timeout=120) == 0, log_of(tmp_path / "b" / "engine.log")
        finally:
            for engine in (victim, survivor):
                if engine.poll() is None:
                    engine.kill()
        calls = Counter(call["number"] for call in pbx_a.calls() + pbx_b.calls())
        assert len(calls) == 30 and max(calls.values()) <= cap, calls
        assert pbx_a.calls() and pbx_b.calls()
        assert set(states(services, alert_id)) == {"failed"}


def test_a_second_engine_on_one_sqlite_database_is_refused(tmp_path):
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", latency_median=0.02, latency_sigma=0.2,
                          report_delay=0.05) as sim:
        links = [m["link"] for m in sim.modems]
        first = engine_config(tmp_path, links[:1])
        # Another box's configuration (its own data_dir and modem) on the same SQLite file.
        other = tmp_path / "other"
        other.mkdir()
        second = other / "allerta.toml"
        second.write_text(first.read_text().replace(f'data_dir = "{tmp_path / "data"}"',
                                                    f'data_dir = "{other / "data"}"\n[database]\nurl = '
                                                    f'"sqlite:///{tmp_path / "data" / "allerta.db"}"')
                          .replace(links[0], links[1]).replace('label = "m0"', 'label = "m1"')
                          .replace("[engine]", '[engine]\nnode = "second"'))
        services_for(first)
        engine = start_engine(first, log_path=tmp_path / "engine.log")
        try:
            assert wait_until(lambda: "line m0 is up" in (tmp_path / "engine.log").read_text(), 60)
            refused = allerta(second, "run", "--once", check=False, timeout=60)
        finally:
            engine.terminate()
            engine.wait(timeout=60)
        assert refused.returncode != 0
        assert "SQLite is single-node" in refused.stderr and "PostgreSQL" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
