"""Test controls over a unix socket: one JSON object per line in, one per line out.

Like the mock servers wazo tests against: ask what the PBX received, reset
it, or make it misbehave (drop every AMI connection, restart).

Commands (``{"cmd": ...}``):
  status                              active calls per trunk, totals, connections
  received                            every action received, in order (Secret masked)
  calls                               calls still in progress
  drop_connections                    close every AMI socket without Goodbye
  restart {"seconds": N}              drop calls and connections, refuse connections N s (real time)
  reset                               forget calls, counters, attempts, actions; truncate the log
  set_override {"number", ...}        change one callee's behaviour, as in the population file
  set_limit {"trunk", "limit"}        change or add a trunk's channel limit
  set_secret {"secret"}               the AMI secret later logins must give (an operator fixing it)
  fail_actions {"action", "count"}    answer the next N such actions with Response: Error
  core_restart {"seconds": N}         as 'core restart now': Hangup cause 0 on every channel,
                                      Shutdown, sockets closed, away N s (real time)
  set_event_order {"response_first"}  share (0..1) of instant failures whose OriginateResponse
                                      comes before the channel events, as on a real Asterisk
  astdb_set {"family", "key", "value"}  write AstDB as our dialplan does (value null deletes)
  astdb                               the whole AstDB, as [family, key, value] triples
  incoming_call {"caller", "keys", "hangup_after", "trunk"}
                                      a caller dialling the hotline (caller null: withheld; keys
                                      "3 2 1", one per question, "-" a silence; hangup_after in
                                      virtual seconds); answers its id
  inbound_calls                       every inbound call since the last reset: AGI status, the
                                      commands received, the files played, who hung up
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from asterisk.pbx_simulator.inbound import InboundScript
from asterisk.pbx_simulator.population import PopulationError
from asterisk.pbx_simulator.simulator import PbxSimulator


class ControlServer:
    def __init__(self, sim: PbxSimulator, path: Path) -> None:
        self.sim = sim
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.path.exists():
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.path.exists():
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("a request is a JSON object")
                    reply = await self.execute(request)
                except (ValueError, KeyError, TypeError, PopulationError) as exc:
                    reply = {"ok": False, "error": str(exc)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def execute(self, request: dict[str, Any]) -> dict[str, Any]:
        sim = self.sim
        command = request.get("cmd")
        if command == "status":
            return {"ok": True, **sim.status()}
        if command == "received":
            return {"ok": True, "actions": [[list(pair) for pair in action]
                                            for action in sim.received]}
        if command == "calls":
            return {"ok": True, "calls": [call.log_record() for call in sim.calls.values()]}
        if command == "drop_connections":
            return {"ok": True, "dropped": sim.drop_connections()}
        if command == "restart":
            await sim.restart(float(request.get("seconds", 1.0)))
            return {"ok": True}
        if command == "reset":
            sim.reset()
            return {"ok": True}
        if command == "set_override":
            override = {k: v for k, v in request.items() if k not in ("cmd", "number")}
            sim.population.set_override(str(request["number"]), override)
            return {"ok": True}
        if command == "set_limit":
            limit = int(request["limit"])
            if limit < 0:
                raise ValueError("limit must be >= 0")
            sim.config.trunks[str(request["trunk"])] = limit
            return {"ok": True}
        if command == "set_secret":
            sim.config.secret = str(request["secret"])
            return {"ok": True}
        if command == "fail_actions":
            count = int(request["count"])
            if count < 0:
                raise ValueError("count must be >= 0")
            sim.failing_actions[str(request["action"]).lower()] = count
            return {"ok": True}
        if command == "core_restart":
            return {"ok": True, "hung_up": await sim.core_restart(float(request.get("seconds", 1.0)))}
        if command == "set_event_order":
            share = float(request["response_first"])
            if not 0 <= share <= 1:
                raise ValueError("response_first must be between 0 and 1")
            sim.config.response_first = share
            return {"ok": True}
        if command == "astdb_set":
            where = (str(request["family"]), str(request["key"]))
            if request.get("value") is None:
                sim.astdb.pop(where, None)
            else:
                sim.astdb[where] = str(request["value"])
            return {"ok": True}
        if command == "astdb":
            return {"ok": True, "entries": [[f, k, v] for (f, k), v in sim.astdb.items()]}
        if command == "incoming_call":
            trunk = request.get("trunk")
            call = sim.incoming_call(InboundScript.from_request(request), None if trunk is None else str(trunk))
            return {"ok": True, "id": call.id, "refused": call.agi_status == "refused"}
        if command == "inbound_calls":
            return {"ok": True, "calls": [call.log_record() for call in sim.inbound_log]}
        raise ValueError(f"unknown command {command!r}")
