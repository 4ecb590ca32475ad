"""The simulator as a subprocess: ready line, panoramisk 1.4, controls."""
from __future__ import annotations

import asyncio
import socket
import time

import pytest
from panoramisk import Manager

from asterisk.pbx_simulator.harness import PbxSimulatorProcess, SimulatorStartError
from tests.test_pbx_simulator import AmiTestClient, originate

pytestmark = pytest.mark.integration  # a simulator subprocess on a TCP port


def test_panoramisk_connects_and_logs_in(tmp_path):
    with PbxSimulatorProcess(tmp_path, secret="right-secret") as pbx:
        async def scenario():
            manager = Manager(host="127.0.0.1", port=pbx.port, username="allerta",
                              secret="right-secret", ping_delay=0)
            await manager.connect()
            for _ in range(100):
                if manager.authenticated:
                    break
                await asyncio.sleep(0.02)
            pong = await manager.send_action({"Action": "Ping"})
            manager.close()
            return manager.authenticated, pong
        authenticated, pong = asyncio.run(scenario())
        assert authenticated
        assert pong.Ping == "Pong"
        assert pbx.control({"cmd": "received"})["actions"][0][0] == ["Action", "Login"]


def test_controls_drop_restart_reset(tmp_path):
    population = {"overrides": {"+393330000001": {"behaviour": "listen", "listen_seconds": 30}}}
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 2}, population=population) as pbx:
        async def place_and_drop():
            client = await AmiTestClient.connect(pbx.port)
            await client.login()
            # As the engine does: the message to play (the simulator does not look for the file).
            originate(client, "A", "PJSIP/393330000001@trunk1", ("ChannelId", "k1"),
                      ("Variable", "ALLERTA_AUDIO=/var/lib/allerta/sounds/m1"), context="allerta-outbound")
            await client.collect(0.2)
            status = pbx.control({"cmd": "status"})
            assert status["trunks"]["trunk1"] == {"active": 1, "limit": 2}
            assert pbx.control({"cmd": "drop_connections"})["dropped"] == 1
            await client.collect(0.3)
            assert client.reader.at_eof()
        asyncio.run(place_and_drop())
        # The call went on without the AMI connection, like a real PBX.
        assert pbx.control({"cmd": "status"})["active_calls"] == 1
        deadline = time.monotonic() + 5
        while not pbx.calls() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pbx.calls()[0]["outcome"] == "listened"

        assert pbx.control({"cmd": "restart", "seconds": 0.5})["ok"]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", pbx.port), timeout=1).close()
        time.sleep(0.8)
        with socket.create_connection(("127.0.0.1", pbx.port), timeout=1) as sock:
            assert sock.recv(100).startswith(b"Asterisk Call Manager/11.0.0\r\n")

        assert pbx.control({"cmd": "reset"})["ok"]
        assert pbx.calls() == []
        assert pbx.control({"cmd": "received"})["actions"] == []
        assert pbx.control({"cmd": "bogus"}) == {"ok": False, "error": "unknown command 'bogus'"}
        assert pbx.control({"cmd": "set_limit", "trunk": "trunk9", "limit": 1})["ok"]
        assert pbx.control({"cmd": "status"})["trunks"]["trunk9"]["limit"] == 1


def test_bad_arguments_give_clear_start_error(tmp_path):
    with pytest.raises(SimulatorStartError, match="NAME=LIMIT"):
        with PbxSimulatorProcess(tmp_path, trunks={"bad": "x"}):  # type: ignore[dict-item]
            pass
