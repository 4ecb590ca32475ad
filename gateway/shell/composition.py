"""The composition root: builds every service from the configuration and injects it.

Nothing else in the code base constructs engines, sessions or channels, so
tests and the demo can build the same graph with other parts.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import socket
from pathlib import Path

from asterisk.agi_server import FastAgiServer
from asterisk.ami_client import AmiSettings
from asterisk.hotline_agi import HotlineSession
from asterisk.trunks import TrunkConfig
from asterisk.voice_channel import VoiceChannel, VoiceSettings
from gateway.core.alarms import AlarmMonitor, AlarmSettings
from gateway.core.audit import audit_log_for
from gateway.core.backup import BackupError, hold_engine_lock
from gateway.core.cap_service import build_receiver, settle_alarms
from gateway.core.citizens import CitizenService, CitizenSettings
from gateway.core.config import Config
from gateway.core.dispatcher import Dispatcher, DispatcherSettings
from gateway.core.hotline_prompts import PROMPTS
from gateway.core.hotline_store import HotlineStore
from gateway.core.nodes import NodeConflict, NodeIdentity, NodeWatch, register
from gateway.core.reply_queue import ReplyQueue
from gateway.core.retry import SmsPolicy, SmsRetry, VoicePolicy
from gateway.core.selftest import SelfTestMonitor, SelfTestSettings
from gateway.core.services import Services
from gateway.core.states import Channel
from gateway.shell.cap_watch import CapFeeds, CapInbox, run_every
from gateway.shell.hotline_upkeep import keep_hotline_files
from gateway.shell.notify import lines_summary, notifier_from_environment, supervise, watchdog_interval
from modem.pool import SmsChannel
from modem.worker import WorkerSettings

log = logging.getLogger(__name__)


def build_dispatcher(services: Services, alarms: AlarmMonitor | None = None) -> Dispatcher:
    config = services.config
    retry, engine = config.retry, config.engine
    today = dt.datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    today_utc = today.astimezone(dt.timezone.utc).replace(tzinfo=None)
    channels = []
    if config.modems:
        settings = WorkerSettings(send_timeout=retry.send_timeout, error_threshold=retry.modem_error_threshold,
                                  probe_interval=retry.modem_probe_interval,
                                  health_interval=engine.health_interval,
                                  reopen_interval=min(2.0, retry.modem_probe_interval))
        channels.append(SmsChannel(config.modems, settings,
                                   sent_today=services.store.sent_today_by_line(today_utc)))
    policies = {Channel.SMS: SmsPolicy(SmsRetry.from_config(config.retry))}
    if config.asterisk.enabled:
        channels.append(build_voice_channel(config))
        policies[Channel.VOICE] = VoicePolicy()
    return Dispatcher(services.store, channels, policies,
                      DispatcherSettings(poll_interval=engine.poll_interval, claim_ahead=engine.claim_ahead_seconds,
                                         report_timeout=engine.report_timeout,
                                         report_spool=Path(config.general.data_dir) / "report-spool.jsonl",
                                         placing_journal=Path(config.general.data_dir) / "voice-placed.log",
                                         inbound_spool=Path(config.general.data_dir) / "inbound-spool.jsonl",
                                         outcome_journal=Path(config.general.data_dir) / "outcome-journal.jsonl",
                                         node=config.node_name,
                                         inbound_part_timeout=config.inbound.part_timeout),
                      citizens=CitizenService(services.sessions, CitizenSettings.from_config(config)), alarms=alarms)


def build_voice_channel(config: Config):
    a = config.asterisk
    trunks = tuple(TrunkConfig(name=t.name, dial_template=t.dial, max_channels=t.max_channels,
                               calls_per_second=t.calls_per_second, caller_id=t.caller_id,
                               allowed=t.allowed, prefixes=tuple(t.prefixes),
                               number_format=t.number_format, inbound_reserved=t.inbound_reserved)
                   for t in config.trunks)
    for trunk in trunks:
        # A call holds a channel for ring time plus the message, ~45 s until measured.
        if trunk.calls_per_second * 45.0 < trunk.max_channels:
            log.warning("trunk %s: %g new calls per second cannot keep %d channels busy; "
                        "raise calls_per_second to about %.1f", trunk.name, trunk.calls_per_second,
                        trunk.max_channels, trunk.max_channels / 45.0)
    ami = AmiSettings(username=a.username, secret=a.secret, host=a.host, port=a.port)
    return VoiceChannel(VoiceSettings(ami=ami, trunks=trunks, context=a.context, amd=a.amd,
                                      ring_timeout_ms=int(a.ring_timeout * 1000), end_grace_seconds=a.end_grace))


def build_hotline(services: Services, dispatcher: Dispatcher) -> tuple[FastAgiServer, HotlineStore] | None:
    """The FastAGI server answering the town's number, when [asterisk] hotline is on; its calls
    count against their trunk in the voice channel."""
    config = services.config
    if not (config.asterisk.enabled and config.asterisk.hotline):
        return None
    voice = next(channel for channel in dispatcher.channels if channel.name == Channel.VOICE)
    store = HotlineStore(services.sessions, languages=tuple(PROMPTS), region=config.general.region,
                         audit=audit_log_for(config, services.sessions))
    return FastAgiServer(HotlineSession(store, config.sounds_dir), port=config.asterisk.agi_port,
                         observer=voice.inbound_changed), store


def cap_tasks(services: Services) -> list[asyncio.Task]:
    """The watched directory and the feeds ([cap] inbox_dir, feeds), when configured; the alarms' upkeep."""
    cap = services.config.cap
    # The dashboard's "CAP warning" alarms clear once their draft is decided, whatever the source.
    tasks = [asyncio.create_task(run_every(60.0, lambda: settle_alarms(services.sessions)))]
    if not cap.inbox_dir and not cap.feeds:
        return tasks
    receiver = build_receiver(services, audit_log_for(services.config, services.sessions))
    if cap.inbox_dir:
        inbox = CapInbox(receiver, Path(cap.inbox_dir))
        tasks.append(asyncio.create_task(run_every(cap.inbox_interval, inbox.poll_once)))
    if cap.feeds:
        feeds = CapFeeds(receiver, cap.feeds)
        tasks.append(asyncio.create_task(run_every(cap.feed_interval, feeds.poll_once)))
    return tasks


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine has that id (a node row left by a killed engine has not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True      # someone else's process: alive
    return True


def node_identity(config: Config) -> NodeIdentity:
    return NodeIdentity(name=config.node_name, host=socket.gethostname(), pid=os.getpid(),
                        lease_seconds=config.engine.lease_seconds)


def start_node(services: Services, alarms: AlarmMonitor) -> NodeWatch:
    """Register this engine in the nodes table (SystemExit with the reason when it must not start)
    and build its heartbeat and watch over the others."""
    config = services.config
    me = node_identity(config)
    labels = [modem.label for modem in config.modems] + (
        [trunk.name for trunk in config.trunks] if config.asterisk.enabled else [])
    try:
        register(services.sessions, me, single_node=services.engine.dialect.name == "sqlite",
                 pid_alive=pid_alive, labels=labels)
    except NodeConflict as exc:
        raise SystemExit(f"the engine cannot start: {exc}") from None
    replies = ReplyQueue(services.sessions, services.store.quiet_hours, node=me.name)
    return NodeWatch(services.sessions, me, take_deliveries=services.store.take_over,
                     take_replies=replies.take_over, alarms=alarms)


async def run_engine(services: Services, *, once: bool = False, notifier=None) -> int:
    """Run the engine; ``notifier`` (default: systemd's, from NOTIFY_SOCKET) gets READY/WATCHDOG/STATUS."""
    notifier = notifier if notifier is not None else notifier_from_environment()
    alarm_monitor = AlarmMonitor(services.sessions, services.alerts, AlarmSettings.from_config(services.config))
    dispatcher = build_dispatcher(services, alarm_monitor)
    if not dispatcher.channels:
        raise SystemExit("no channel configured: add [[modems]], or [asterisk] enabled = true with [[trunks]]")
    if once and [channel.name for channel in dispatcher.channels] == [Channel.VOICE]:
        # A long-running engine keeps going when the PBX refuses our login (SMS must
        # still go out; the login is retried). A --once run with voice alone could
        # send nothing: it ends at once with the message (ChannelUnusable, exit 2).
        dispatcher.channels[0].stop_on_login_refusal = True
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        # Held while the engine runs, so 'allerta restore' refuses to overwrite the database.
        lock = await hold_engine_lock(services.config)
    except BackupError as exc:
        raise SystemExit(str(exc)) from None
    try:
        dispatcher.nodes = await asyncio.to_thread(start_node, services, alarm_monitor)
    except SystemExit:
        lock.release()
        raise
    hotline = build_hotline(services, dispatcher)
    hotline_upkeep = None
    if hotline is not None and not once:
        server, hotline_store = hotline
        try:
            await server.start()
        except OSError as exc:
            lock.release()
            raise SystemExit(f"[asterisk] agi_port {server.port}: cannot listen for the hotline: {exc}") from None
        hotline_upkeep = asyncio.create_task(keep_hotline_files(hotline_store, services.config.sounds_dir))
    supervisor = asyncio.create_task(supervise(notifier, dispatcher.started,
                                               lambda: lines_summary(dispatcher.line_states()),
                                               watchdog=watchdog_interval()))
    alarms = asyncio.create_task(alarm_monitor.run())
    # The scheduled self-test belongs to the long-running engine, not to a --once drain.
    selftest = None if once else asyncio.create_task(SelfTestMonitor(
        services.sessions, services.alerts, SelfTestSettings.from_config(services.config), alarm_monitor).run())
    cap_sources = [] if once else cap_tasks(services)
    try:
        return await dispatcher.run(stop, once=once)
    finally:
        notifier.notify("STOPPING=1")
        supervisor.cancel()
        alarms.cancel()
        for task in cap_sources:
            task.cancel()
        if selftest is not None:
            selftest.cancel()
        if hotline_upkeep is not None and hotline is not None:
            hotline_upkeep.cancel()
            await hotline[0].stop()
        lock.release()
