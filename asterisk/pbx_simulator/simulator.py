"""The simulated PBX: AMI listener on 127.0.0.1, trunks with channel limits, calls, log."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asterisk.ami_protocol import AmiMessage
from asterisk.asterisk_config import render_configs
from asterisk.dialplan_modules import APPLICATION_MODULES, BASE_MODULES, FUNCTION_MODULES
from asterisk.dialstring import trunk_of
from asterisk.pbx_simulator import channel_events as ev
from asterisk.pbx_simulator.calls import CallScript, SimulatedCall, ChannelRuntime
from asterisk.pbx_simulator.dialplan import Callee, ChannelRun, Dialplan, parse_dialplan
from asterisk.pbx_simulator.inbound import AgiSession, InboundCall, InboundScript
from asterisk.pbx_simulator.population import CallPlan, Population
from asterisk.pbx_simulator.session import AmiSession
from asterisk.q850 import REASON_FAILURE

# Only loopback, ever: the simulator accepts any Originate and must never be
# mistaken for, or exposed as, a real PBX.
HOST = "127.0.0.1"
KNOWN_TECHNOLOGIES = frozenset({"pjsip", "sip", "iax2", "dahdi", "dongle", "local"})
# The modules the simulated Asterisk has (ModuleCheck), unless configured as missing.
SIMULATED_MODULES = frozenset(APPLICATION_MODULES.values()) | frozenset(FUNCTION_MODULES.values()) | frozenset(
    BASE_MODULES) | frozenset({"chan_pjsip", "res_pjsip", "chan_local", "app_dial", "format_gsm", "format_pcm",
                              "res_musiconhold", "res_agi"})


def shipped_dialplan() -> str:
    """Our extensions_allerta.conf rendered with its defaults: what the simulator runs unless told."""
    return render_configs("allerta", "simulator-secret", "/var/lib/allerta/sounds")["extensions_allerta.conf"]


@dataclass
class SimulatorConfig:
    username: str = "allerta"
    secret: str = "allerta"
    port: int = 0
    trunks: dict[str, int] = field(default_factory=dict)   # trunk name -> channel limit
    time_scale: float = 1.0
    log_path: Path | None = None
    version: str = "11.0.0"                                 # Asterisk 22's AMI version
    # The classes of asterisk/conf/manager_allerta.conf: no dtmf, no command.
    read_classes: frozenset[str] = frozenset({"call", "user", "originate", "system"})
    write_classes: frozenset[str] = frozenset({"originate", "call", "system"})
    # Contexts of extensions_allerta.conf the simulated dialplan has loaded (Getvar DIALPLAN_EXISTS).
    dialplan_contexts: frozenset[str] = frozenset({"allerta-outbound", "allerta-hangup"})
    # The dialplan the answered calls run (a rendered extensions_allerta.conf); None: ours, rendered.
    dialplan: str | None = None
    # Modules not loaded: ModuleCheck says so, and the dialplan's use of them fails as in Asterisk.
    missing_modules: frozenset[str] = frozenset()
    # Whether STAT()/Playback look at the real files (and their length); else every file exists.
    sounds_on_disk: bool = False
    # Share of calls failing at once whose OriginateResponse comes before the channel events
    # (about 0.01 on a real Asterisk 22; 1.0 in tests that need the order every time).
    response_first: float = 0.0
    # Where calls to the town's number go (extensions_allerta.conf) and the number itself.
    hotline_context: str = "allerta-hotline"
    hotline_did: str = "0665999000"

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if not 0 <= self.response_first <= 1:
            raise ValueError("response_first must be between 0 and 1")
        for name, limit in self.trunks.items():
            if limit < 0:
                raise ValueError(f"trunk {name}: channel limit must be >= 0")


def _parse_variables(action: AmiMessage) -> dict[str, str]:
    # manager.c splits every Variable header on commas as well.
    variables: dict[str, str] = {}
    for header in action.get_all("Variable"):
        for item in header.split(","):
            key, sep, value = item.partition("=")
            if sep and key.strip():
                variables[key.strip()] = value
    return variables


class PbxSimulator:
    def __init__(self, config: SimulatorConfig, population: Population) -> None:
        self.config = config
        self.population = population
        self.sessions: set[AmiSession] = set()
        self.calls: dict[asyncio.Task[None], SimulatedCall] = {}
        self.received: list[list[tuple[str, str]]] = []
        # Action name -> how many more to refuse (a PBX under load, a module reloading).
        self.failing_actions: dict[str, int] = {}
        self.totals: dict[str, int] = {}
        self.port = config.port
        self.accepting = False
        self._server: asyncio.Server | None = None
        self._reopen: asyncio.TimerHandle | None = None
        self._booted = time.monotonic()
        self._uid_base = int(time.time())
        self._uid_counter = 0
        self._sequence = 0
        self.dialplan: Dialplan = parse_dialplan(config.dialplan if config.dialplan is not None
                                                 else shipped_dialplan())
        # AstDB, (family, key) -> value: what Set(DB(...)) leaves (our dialplan stores a
        # confirmation there) and DBGet reads back; it survives an AMI link drop.
        self.astdb: dict[tuple[str, str], str] = {}
        self._order_random = random.Random(0)
        # Inbound calls to the hotline: in progress, and every one since the last reset.
        self.inbound: dict[asyncio.Task[None], InboundCall] = {}
        self.inbound_log: list[InboundCall] = []

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, HOST, self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self.accepting = True
        return self.port

    async def stop(self) -> None:
        await self._close_listener()
        self.drop_calls()
        self.drop_connections()

    async def _close_listener(self) -> None:
        self.accepting = False
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = AmiSession(self, reader, writer)
        self.sessions.add(session)
        try:
            await session.serve()
        except asyncio.CancelledError:
            # Only happens when the loop shuts down under an open connection;
            # asyncio 3.11 would print the cancellation as an error.
            pass

    def note(self, text: str) -> None:
        print(f"pbx-simulator: {text}", file=sys.stderr, flush=True)

    # --- CallHost -----------------------------------------------------------------

    def emit(self, pairs: ev.Pairs) -> None:
        event_class = dict(pairs).get("Privilege", "call,all").split(",")[0]
        for session in list(self.sessions):
            if session.wants(event_class):
                session.send(pairs)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def new_uniqueid(self) -> str:
        uid = f"{self._uid_base}.{self._uid_counter}"
        self._uid_counter += 1
        return uid

    def new_sequence(self) -> int:
        seq = self._sequence
        self._sequence += 1
        return seq

    def module_loaded(self, module: str) -> bool:
        name = module.removesuffix(".so")
        return name == "pbx_builtin" or (name in SIMULATED_MODULES and name not in self.config.missing_modules)

    def file_exists(self, path: str) -> bool:
        return os.path.isfile(path) if self.config.sounds_on_disk else True

    def file_seconds(self, path: str) -> float | None:
        if not self.config.sounds_on_disk:
            return None
        try:
            with wave.open(path, "rb") as audio:
                return audio.getnframes() / audio.getframerate()
        except (OSError, wave.Error, EOFError):
            return None

    def uptime(self) -> int:
        return int(time.monotonic() - self._booted)

    # --- calls --------------------------------------------------------------------

    def record_action(self, action: AmiMessage) -> None:
        pairs = [(k, "********" if k.lower() == "secret" else v) for k, v in action.pairs]
        self.received.append(pairs)

    def check_originate(self, action: AmiMessage) -> str | None:
        """The immediate error manager.c would give, or None."""
        channel = (action.get("Channel") or "").strip()
        if not channel:
            return "Channel not specified"
        technology, sep, data = channel.partition("/")
        if not sep or not data or technology.lower() not in KNOWN_TECHNOLOGIES:
            return "Invalid channel"
        if not action.get("Application") and not action.get("Exten"):
            return "Exten not specified"
        timeout = action.get("Timeout")
        if timeout is not None and not timeout.strip().isdigit():
            return "Invalid timeout"
        return None

    def active_on(self, trunk: str) -> int:
        """Channels in use on ``trunk``: the calls we placed and the calls coming in."""
        return (sum(1 for call in self.calls.values() if call.trunk == trunk)
                + sum(1 for call in self.inbound.values() if call.trunk == trunk))

    # --- inbound ------------------------------------------------------------------

    def incoming_call(self, script: InboundScript, trunk: str | None = None) -> InboundCall:
        """A caller dialling the town's number on ``trunk`` (the first one by default)."""
        trunk = trunk or next(iter(self.config.trunks), "trunk1")
        uid = self.new_uniqueid()
        call = InboundCall(len(self.inbound_log) + 1, trunk, script,
                           f"PJSIP/{trunk}-{self.new_sequence():08x}", uid)
        self.inbound_log.append(call)
        limit = self.config.trunks.get(trunk)
        if limit is None or self.active_on(trunk) >= limit:
            # Every channel busy: the trunk refuses the call (the caller hears busy).
            call.agi_status, call.hung_up_by, call.ended = "refused", "trunk", True
            call.ended_at = call.started_at
            call.inbound_on_trunk = sum(1 for other in self.inbound.values() if other.trunk == trunk)
            self._count("inbound_refused")
            return call
        task = asyncio.get_running_loop().create_task(self._run_inbound(call))
        self.inbound[task] = call
        return call

    def _count(self, outcome: str) -> None:
        self.totals[outcome] = self.totals.get(outcome, 0) + 1

    async def _run_inbound(self, call: InboundCall) -> None:
        channel = ev.SimChannel(call.channel, call.uniqueid, call.uniqueid, self.config.hotline_context,
                                "s", state=6, language="it")
        runtime = _InboundRuntime(self, channel, self.config.time_scale, call)
        variables = {"UNIQUEID": call.uniqueid, "CALLERID(num)": call.script.caller or ""}
        run = ChannelRun(self.dialplan, runtime, Callee(), variables, self.config.hotline_context, "s")
        self.emit(ev.channel_event("Newchannel", channel))
        try:
            cause = await run.run()
            call.hung_up_by = call.hung_up_by or "dialplan"
            self.emit(ev.hangup(channel, cause))
            self._count("inbound_answered")
        finally:
            call.ended, call.ended_at = True, dt.datetime.now(dt.timezone.utc)
            self.inbound.pop(asyncio.current_task(), None)  # type: ignore[arg-type]

    def place_call(self, action: AmiMessage, asynchronous: bool) -> SimulatedCall:
        requested = action["Channel"].strip()
        technology, trunk = trunk_of(requested)
        data = requested.split("/", 1)[1]
        number = data.split("@", 1)[0].rsplit("/", 1)[-1]
        active = self.active_on(trunk)
        limit = self.config.trunks.get(trunk)
        if limit is None:
            plan, attempt = CallPlan("no_such_trunk", 0, 0), 0
        elif active >= limit:
            plan, attempt = CallPlan("over_limit", 0, 0), 0
        else:
            plan, attempt = self.population.plan_call(number)
            active += 1
        call = SimulatedCall(
            number=number, technology=technology, trunk=trunk, requested=requested,
            context=action.get("Context") or "", exten=action.get("Exten") or "s",
            action_id=action.get("ActionID"), channel_id=action.get("ChannelId"),
            variables=_parse_variables(action),
            timeout_seconds=int(action.get("Timeout") or 30000) / 1000 * self.config.time_scale,
            plan=plan, attempt=attempt, concurrent=active, send_response=asynchronous,
            response_first=self._order_random.random() < self.config.response_first)
        task = asyncio.get_running_loop().create_task(self._run_call(call))
        self.calls[task] = call
        return call

    async def _run_call(self, call: SimulatedCall) -> None:
        try:
            if call.plan.behaviour == "no_such_trunk":
                # The endpoint does not exist: ast_request fails, no channel
                # is created, so no channel events; only the OriginateResponse.
                call.outcome, call.ended_at = "no_such_trunk", dt.datetime.now(dt.timezone.utc)
                if call.send_response:
                    self.emit(ev.originate_response(call.action_id, False, call.requested,
                                                    call.context, call.exten, REASON_FAILURE,
                                                    call.channel_id or "<unknown>"))
            else:
                await CallScript(call, self, self.config.time_scale).run()
        except asyncio.CancelledError:
            call.ended_at = dt.datetime.now(dt.timezone.utc)
            call.outcome = "pbx_restart" if call.outcome == "pbx_restart" else "dropped"
            raise
        finally:
            self.calls.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            call.answered_event.set()
            if not call.forgotten:
                self._count_and_log(call)

    def _count_and_log(self, call: SimulatedCall) -> None:
        self.totals[call.outcome or "unknown"] = self.totals.get(call.outcome or "unknown", 0) + 1
        self._log(call)

    async def wait_answered_or_ended(self, call: SimulatedCall) -> None:
        await call.answered_event.wait()

    def _log(self, call: SimulatedCall) -> None:
        if self.config.log_path is None:
            return
        with open(self.config.log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(call.log_record()) + "\n")

    def channel_items(self) -> list[tuple[ev.SimChannel, str]]:
        now = dt.datetime.now(dt.timezone.utc)
        items = []
        for call in self.calls.values():
            seconds = int((now - call.started_at).total_seconds())
            duration = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            items.extend((channel, duration) for channel in call.channels)
        return items

    def core_show_channels(self) -> list[str]:
        lines = [f"{'Channel':<20} {'Location':<20} {'State':<7} Application(Data)"]
        items = self.channel_items()
        for channel, _ in items:
            location = f"{channel.exten}@{channel.context}:{channel.priority}"
            state = ev.STATE_DESC.get(channel.state, "Unknown")
            application = "Read(DIGIT,,1,,1,5)" if channel.state == 6 else "AppDial((Outgoing Line))"
            lines.append(f"{channel.name:<20} {location:<20} {state:<7} {application}")
        calls = len(self.calls)
        lines.append(f"{len(items)} active channel{'s' if len(items) != 1 else ''}")
        lines.append(f"{calls} active call{'s' if calls != 1 else ''}")
        processed = sum(self.totals.values()) + calls
        lines.append(f"{processed} call{'s' if processed != 1 else ''} processed")
        return lines

    # --- controls -----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        trunks = {name: {"active": self.active_on(name), "limit": limit}
                  for name, limit in self.config.trunks.items()}
        return {"trunks": trunks, "active_calls": len(self.calls), "inbound_calls": len(self.inbound),
                "totals": dict(self.totals),
                "placed": sum(self.totals.values()) + len(self.calls),
                "connections": len(self.sessions),
                "authenticated": sum(1 for s in self.sessions if s.authenticated),
                "accepting": self.accepting, "port": self.port}

    def drop_connections(self) -> int:
        """Close every AMI socket without Goodbye; calls go on, as in a real PBX."""
        sessions = list(self.sessions)
        for session in sessions:
            session.abort()
        self.sessions.clear()
        return len(sessions)

    def drop_calls(self) -> int:
        tasks = list(self.calls) + list(self.inbound)
        for task in tasks:
            task.cancel()
        return len(tasks)

    async def restart(self, seconds: float) -> None:
        """Lose every call and connection and refuse connections for ``seconds``."""
        await self._close_listener()
        self.drop_calls()
        self.drop_connections()
        if self._reopen is not None:
            self._reopen.cancel()
        loop = asyncio.get_running_loop()
        self._reopen = loop.call_later(seconds, lambda: loop.create_task(self._come_back()))

    async def core_restart(self, seconds: float) -> int:
        """``core restart now``: every channel hangs up with cause 0, a Shutdown event
        follows, then the AMI sockets close and the PBX is away for ``seconds``."""
        calls = list(self.calls.items())
        for task, call in calls:
            for channel in call.channels:
                self.emit(ev.hangup(channel, 0))
            call.outcome, call.cause = "pbx_restart", 0
            task.cancel()
        self.emit(ev.shutdown(restart=True))
        for session in list(self.sessions):
            await session.close()
        await self.restart(seconds)
        return len(calls)

    async def _come_back(self) -> None:
        self._reopen = None
        self._booted = time.monotonic()
        self._uid_base = int(time.time())
        await self.start()

    def reset(self) -> None:
        """Forget calls, counters, attempts and received actions; truncate the log."""
        for call in self.calls.values():
            call.forgotten = True
        self.drop_calls()
        self.received.clear()
        self.astdb.clear()
        self.inbound_log.clear()
        self.failing_actions.clear()
        self.totals.clear()
        self.population.reset()
        if self.config.log_path is not None:
            self.config.log_path.write_text("")


class _InboundRuntime(ChannelRuntime):
    """The interpreter's view for an inbound channel: AGI() connects to the script, files played are noted."""

    def __init__(self, host: PbxSimulator, channel: ev.SimChannel, speed: float, call: InboundCall) -> None:
        super().__init__(host, channel, speed)
        self.sim, self.call = host, call

    def played(self, path: str) -> None:
        self.call.played.append(path)

    async def agi(self, url: str, run: ChannelRun) -> str:
        caller = self.call.script.caller
        environment = {
            "channel": self.channel.name, "language": self.channel.language, "type": "PJSIP",
            "uniqueid": self.channel.uniqueid, "version": "22.10.1",
            "callerid": caller or "unknown", "calleridname": "unknown",
            # 0: presentation allowed; 32 (restricted) for a withheld number.
            "callingpres": "0" if caller else "32", "callingani2": "0", "callington": "0", "callingtns": "0",
            "dnid": self.sim.config.hotline_did, "rdnis": "unknown", "context": run.context,
            "extension": run.exten, "priority": "3", "enhanced": "0.0", "accountcode": "",
            "threadid": str(140231776028352 + self.call.id),
        }
        status = await AgiSession(self.call, run, environment).serve(url)
        self.call.agi_status = status
        return status
