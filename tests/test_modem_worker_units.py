"""ModemWorker's own decisions with an in-process fake driver (the real path is in test_engine_sms*)."""
import asyncio
import threading
import time

import pytest

from gateway.core.config import ModemConfig
from modem.driver import Health, ModemDriver, ModemError, SubmitError
from modem.pool import SmsChannel
from modem.send_queue import SendJob
from modem.worker import ModemWorker, PortRegistry, WorkerSettings


class SilentAfterOpen:
    """Answers the open, then nothing: the worker must reopen it after a few silent probes."""
    opened = 0
    closed = 0

    def __init__(self, port, baud, pin, **callbacks):
        self.port, self.alive = port, False
        self.imei, self.manufacturer, self.model = "490154203237518", "Fake", "Silent"

    def open(self, expected_imei=None):
        type(self).opened += 1
        self.alive = True

    def close(self):
        type(self).closed += 1
        self.alive = False

    def service_reports(self, idle):
        pass

    def service_inbox(self):
        pass

    def finish_reports(self):
        pass

    def make_room_for_reports(self):
        pass

    def health(self):
        if type(self).opened == 1:
            raise ModemError(f"no answer to AT+CSQ on {self.port}")
        return Health(signal=20, registration="home", operator="TIM", sim_state="READY")


def test_a_modem_silent_through_its_probes_is_reopened_and_comes_back(tmp_path):
    port = tmp_path / "ttyFAKE"
    port.write_text("")
    states = []

    async def scenario():
        loop = asyncio.get_running_loop()
        up_again = asyncio.Event()

        def on_status(status):
            states.append(status.state)
            if status.state == "up" and SilentAfterOpen.opened > 1:
                up_again.set()

        worker = ModemWorker(ModemConfig(label="m0", port=str(port)), loop=loop,
                             settings=WorkerSettings(probe_interval=0.05, health_interval=0.05, reopen_interval=0.05,
                                                     scan_dir=None),
                             ports=PortRegistry(), sent_today=0, on_status_reports=lambda *a: None,
                             on_part=lambda part: None, on_status=on_status, on_free=lambda: None,
                             driver_factory=SilentAfterOpen)
        worker.start()
        await asyncio.wait_for(worker.first_attempt_done.wait(), 10)
        worker.state = "suspended"          # as after its send errors; the thread probes it now
        await asyncio.wait_for(up_again.wait(), 10)
        await worker.stop()

    asyncio.run(scenario())
    assert SilentAfterOpen.opened == 2 and SilentAfterOpen.closed >= 1
    assert states[-1] == "up"
    assert not [t for t in threading.enumerate() if t.name == "modem-m0"]


def idle_worker(loop, statuses, **config) -> ModemWorker:
    """A worker whose thread is never started: its loop side alone."""
    return ModemWorker(ModemConfig(label="m0", port="/dev/null-modem", **config), loop=loop,
                       settings=WorkerSettings(error_threshold=3, scan_dir=None), ports=PortRegistry(),
                       sent_today=0, on_status_reports=lambda *a: None, on_part=lambda part: None,
                       on_status=statuses.append, on_free=lambda: None)


def test_the_third_line_fault_in_a_row_takes_the_worker_out_of_rotation():
    loop = asyncio.new_event_loop()
    try:
        statuses = []
        worker = idle_worker(loop, statuses)
        worker.state = "up"
        for _ in range(3):
            assert worker.can_take(1, time.monotonic())
            worker.job_done(1, 0.0, ok=False, line_fault=True, error="+CMS ERROR 38")
        assert [s.state for s in statuses] == ["up", "up", "suspended"]
        assert statuses[-1].failed_total == 3 and statuses[-1].last_error == "+CMS ERROR 38"
        assert not worker.can_take(1, time.monotonic())
        assert worker.measured_rate() == 0
    finally:
        loop.close()


