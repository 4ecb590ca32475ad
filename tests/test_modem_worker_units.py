"""ModemWorker's own decisions with an in-process fake driver (the real path is in test_engine_sms*)."""
import asyncio
import threading

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
