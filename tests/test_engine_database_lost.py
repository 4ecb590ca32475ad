"""The engine end to end on a real PostgreSQL that goes away mid-alert: `allerta run` drives simulated
modems over ptys; PostgreSQL is stopped (pg_ctl stop) for 20 s and started again. The engine stops
handing out work, keeps what its modems answer meanwhile, and resumes by itself: every recipient gets
the SMS, none twice. Killed while the database is away, it forgets nothing either: the next start
records the outcomes it journaled on disk instead of sending them again."""
import re
import subprocess

import pytest
from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.contacts_import import import_contacts
from gateway.core.models_ops import Alarm
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import (allerta, contacts_csv, engine_config, flagged, kill9, services_for, start_engine,
                                  states, submits_by_destination, wait_until)
from tests.pg_support import PostgresCluster

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]

RECIPIENTS = 300
OUTAGE_SECONDS = 20
MODEMS = dict(latency_median=0.02, latency_sigma=0.3, report_delay=0.05)
# Each modem's cap: slow enough that the alert is still going when the database stops.
PER_MINUTE = 600


@pytest.fixture
def cluster():
    """A cluster of this test's own: stopping the session's would break the other PostgreSQL tests."""
    started = PostgresCluster(durable=True).start()   # crashed by a test: it must keep what it acknowledged
    yield started
    started.stop()


def setup_alert(tmp_path, sim, cluster):
    url = cluster.new_database()
    config_path = engine_config(tmp_path, [m["link"] for m in sim.modems], per_minute=PER_MINUTE,
                                extra=f'[database]\nurl = "{url}"\n')
    services = services_for(config_path)
    report = import_contacts(services.sessions, contacts_csv(RECIPIENTS))
    assert report.imported and not report.rejected
    alert_id, _ = services.alerts.create(AlertRequest(text="Allerta: salire ai piani alti",
                                                      target=Target(zones=("Isola Sacra",))))
    return config_path, services, alert_id


def held_after_loss(log_path, sim) -> tuple[int, int]:
    """Waits for the engine to say the database is lost and that it holds its work: the SMS submitted
    by then, and how many sends the engine had in flight (they may still reach a modem after)."""
    assert wait_until(lambda: "event=database_lost" in log_path.read_text(), 60), log_path.read_text()[-3000:]
    submitted = len(sim.log_records("submit"))
    in_flight = re.search(r"event=database_lost .*in_flight=(\d+)", log_path.read_text())
    return submitted, int(in_flight[1])


def test_database_stopped_20_s_mid_alert_the_engine_resumes_by_itself_and_loses_nothing(tmp_path, cluster):
    with SimulatorProcess(count=4, link_dir=tmp_path / "links", **MODEMS) as sim:
        config_path, services, alert_id = setup_alert(tmp_path, sim, cluster)
        log_path = tmp_path / "engine.log"
        engine = start_engine(config_path, log_path=log_path)
        try:
            assert wait_until(lambda: len(sim.log_records("submit")) >= 60, 60), log_path.read_text()[-3000:]
            services.engine.dispose()   # the test's own connections would only see the stop too
            cluster.stop_server("fast")
            held, in_flight = held_after_loss(log_path, sim)
            assert "database unreachable since" in log_path.read_text()
            # The outage itself: 20 s without a database, whatever the engine does meanwhile.
            wait_until(lambda: engine.poll() is not None, OUTAGE_SECONDS)
            assert engine.poll() is None, log_path.read_text()[-3000:]
            during = len(sim.log_records("submit"))
            # Nothing new went to a modem: only what was on the wire when the engine saw the loss.
            assert during - held <= in_flight, log_path.read_text()[-6000:]
            assert during < RECIPIENTS
            cluster.start_server()
            assert wait_until(lambda: "event=database_back" in log_path.read_text(), 60), log_path.read_text()[-3000:]
            assert wait_until(lambda: states(services, alert_id) == {"delivered": RECIPIENTS}, 180), (
                states(services, alert_id), log_path.read_text()[-3000:])
        finally:
            engine.terminate()
            try:
                engine.wait(timeout=60)
            except subprocess.TimeoutExpired:
                kill9(engine)
        log = log_path.read_text()
        assert "Traceback" not in log, log[-5000:]
        submitted = submits_by_destination(sim)
        assert len(submitted) == RECIPIENTS
        # The engine never restarted: what it learned during the outage was recorded when the
        # database came back, so nothing went twice and nothing needed a flag.
        assert set(submitted.values()) == {1}
        assert flagged(services, alert_id) == set()
        with services.sessions() as s:
            alarms = s.scalars(select(Alarm).where(Alarm.kind == "database_lost")).all()
        assert len(alarms) == 1 and alarms[0].cleared_at is not None
        assert "database irraggiungibile" in alarms[0].message


def test_engine_killed_while_the_database_is_away_records_what_it_journaled_and_resends_nothing_it_knew_sent(
        tmp_path, cluster):
    with SimulatorProcess(count=4, link_dir=tmp_path / "links", **MODEMS) as sim:
        config_path, services, alert_id = setup_alert(tmp_path, sim, cluster)
        log_path = tmp_path / "engine.log"
        engine = start_engine(config_path, log_path=log_path)
        try:
            assert wait_until(lambda: len(sim.log_records("submit")) >= 60, 60), log_path.read_text()[-3000:]
            services.engine.dispose()
            cluster.stop_server("immediate")
            _, in_flight = held_after_loss(log_path, sim)
            # What was on the wire finishes and is journaled: the modems go quiet.
            quiet = [len(sim.log_records("submit"))]
            assert wait_until(lambda: quiet.append(len(sim.log_records("submit"))) or quiet[-1] == quiet[-2], 30,
                              interval=1.0)
        finally:
            kill9(engine)
        sent_before = submits_by_destination(sim)
        cluster.start_server()
        run = allerta(config_path, "run", "--once", timeout=300)
        if in_flight:   # their outcomes waited for the database in the journal: recorded, not resent
            assert "outcomes journaled by the previous run" in run.stdout + run.stderr, log_path.read_text()[-4000:]
        assert states(services, alert_id) == {"delivered": RECIPIENTS}
        submitted = submits_by_destination(sim)
        assert len(submitted) == RECIPIENTS
        # Every SMS the modems accepted before the kill was known from the journal: none went twice.
        twice = {number for number, count in submitted.items() if count > 1}
        assert twice == set(), (len(twice), len(sent_before))
        assert twice <= flagged(services, alert_id)
