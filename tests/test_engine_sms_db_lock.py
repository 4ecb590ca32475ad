"""The engine over simulated modems on real pseudo-terminals, with the SQLite file write-locked
by someone else mid-alert (a backup, a long panel query): the modems go on sending, nothing
is lost, every outcome is recorded once the lock is gone."""
import datetime as dt

import pytest
from sqlalchemy import func, select

from gateway.core.models import Attempt, SmsPart
from gateway.shell.db_lock import WriteLockHolder
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import flagged, start_engine, states, submits_by_destination
from tests.test_engine_sms import setup_alert

pytestmark = pytest.mark.integration

RECIPIENTS = 400


def test_a_write_locked_database_mid_alert_stalls_no_send_and_loses_nothing(tmp_path):
    with SimulatorProcess(count=4, link_dir=tmp_path / "links", latency_median=0.1, latency_sigma=0.1,
                          report_delay=0.05) as sim:
        # A short busy timeout: the engine's writes are refused (and retried) while the lock is held.
        config_path, services, alert_id = setup_alert(tmp_path, sim, RECIPIENTS,
                                                      extra="[database]\nbusy_timeout = 0.2\n")
        database = services.config.database_url.split("///", 1)[1]
        engine = start_engine(config_path, "--once", log_path=tmp_path / "engine.log")
        try:
            with WriteLockHolder(database, 3.0, lambda: len(sim.log_records("submit")) >= RECIPIENTS // 5) as lock:
                assert engine.wait(timeout=300) == 0
        finally:
            if engine.poll() is None:
                engine.kill()
        log = (tmp_path / "engine.log").read_text()
        assert lock.held is not None, log
        start, end = lock.held
        sent_during_lock = [r for r in sim.log_records("submit") if start <= _when(r) <= end]
        assert len(sent_during_lock) > 0, log
        assert "retrying until it lands" in log
        assert "never retrieved" not in log and "Traceback" not in log
        # Nothing lost, nothing twice, every outcome on record.
        assert states(services, alert_id) == {"delivered": RECIPIENTS}, log[-3000:]
        submitted = submits_by_destination(sim)
        assert len(submitted) == RECIPIENTS and set(submitted.values()) == {1}
        assert not flagged(services, alert_id)
        with services.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Attempt).where(Attempt.outcome == "sent")) == RECIPIENTS
            assert s.scalar(select(func.count()).select_from(SmsPart).where(SmsPart.status == "delivered")) \
                == RECIPIENTS


def _when(record):
    return dt.datetime.fromisoformat(record["time"]).timestamp()
