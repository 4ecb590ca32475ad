"""One AMI connection, through panoramisk 1.4, with its known pitfalls handled.

panoramisk gives us the framing (``AMIProtocol``), ActionID correlation
(``Action`` futures) and event dispatch (``Manager.register_event``). What it
gets wrong (shared/reference/asterisk-ami.md, "panoramisk 1.4: known
pitfalls") is handled here:

a) An async Originate's future would wait for the OriginateResponse and
   swallow it. We send Originate with ``as_list=False``: the future resolves
   on the "queued" acknowledgement and is forgotten, so the OriginateResponse
   reaches the event callbacks like any other event. Outcomes are followed
   through events keyed by our own ChannelId.
b) Originate is always sent with ``Async: true``.
c) ``Manager.connect`` reconnects forever and a refused login raises nothing.
   We never call it: ``AmiClient`` opens the TCP connection itself, logs in
   with an ordinary action and checks the response, so a wrong secret is an
   ``AmiAuthError`` and a closed port an ``AmiUnreachable`` on first connect.
   Our protocol subclass reports a lost link to us instead of to the Manager,
   so reconnection (with capped exponential backoff) is ours alone.
d) No pong timeout in panoramisk: we send our own Ping every
   ``ping_interval`` and abort the socket when no Pong arrives in time.
e) Every action we send is in ``forgetable_actions``, so nothing, and above
   all no Originate, is resent after a reconnect; its awaiter gets
   ``AmiLinkDown`` instead.
f) ``CallManager`` is not used.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from panoramisk import Manager
from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from asterisk.ami_protocol import AmiMessage, serialize

from gateway.core.channels import ChannelUnusable

log = logging.getLogger(__name__)

EventCallback = Callable[[AmiMessage], None]
LinkCallback = Callable[[bool, str], None]
# Lower case: panoramisk compares ``action['action'].lower()`` with these.
FORGETABLE_ACTIONS = ("ping", "login", "logoff", "originate", "coreshowchannels", "command")
# UserEvents of asterisk/conf/extensions_allerta.conf, matched by their Delivery header.
ALLERTA_USER_EVENTS = frozenset({"allertaresult", "allertahangup", "allertaplaying"})

class AmiError(Exception):
    """Base of every error of the AMI client."""


class AmiAuthError(AmiError, ChannelUnusable):
    """The PBX refused our username or secret: retrying soon will not help."""


class AmiUnreachable(AmiError):
    """No AMI at host:port (refused, timed out, closed during login)."""


class AmiOriginateRejected(AmiError):
    """Asterisk answered the Originate with ``Response: Error``; no events follow."""


class AmiLinkDown(AmiError):
    """The link is down or went down before the action was answered.

    ``sent`` tells whether the action had been written to the socket: an
    Originate that was sent may have been placed anyway.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass(frozen=True)
class AmiSettings:
    username: str
    secret: str
    host: str = "127.0.0.1"
    port: int = 5038
    connect_timeout: float = 5.0
    # Asterisk waits about a second before refusing a login.
    login_timeout: float = 10.0
    action_timeout: float = 10.0
    ping_interval: float = 10.0
    ping_timeout: float = 5.0
    reconnect_initial: float = 1.0
    reconnect_max: float = 60.0
    # After a refused login: someone has to fix the secret, so ask again slowly
    # (one failed login a couple of minutes is no brute force, and Asterisk logs each).
    auth_retry_seconds: float = 120.0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _to_ami_message(message: Message) -> AmiMessage:
    pairs: list[tuple[str, str]] = []
    for key, value in message.items():
        if key == "content":
            continue  # panoramisk's body slot, not a header
        values = value if isinstance(value, list) else [value]
        pairs.extend((key, str(item)) for item in values)
    return AmiMessage(pairs=pairs)


class _Protocol(AMIProtocol):
    """panoramisk's protocol, wired to our Manager and reporting loss to us.

    ``AMIProtocol.connection_lost`` would call ``Manager.connection_lost``,
    which schedules an unconditional reconnect: pitfall c.
    """

    def __init__(self, manager: Manager, on_lost: Callable[[_Protocol, Exception | None], None]) -> None:
        super().__init__()
        self._manager = manager
        self._on_lost = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        manager = self._manager
        self.factory = manager
        self.log = manager.log
        self.config = manager.config
        self.encoding = manager.encoding = manager.config["encoding"]
        manager.protocol = self
        manager.responses = self.responses

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.close()
        self._on_lost(self, exc)

    def abort(self) -> None:
        """Drop the socket now; ``connection_lost`` follows."""
        self.transport.abort()


