"""A modem is recognised by its IMEI when its fixed port name changes.

The SMS channel itself (workers, driver, python-gsmmodem-new) over the
simulator's real ptys; the scan directory stands in for /dev/allerta.
"""
import asyncio
import os
import time

import pytest

from gateway.core.channels import OutboundMessage
from gateway.core.config import ModemConfig
from modem.pool import SmsChannel
from modem.simulator.harness import SimulatorProcess
from modem.worker import WorkerSettings
from tests.engine_harness import RecordingEvents, wait_until

pytestmark = pytest.mark.integration

FAST = dict(latency_median=0.02, latency_sigma=0.3, report_delay=0.05)


def channel_for(port: str, imei: str, scan_dir) -> SmsChannel:
    config = ModemConfig(label="m", port=port, per_minute=6000, imei=imei)
    settings = WorkerSettings(send_timeout=10, health_interval=60, reopen_interval=0.2,
                              scan_dir=None if scan_dir is None else str(scan_dir))
    return SmsChannel([config], settings)


def modem_status(sim, name: str) -> dict:
    return next(m for m in sim.control({"cmd": "status"})["modems"] if m["modem"] == name)


def run_started(channel: SmsChannel, body) -> None:
    """Start the channel (which returns once the modem's first open ended), run ``body``, stop."""
    async def scenario():
        await channel.start(RecordingEvents())
        try:
            await body(channel)
        finally:
            await channel.stop()
    asyncio.run(scenario())


async def send_one(channel: SmsChannel) -> list[int]:
    receipt = await channel.submit(OutboundMessage(delivery_id=1, alert_id=1, number="+393331110001", text="prova"))
    return receipt.references


@pytest.mark.parametrize("configured", ["modem-usb-gone", "modem-0"], ids=["port missing", "port holds another"])
def test_fixed_port_missing_or_holding_another_modem_is_found_in_the_scan_directory(tmp_path, configured):
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", **FAST) as sim:
        wanted = sim.modems[1]["imei"]
        channel = channel_for(str(tmp_path / "links" / configured), wanted, tmp_path / "links")

        async def body(channel):
            line = channel.lines()[0]
            assert (line.state, line.port, line.imei) == ("up", str(tmp_path / "links" / "modem-1"), wanted)
            assert await send_one(channel)
        run_started(channel, body)
        assert [r["modem"] for r in sim.log_records("submit")] == ["modem-1"]
        # The other modem on the way was only asked for its IMEI.
        assert modem_status(sim, "modem-0")["commands"] <= 2


def test_without_a_scan_directory_the_wrong_modem_leaves_the_line_down(tmp_path):
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", **FAST) as sim:
        wanted = sim.modems[1]["imei"]
        channel = channel_for(str(tmp_path / "links" / "modem-0"), wanted, None)

        async def body(channel):
            line = channel.lines()[0]
            assert line.state == "down"
            assert f"holds IMEI {sim.modems[0]['imei']}, expected {wanted}" in line.last_error
        run_started(channel, body)


def test_a_modem_renamed_while_unplugged_comes_back_under_its_new_name(tmp_path):
    """udev's path-based name changes when the dongle goes into another USB socket."""
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", **FAST) as sim:
        wanted = sim.modems[1]["imei"]
        dev = tmp_path / "dev-allerta"
        dev.mkdir()
        # Links to the simulator's links, which follow its pty across a replug.
        os.symlink(tmp_path / "links" / "modem-0", dev / "modem-usb-1.1")
        os.symlink(tmp_path / "links" / "modem-1", dev / "modem-usb-1.2")
        channel = channel_for(str(dev / "modem-usb-1.2"), wanted, dev)

        async def body(channel):
            assert channel.lines()[0].state == "up"
            sim.control({"cmd": "unplug", "modem": "modem-1", "seconds": 1.0})
            (dev / "modem-usb-1.2").unlink()
            os.symlink(tmp_path / "links" / "modem-1", dev / "modem-usb-1.4")
            deadline = time.monotonic() + 30
            while channel.lines()[0].port != str(dev / "modem-usb-1.4") and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            line = channel.lines()[0]
            assert (line.state, line.port, line.imei) == ("up", str(dev / "modem-usb-1.4"), wanted)
            assert await send_one(channel)
        run_started(channel, body)
        assert wait_until(lambda: sim.log_records("submit"), 5)
        assert {r["modem"] for r in sim.log_records("submit")} == {"modem-1"}
