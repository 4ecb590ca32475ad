"""One AMI connection to the simulator, answering actions as manager.c does."""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from asterisk.ami_protocol import AmiMessage, AmiProtocolError, parse_messages, serialize
from asterisk.pbx_simulator import channel_events as ev

if TYPE_CHECKING:
    from asterisk.pbx_simulator.simulator import PbxSimulator

# Actions allowed before Login (manager.c: everything else is "Permission denied").
_UNAUTHENTICATED = {"login", "challenge", "logoff"}
# Write classes each action needs; any one of them is enough, as in manager.c.
_ACTION_AUTHORITY = {
    "ping": set(), "logoff": set(), "login": set(), "challenge": set(),
    "originate": {"originate"},
    "command": {"command"},
    "coreshowchannels": {"system", "reporting"},
    "getvar": {"call", "reporting"},
    "modulecheck": {"system"},
    # main/db.c: astdb_init registers DBGet with system|reporting, DBPut and DBDel with system.
    "dbget": {"system", "reporting"},
    "dbgettree": {"system", "reporting"},
    "dbput": {"system"},
    "dbdel": {"system"},
}
_EVENTS_OFF = {"off", "no", "false", "0", "none"}
_EVENTS_ON = {"on", "yes", "true", "1", "all"}


class AmiSession:
    def __init__(self, sim: PbxSimulator, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.authenticated = False
        self.event_classes: frozenset[str] = frozenset()
        self.closed = False

    # --- output -------------------------------------------------------------------

    def send(self, pairs: ev.Pairs) -> None:
        if not self.closed:
            self.writer.write(serialize(pairs))

    def wants(self, event_class: str) -> bool:
        return self.authenticated and not self.closed and event_class in self.event_classes

    def respond(self, action: AmiMessage, response: str, message: str | None = None,
                *extra: tuple[str, str]) -> None:
        pairs: ev.Pairs = [("Response", response)]
        action_id = action.get("ActionID")
        if action_id is not None:
            # Asterisk echoes ActionID only when the action carried one.
            pairs.append(("ActionID", action_id))
        if message is not None:
            pairs.append(("Message", message))
        self.send(pairs + list(extra))

    def abort(self) -> None:
        """Close without Goodbye, as when Asterisk dies or the link breaks."""
        self.closed = True
        self.writer.transport.abort()

    async def close(self) -> None:
        self.closed = True
        try:
            await self.writer.drain()
        except ConnectionError:
            pass
        self.writer.close()

    # --- input --------------------------------------------------------------------

    async def serve(self) -> None:
        self.writer.write(f"Asterisk Call Manager/{self.sim.config.version}\r\n".encode())
        buffer = b""
        try:
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                messages, buffer = parse_messages(buffer + data)
                for message in messages:
                    if message.greeting is None and not self.closed:
                        await self.handle(message)
                if not self.closed:
                    await self.writer.drain()
        except AmiProtocolError as exc:
            self.sim.note(f"protocol error, closing: {exc}")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.sim.sessions.discard(self)
            if not self.closed:
                await self.close()

    async def handle(self, action: AmiMessage) -> None:
        name = (action.get("Action") or "").strip().lower()
        self.sim.record_action(action)
        if not name:
            self.respond(action, "Error", "Missing action in request")
            return
        if not self.authenticated and name not in _UNAUTHENTICATED:
            self.respond(action, "Error", "Permission denied")
            return
        needed = _ACTION_AUTHORITY.get(name)
        if needed and not needed & self.sim.config.write_classes:
            self.respond(action, "Error", "Permission denied")
            return
        if self.sim.failing_actions.get(name, 0) > 0:
            self.sim.failing_actions[name] -= 1
            self.respond(action, "Error", "Simulated failure (test control fail_actions)")
            return
        handler = getattr(self, f"_action_{name}", None)
        if handler is None:
            self.respond(action, "Error", f"Invalid/unknown command: {action.get('Action')}. "
                                          "Use Action: ListCommands to show available commands.")
            return
        await handler(action)

    async def _action_login(self, action: AmiMessage) -> None:
        config = self.sim.config
        if action.get("Username") != config.username or action.get("Secret") != config.secret:
            # manager.c sleeps a second before refusing, to slow down guessing.
            await asyncio.sleep(config.time_scale * 1.0)
            self.respond(action, "Error", "Authentication failed")
            await self.close()
            return
        self.authenticated = True
        self.event_classes = self._event_classes(action.get("Events"))
        self.respond(action, "Success", "Authentication accepted")
        if "system" in self.event_classes:
            self.send(ev.fully_booted(self.sim.uptime()))

    def _event_classes(self, events: str | None) -> frozenset[str]:
        read = self.sim.config.read_classes
        if events is None or events.strip().lower() in _EVENTS_ON:
            return read
        if events.strip().lower() in _EVENTS_OFF:
            return frozenset()
        return read & {c.strip().lower() for c in events.split(",")}

    async def _action_challenge(self, action: AmiMessage) -> None:
        self.respond(action, "Error", "Must specify AuthType")

    async def _action_ping(self, action: AmiMessage) -> None:
        self.respond(action, "Success", None, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))

    async def _action_logoff(self, action: AmiMessage) -> None:
        self.respond(action, "Goodbye", "Thanks for all the fish.")
        await self.close()

    async def _action_originate(self, action: AmiMessage) -> None:
        error = self.sim.check_originate(action)
        if error is not None:
            self.respond(action, "Error", error)
            return
        asynchronous = (action.get("Async") or "").strip().lower() in ("true", "yes", "1", "on")
        call = self.sim.place_call(action, asynchronous)
        if asynchronous:
            self.respond(action, "Success", "Originate successfully queued")
            return
        # Without Async, manager.c blocks this session until the call is
        # answered or failed, and no OriginateResponse event is sent.
        await self.sim.wait_answered_or_ended(call)
        if call.answered_at is not None:
            self.respond(action, "Success", "Originate successfully queued")
        else:
            self.respond(action, "Error", "Originate failed")

    async def _action_command(self, action: AmiMessage) -> None:
        command = " ".join((action.get("Command") or "").split())
        if command in ("core show channels", "core show channels concise"):
            lines = self.sim.core_show_channels()
            self.respond(action, "Success", "Command output follows",
                         *(("Output", line) for line in lines))
            return
        self.respond(action, "Error", "Command output follows",
                     ("Output", f"No such command '{command}' (type 'core show help {command}' "
                                "for other possible commands)"))

    async def _action_getvar(self, action: AmiMessage) -> None:
        # Without a Channel, manager.c evaluates a function on a dummy channel; the
        # only one we simulate is DIALPLAN_EXISTS(context,exten,priority), which
        # 'allerta doctor' uses to see that our dialplan is loaded.
        variable = action.get("Variable") or ""
        if not variable:
            self.respond(action, "Error", "No variable specified")
            return
        value = ""
        # Without func_dialplan the function is not registered and the value is empty.
        if (variable.upper().startswith("DIALPLAN_EXISTS(") and variable.endswith(")")
                and self.sim.module_loaded("func_dialplan")):
            context, _, rest = variable[len("DIALPLAN_EXISTS("):-1].partition(",")
            exten = rest.partition(",")[0] or "s"
            value = "1" if exten == "s" and context.strip() in self.sim.config.dialplan_contexts else "0"
        self.respond(action, "Success", None, ("Variable", variable), ("Value", value))

    async def _action_modulecheck(self, action: AmiMessage) -> None:
        # manager.c: "Module not loaded", or Success with an empty Version (kept since git).
        module = (action.get("Module") or "").strip()
        if not module or not self.sim.module_loaded(module):
            self.respond(action, "Error", "Module not loaded")
            return
        self.respond(action, "Success", None, ("Version", ""))

    async def _action_coreshowchannels(self, action: AmiMessage) -> None:
        action_id = action.get("ActionID")
        id_pairs = [("ActionID", action_id)] if action_id is not None else []
        self.respond(action, "Success", None, ("EventList", "start"),
                     ("Message", "Channels will follow"))
        items = self.sim.channel_items()
        for channel, duration in items:
            self.send([("Event", "CoreShowChannel"), *id_pairs, *channel.snapshot(),
                       ("BridgeId", ""), ("Application", "Read" if channel.state == 6 else "AppDial"),
                       ("ApplicationData", ""), ("Duration", duration)])
        self.send([("Event", "CoreShowChannelsComplete"), *id_pairs,
                   ("EventList", "Complete"), ("ListItems", str(len(items)))])

    async def _action_dbget(self, action: AmiMessage) -> None:
        family, key = action.get("Family") or "", action.get("Key") or ""
        if not family or not key:
            self.respond(action, "Error", "No family specified." if not family else "No key specified.")
            return
        value = self.sim.astdb.get((family, key))
        if value is None:
            self.respond(action, "Error", "Database entry not found")
            return
        # main/db.c manager_dbget: a list of one DBGetResponse, then DBGetComplete.
        action_id = action.get("ActionID")
        id_pairs = [("ActionID", action_id)] if action_id is not None else []
        self.respond(action, "Success", None, ("EventList", "start"), ("Message", "Result will follow"))
        self.send([("Event", "DBGetResponse"), ("Family", family), ("Key", key), ("Val", value), *id_pairs])
        self.send([("Event", "DBGetComplete"), *id_pairs, ("EventList", "Complete"), ("ListItems", "1")])

    async def _action_dbput(self, action: AmiMessage) -> None:
        family, key = action.get("Family") or "", action.get("Key") or ""
        if not family or not key:
            self.respond(action, "Error", "No family specified" if not family else "No key specified")
            return
        self.sim.astdb[(family, key)] = action.get("Val") or ""
        self.respond(action, "Success", "Updated database successfully")

    async def _action_dbdel(self, action: AmiMessage) -> None:
        family, key = action.get("Family") or "", action.get("Key") or ""
        if not family or not key:
            self.respond(action, "Error", "No family specified." if not family else "No key specified.")
            return
        if self.sim.astdb.pop((family, key), None) is None:
            self.respond(action, "Error", "Database entry not found")
            return
        self.respond(action, "Success", "Key deleted successfully")

    async def _action_dbgettree(self, action: AmiMessage) -> None:
        # main/db.c manager_db_tree_get: every key under Family (Key is the full path).
        family = (action.get("Family") or "").strip("/")
        action_id = action.get("ActionID")
        id_pairs = [("ActionID", action_id)] if action_id is not None else []
        entries = [(key, value) for (fam, key), value in self.sim.astdb.items() if not family or fam == family]
        self.respond(action, "Success", None, ("EventList", "start"), ("Message", "Result will follow"))
        for key, value in entries:
            self.send([("Event", "DBGetTreeResponse"), ("Key", f"/{family}/{key}"), ("Val", value), *id_pairs])
        self.send([("Event", "DBGetTreeComplete"), *id_pairs, ("EventList", "Complete"),
                   ("ListItems", str(len(entries)))])