class AmiClient:
    """See the module docstring. Create it inside the running event loop."""

    def __init__(self, settings: AmiSettings, on_link: LinkCallback | None = None,
                 on_shutdown: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self._on_link = on_link
        # Asterisk is going away ('core restart now', 'core stop'): its Shutdown event.
        self._on_shutdown = on_shutdown
        self._loop = asyncio.get_running_loop()
        self._manager = Manager(host=settings.host, port=settings.port, events="on",
                                loop=self._loop, forgetable_actions=FORGETABLE_ACTIONS,
                                log=log)
        self._manager.register_event("*", self._dispatch)
        self._protocol: _Protocol | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._subscribers: dict[str, EventCallback] = {}
        self._deliveries: dict[str, str] = {}      # ALLERTA_DELIVERY -> ChannelId
        self._supervisor: asyncio.Task[None] | None = None
        # Set while there is no logged-in link: the supervisor reconnects then.
        self._link_lost = asyncio.Event()
        self._link_lost.set()
        self._closing = False
        self.last_error: str | None = None
        # The last attempt to log in was refused (a wrong secret), not merely unanswered.
        self.login_refused = False

    # --- connection -----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._protocol is not None and bool(self._manager.authenticated)

    async def connect(self) -> None:
        """First connection; raises ``AmiAuthError`` or ``AmiUnreachable``.

        Once connected, a background task pings and reconnects when needed.
        """
        await self._open()
        self._report(True, f"connected to {self.settings.address}")
        self._start_supervisor()

    def reconnect_in_background(self) -> None:
        """After a failed ``connect``: keep trying with backoff, report through ``on_link``.

        After a refused login the tries are ``auth_retry_seconds`` apart.
        """
        self._link_lost.set()
        self._start_supervisor()

    def _start_supervisor(self) -> None:
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = self._loop.create_task(self._supervise())

    async def _open(self) -> None:
        s = self.settings
        self.login_refused = False
        try:
            _, protocol = await asyncio.wait_for(
                self._loop.create_connection(lambda: _Protocol(self._manager, self._lost),
                                             s.host, s.port),
                s.connect_timeout)
        except asyncio.TimeoutError:
            raise AmiUnreachable(f"no answer from the Asterisk AMI at {s.address} "
                                 f"within {s.connect_timeout:g} s") from None
        except OSError as exc:
            raise AmiUnreachable(f"cannot reach the Asterisk AMI at {s.address}: "
                                 f"{exc.strerror or exc}") from None
        assert isinstance(protocol, _Protocol)
        self._protocol = protocol
        self._manager.authenticated = False
        try:
            response = await self._action({"Action": "Login", "Username": s.username,
                                           "Secret": s.secret, "Events": "on"},
                                          timeout=s.login_timeout)
        except (AmiLinkDown, asyncio.TimeoutError) as exc:
            self._protocol = None
            protocol.abort()
            raise AmiUnreachable(f"the Asterisk AMI at {s.address} did not complete the login: "
                                 f"{exc or 'timed out'}") from None
        if not response.success:
            self._protocol = None   # so _lost does not report a link that never came up
            protocol.abort()
            self.login_refused = True
            raise AmiAuthError(
                f"the Asterisk AMI at {s.address} refused user {s.username!r}: "
                f"{response.message or response.response}. Check the AMI username and secret "
                "against manager_allerta.conf")
        self._manager.authenticated = True
        self.login_refused = False
        self._link_lost.clear()

    def _lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        if protocol is not self._protocol:
            return  # a socket we already replaced
        self._protocol = None
        self._manager.authenticated = False
        # Nothing is resent (all actions are forgettable); belt and braces.
        self._manager.awaiting_actions.clear()
        reason = f"AMI link to {self.settings.address} lost" + (f": {exc}" if exc else "")
        for future in list(self._pending):
            if not future.done():
                future.set_exception(AmiLinkDown(reason, sent=True))
        if not self._link_lost.is_set():
            self._link_lost.set()
            if not self._closing:
                self._report(False, reason)

    def _report(self, up: bool, reason: str) -> None:
        if not up:
            self.last_error = reason
        log.info("AMI link %s: %s", "up" if up else "down", reason)
        if self._on_link is not None:
            self._on_link(up, reason)

    async def _supervise(self) -> None:
        """Ping while up; reconnect with capped exponential backoff while down."""
        s = self.settings
        failures = 0
        while not self._closing:
            if not self._link_lost.is_set():
                try:
                    await asyncio.wait_for(self._link_lost.wait(), s.ping_interval)
                    continue
                except asyncio.TimeoutError:
                    pass
                await self._ping()
                continue
            delay = min(s.reconnect_max, s.reconnect_initial * 2 ** failures)
            if self.login_refused:
                delay = max(delay, s.auth_retry_seconds)
            await asyncio.sleep(delay)
            if self._closing:
                return
            try:
                await self._open()
            except AmiError as exc:
                failures += 1
                # A refused login (secret wrong or changed on the PBX) is retried
                # too, but only every auth_retry_seconds, and shown.
                self._report(False, str(exc))
                continue
            failures = 0
            self._report(True, f"reconnected to {s.address}")

    async def _ping(self) -> None:
        protocol = self._protocol
        if protocol is None:
            return
        try:
            await self._action({"Action": "Ping"}, timeout=self.settings.ping_timeout)
        except asyncio.TimeoutError:
            # Half-open TCP: the kernel may not notice for hours.
            if protocol is self._protocol:
                log.warning("no Pong from %s within %g s: dropping the link",
                            self.settings.address, self.settings.ping_timeout)
                protocol.abort()
        except AmiLinkDown:
            pass

    # --- actions --------------------------------------------------------------------

    async def _action(self, fields: dict[str, Any], *, timeout: float | None = None,
                      as_list: bool | None = None) -> Any:
        if self._protocol is None:
            raise AmiLinkDown(f"AMI link to {self.settings.address} is down", sent=False)
        action = Action(fields, as_list=as_list)
        future = self._manager.send_action(action, as_list=as_list)
        self._pending.add(future)
        try:
            return await asyncio.wait_for(asyncio.shield(future),
                                          timeout or self.settings.action_timeout)
        finally:
            self._pending.discard(future)
            if not future.done():
                future.cancel()
            if self._protocol is not None:
                # panoramisk keeps unanswered actions forever otherwise.
                self._protocol.responses.pop(action.id, None)

    async def originate(self, channel: str, context: str, exten: str, priority: int,
                        caller_id: str, variables: Mapping[str, str], channel_id: str,
                        timeout_ms: int) -> None:
        """Queue one call; follow it with ``subscribe(channel_id, ...)``, set up before this.

        Raises ``AmiOriginateRejected`` (Response: Error), ``AmiLinkDown`` or
        ``asyncio.TimeoutError`` (no acknowledgement: the call may exist).
        """
        for key, value in variables.items():
            # manager.c splits Variable values on commas.
            if "," in f"{key}{value}" or "=" in key:
                raise ValueError(f"AMI variable {key}={value!r} must not contain commas")
        fields: dict[str, Any] = {
            "Action": "Originate", "ActionID": f"originate-{channel_id}", "Channel": channel,
            "Context": context, "Exten": exten, "Priority": str(priority),
            "Timeout": str(int(timeout_ms)), "ChannelId": channel_id, "Async": "true",
            "Variable": [f"{key}={value}" for key, value in variables.items()],
        }
        if caller_id:
            fields["CallerID"] = caller_id
        # Refuses CR/LF and over-long headers before anything reaches the socket.
        serialize([(k, v) for k, value in fields.items()
                   for v in (value if isinstance(value, list) else [value])])
        delivery = variables.get("ALLERTA_DELIVERY")
        if delivery:
            self._deliveries[delivery] = channel_id
        # as_list=False: resolve on the acknowledgement (pitfall a).
        response = await self._action(fields, as_list=False)
        if not response.success:
            raise AmiOriginateRejected(response.message or "Originate refused")

    async def core_show_channels(self) -> list[dict[str, str]]:
        """Every channel Asterisk has now, one dict of headers each."""
        responses = await self._action({"Action": "CoreShowChannels"})
        if not isinstance(responses, list):
            if not responses.success:
                raise AmiError(f"CoreShowChannels refused: {responses.message}")
            return []
        channels = []
        for message in responses:
            if str(message.get("Event", "")).lower() == "coreshowchannel":
                converted = _to_ami_message(message)
                channels.append({key: value for key, value in converted.pairs})
        return channels

    async def db_get(self, family: str, key: str) -> str | None:
        """AstDB's value for ``family/key``, or None when there is none (main/db.c
        answers 'Database entry not found'). Needs the AMI write class ``system``."""
        responses = await self._action({"Action": "DBGet", "Family": family, "Key": key})
        if not isinstance(responses, list):
            if responses.success:
                return None
            if "not found" in str(responses.message or "").lower():
                return None
            raise AmiError(f"DBGet refused: {responses.message}")
        for message in responses:
            if str(message.get("Event", "")).lower() == "dbgetresponse":
                return str(message.get("Val", ""))
        return None

    async def db_get_tree(self, family: str) -> dict[str, str]:
        """Every AstDB key under ``family`` (without the family) and its value."""
        responses = await self._action({"Action": "DBGetTree", "Family": family})
        if not isinstance(responses, list):
            if not responses.success:
                raise AmiError(f"DBGetTree refused: {responses.message}")
            return {}
        entries = {}
        for message in responses:
            if str(message.get("Event", "")).lower() == "dbgettreeresponse":
                entries[str(message.get("Key", "")).rsplit("/", 1)[-1]] = str(message.get("Val", ""))
        return entries

    async def db_del(self, family: str, key: str) -> None:
        """Delete ``family/key`` from AstDB; an entry already gone is not an error."""
        response = await self._action({"Action": "DBDel", "Family": family, "Key": key})
        if not response.success and "not found" not in str(response.message or "").lower():
            raise AmiError(f"DBDel refused: {response.message}")

    async def close(self) -> None:
        """Log off and stop reconnecting."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            try:
                await self._supervisor
            except asyncio.CancelledError:
                pass
        protocol = self._protocol
        if protocol is not None:
            try:
                await self._action({"Action": "Logoff"}, timeout=2.0)
            except (AmiError, asyncio.TimeoutError):
                pass
            if self._protocol is protocol:
                protocol.abort()
        self._protocol = None

    # --- events ---------------------------------------------------------------------

    def subscribe(self, channel_id: str, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback`` with every event of the call ``channel_id``; returns unsubscribe."""
        self._subscribers[channel_id] = callback

        def unsubscribe() -> None:
            if self._subscribers.get(channel_id) is callback:
                del self._subscribers[channel_id]
            for delivery, known in list(self._deliveries.items()):
                if known == channel_id:
                    del self._deliveries[delivery]
        return unsubscribe

    def _channel_id_of(self, event: AmiMessage) -> str | None:
        # Local channels: ';2' gets '<ChannelId>;2'; Linkedid is the ChannelId
        # for every channel the originate created.
        for key in ("Uniqueid", "DestUniqueid", "Linkedid", "DestLinkedid"):
            value = event.get(key)
            if value:
                base = value.split(";", 1)[0]
                if base in self._subscribers:
                    return base
        action_id = event.get("ActionID") or ""
        if action_id.startswith("originate-") and action_id[10:] in self._subscribers:
            return action_id[10:]
        if (event.get("UserEvent") or "").lower() in ALLERTA_USER_EVENTS:
            return self._deliveries.get(event.get("Delivery") or "")
        return None

    def _dispatch(self, manager: Manager, message: Message) -> None:
        if str(message.get("Event", "")).lower() == "shutdown" and self._on_shutdown is not None:
            self._on_shutdown()
            return
        if not self._subscribers:
            return
        event = _to_ami_message(message)
        channel_id = self._channel_id_of(event)
        callback = self._subscribers.get(channel_id) if channel_id else None
        if callback is None:
            return
        try:
            callback(event)
        except Exception:  # one broken call must not stop the others' events
            log.exception("event handler for %s failed on %s", channel_id, event.get("Event"))
