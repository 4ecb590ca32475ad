"""Stored status reports (+CDSI) over a real pty: collected in batches between sends,
deleted from the modem only once the engine recorded them.

The SMS channel itself (worker, driver, python-gsmmodem-new) against the simulator.
"""
import asyncio

import pytest

from gateway.core.channels import DeliveryFailed, OutboundMessage
from gateway.core.config import ModemConfig
from modem.pool import SmsChannel
from modem.simulator.harness import SimulatorProcess
from modem.worker import WorkerSettings
from tests.engine_harness import RecordingEvents

pytestmark = pytest.mark.integration


class Events(RecordingEvents):
    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.recorded: list[int] = []
        self.refused: list[int] = []
        self.calls = 0
        self._fail_first = fail_first

    def status_reports(self, line, reports):
        self.calls += 1
        if self.calls <= self._fail_first:
            self.refused.extend(r.reference for r in reports)
            raise RuntimeError("database is locked")   # as a failed commit would
        self.recorded.extend(r.reference for r in reports if r.delivered)


async def wait_until(predicate, timeout: float) -> None:
    """Poll without blocking the loop (the channel's callbacks run on it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def modem_status(sim) -> dict:
    return next(m for m in sim.control({"cmd": "status"})["modems"] if m["modem"] == "modem-0")


def channel_for(sim) -> SmsChannel:
    config = ModemConfig(label="m", port=sim.modems[0]["link"], per_minute=60_000)
    return SmsChannel([config], WorkerSettings(send_timeout=10, health_interval=600, scan_dir=None))


async def send(channel: SmsChannel, index: int) -> list[int]:
    message = OutboundMessage(delivery_id=index, alert_id=1, number=f"+39333111{index:04d}", text="prova")
    while True:
        try:
            return (await channel.submit(message)).references
        except DeliveryFailed as exc:
            assert exc.reason == "no modem free", exc.reason
            await asyncio.sleep(0.005)


def test_reports_are_collected_in_batches_between_sends_and_deleted_once_recorded(tmp_path):
    count = 24
    # A model with a memory for reports alone (Telit UC864), listed whole; where reports share the
    # inbox memory (generic, Huawei) each announced one is read by its index (see below).
    with SimulatorProcess(count=1, profile="telit", link_dir=tmp_path / "links", latency_median=0.1,
                          latency_sigma=0, report_delay=0.01) as sim:
        events = Events()
        channel = channel_for(sim)
        result: dict = {}

        async def scenario():
            await channel.start(events)
            try:
                commands_before = modem_status(sim)["commands"]
                # Two sends in flight at all times, as the dispatcher keeps them: the
                # modem is never idle, so its reports wait for a batch.
                pending = set()
                references = []
                for index in range(count):
                    while len(pending) >= 2:
                        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                        references += [ref for task in done for ref in task.result()]
                    pending.add(asyncio.create_task(send(channel, index)))
                    await asyncio.sleep(0)
                for task in pending:
                    references += await task
                await wait_until(lambda: len(events.recorded) == count, timeout=20)
                result.update(references=references, calls=events.calls,
                              commands=modem_status(sim)["commands"] - commands_before)
            finally:
                await channel.stop()

        asyncio.run(scenario())
        after_stop = modem_status(sim)
    assert sorted(events.recorded) == sorted(result["references"]) and len(set(result["references"])) == count
    # Reading each report as it came took two more commands per SMS (AT+CMGR, AT+CMGD);
    # batches take fewer than one, and fewer hand-overs (commits) than reports.
    assert result["commands"] - count < count * 3 / 4, result
    assert result["calls"] < count, result
    # Everything recorded was deleted from the modem (the last batch as the channel stopped).
    assert after_stop["stored"]["SR"] == 0, after_stop["stored"]


@pytest.mark.parametrize("profile, memory", [("telit", "SR"), ("generic", "ME"), ("huawei", "ME")])
def test_a_report_the_engine_could_not_record_stays_stored_and_is_recorded_later(tmp_path, profile, memory):
    with SimulatorProcess(count=1, profile=profile, link_dir=tmp_path / "links", latency_median=0.02,
                          latency_sigma=0, report_delay=0.01) as sim:
        events = Events(fail_first=1)
        channel = channel_for(sim)
        stored_after_refusal: list[int] = []

        async def scenario():
            await channel.start(events)
            try:
                references = await send(channel, 1)
                await wait_until(lambda: events.refused, timeout=10)
                stored_after_refusal.append(modem_status(sim)["stored"][memory])
                await wait_until(lambda: events.recorded, timeout=10)
                assert events.recorded == references == events.refused
            finally:
                await channel.stop()

        asyncio.run(scenario())
        assert sum(modem_status(sim)["stored"].values()) == 0
    assert stored_after_refusal == [1]


@pytest.mark.parametrize("profile", ["generic", "huawei", "sim800", "telit"])
def test_every_profile_gets_every_report_to_the_engine_and_ends_with_an_empty_memory(tmp_path, profile):
    """Wherever the model puts reports (its inbox memory, SR, or +CDS straight to us), all are recorded."""
    count = 6
    with SimulatorProcess(count=1, profile=profile, link_dir=tmp_path / "links", latency_median=0.02,
                          latency_sigma=0, report_delay=0.01) as sim:
        events = Events()
        channel = channel_for(sim)
        references: list[int] = []

        async def scenario():
            await channel.start(events)
            try:
                for index in range(count):
                    references.extend(await send(channel, index))
                await wait_until(lambda: len(events.recorded) == count, timeout=20)
            finally:
                await channel.stop()

        asyncio.run(scenario())
        assert sorted(events.recorded) == sorted(references)
        assert sum(modem_status(sim)["stored"].values()) == 0
        assert not [r for r in sim.log_records("status_report") if "dropped" in r]



def test_a_modem_without_a_report_memory_is_asked_for_it_once(tmp_path, monkeypatch):
    """A SIM800 has no "SR" memory (AT+CPMS="SR" is +CMS ERROR 302). The engine went on selecting it at
    every pass, about once a second while idle, costing the line a command each time."""
    monkeypatch.setattr("modem.stored_reports.SWEEP_AFTER", 0.2)
    trace = tmp_path / "trace.txt"
    with SimulatorProcess(count=1, profile="sim800", link_dir=tmp_path / "links", latency_median=0.02,
                          latency_sigma=0, report_delay=0.01, trace=trace) as sim:
        events = Events()
        channel = channel_for(sim)

        async def scenario():
            await channel.start(events)
            try:
                for index in range(2):
                    await send(channel, index)
                await wait_until(lambda: len(events.recorded) == 2, timeout=20)
                await asyncio.sleep(3)   # several idle sweeps
            finally:
                await channel.stop()

        asyncio.run(scenario())
    asked = [line for line in trace.read_text().splitlines() if '< AT+CPMS="SR"' in line]
    assert len(asked) == 1, asked