def test_handed_over_sends_count_against_the_daily_cap_and_the_pipeline():
    loop = asyncio.new_event_loop()
    try:
        statuses = []
        worker = idle_worker(loop, statuses, daily_cap=3, per_minute=6000)
        worker.state = "up"
        worker.submit([object(), object()])
        later = time.monotonic() + 1
        assert worker.queued == 1 and worker.can_take(1, later) and not worker.can_take(2, later)
        worker.submit([object()])
        assert not worker.can_take(1, later + 1)              # two sends in hand: the pipeline is full
        worker.job_done(2, 0.0, ok=True, line_fault=False, error=None)
        worker.job_done(1, 0.0, ok=True, line_fault=False, error=None)
        assert statuses[-1].sent_today == 3 and statuses[-1].sent_total == 3
        assert not worker.can_take(1, later + 1)              # the day's budget is spent
    finally:
        loop.close()


def test_a_send_without_answer_takes_the_modem_out_at_once_and_moves_the_next_send():
    """A hung modem: one timeout suspends it (not error_threshold of them, each costing send_timeout while
    the other modems idle), and the send queued behind it goes back unsent."""
    loop = asyncio.new_event_loop()
    try:
        statuses = []
        worker = idle_worker(loop, statuses)
        worker.state = "up"
        worker.submit([object()])
        behind = worker.submit([object()])
        worker.job_done(1, 0.0, ok=False, line_fault=True, error="no answer to the PDU within 10 s after AT+CMGS")
        assert statuses[-1].state == "up"          # one line fault alone would not take it out
        worker.stopped_answering("no answer to the PDU within 10 s after AT+CMGS")
        assert statuses[-1].state == "suspended" and not worker.can_take(1, time.monotonic())
        assert isinstance(behind.exception(), ModemError) and "moved to another modem" in str(behind.exception())
    finally:
        loop.close()


def test_a_send_that_waited_past_its_timeout_is_not_written():
    loop = asyncio.new_event_loop()
    try:
        worker = idle_worker(loop, [])
        worker._settings = WorkerSettings(send_timeout=5, scan_dir=None)
        future = loop.create_future()
        worker._send(SendJob([object()], future, handed_at=time.monotonic() - 6))   # no driver: never written
        loop.run_until_complete(asyncio.sleep(0.01))
        assert "moved to another modem" in str(future.exception())
    finally:
        loop.close()


def test_a_retry_waits_for_another_modem_rather_than_the_one_that_just_failed():
    loop = asyncio.new_event_loop()
    try:
        channel = SmsChannel([], WorkerSettings(scan_dir=None))
        failed, busy = idle_worker(loop, []), idle_worker(loop, [])
        failed.label, busy.label = "m0", "m1"
        channel.workers, channel._index = [failed, busy], {"m0": 0, "m1": 1}
        failed.state = busy.state = "up"
        busy.submit([object()])
        busy.submit([object()])                     # its pipeline is full: only m0 is free right now
        assert channel._pick(1, frozenset({"m0"})) is None
        busy.state = "suspended"                    # m0 is the only modem left: it tries again
        assert channel._pick(1, frozenset({"m0"})) is failed
    finally:
        loop.close()


def test_an_unplugged_modem_reads_disconnected_not_a_python_error(caplog):
    class Unplugged:
        _txLock = threading.RLock()

        def let_handlers_go_first(self):
            pass

        def write(self, *args, **kwargs):
            raise IndexError("list index out of range")   # what the library raises when _fatal woke it

    driver = object.__new__(ModemDriver)
    driver.port, driver.alive, driver.prompt_timeout = "/dev/allerta/modem-1", True, 1.0
    driver._require = lambda: Unplugged()
    with pytest.raises(SubmitError) as raised:
        driver.submit([type("Pdu", (), {"tpdu_length": 20, "hex": "00"})()], 5)
    assert str(raised.value).startswith("modem disconnected (/dev/allerta/modem-1)")
    assert raised.value.modem_gone and "list index" not in str(raised.value)
    assert any(record.exc_info for record in caplog.records)   # the traceback is in the log
