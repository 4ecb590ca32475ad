"""ModemWorker's own decisions with an in-process fake driver (the real path is in test_engine_sms*)."""
import asyncio
import threading
import time

from gateway.core.config import ModemConfig
from modem.driver import Health, ModemError
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
                             on_incoming=lambda *a: None, on_status=on_status, on_free=lambda: None,
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
                       sent_today=0, on_status_reports=lambda *a: None, on_incoming=lambda *a: None,
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
