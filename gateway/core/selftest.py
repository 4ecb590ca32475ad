"""The scheduled self-test: a test SMS and a test call to the staff numbers, judged and recorded.

A run is a drill alert (created_by "selftest") to ``[ops] selftest_numbers``:
the mobiles get an SMS, every number a call when the voice channel is on. The
engine's ``SelfTestMonitor`` starts one when ``next_selftest`` says it is due
(at ``selftest_at`` Italian time, on ``selftest_weekday`` if set, at least
``selftest_interval_hours`` after the last scheduled run) and judges the runs still open: ``ok`` as soon as
every SMS is delivered (status report) and every call confirmed or answered,
``failed`` when that has not happened within ``selftest_timeout_minutes``. A
failed run raises a ``selftest_failed`` alarm through the alarm monitor, so it
shows on the dashboard and goes by SMS to the on-call numbers; the next run
that passes clears it. ``allerta selftest`` starts a run by hand.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.alerts import AlertError, AlertRequest, AlertService, Target
from gateway.core.audio import FALLBACK_LANGUAGE, voice_language
from gateway.core.config import SCHEMA, WEEKDAYS, Config
from gateway.core.db import utcnow
from gateway.core.logs import mask_number
from gateway.core.models import Alert, Delivery
from gateway.core.models_ops import SelfTestRun
from gateway.core.states import OPEN_DELIVERY_STATES, AlertState, Channel, DeliveryState
from gateway.core.store_worker import log_failure
from gateway.core.voice_messages import Version, VoiceRenderer, remove_message

log = logging.getLogger(__name__)

TEXT = "Allerta: prova automatica del sistema. Nessuna azione richiesta."
CREATED_BY = "selftest"
ALARM_KIND, ALARM_SUBJECT = "selftest_failed", "selftest"
# What counts as reached, per channel.
OK_STATES = {Channel.SMS: (DeliveryState.DELIVERED,),
             Channel.VOICE: (DeliveryState.CONFIRMED, DeliveryState.ANSWERED)}
# selftest_at is the municipality's time, like the panel's "send at" (web/alerts.py): the box's
# own zone may well be UTC, and staff must not be called an hour or two off the time they chose.
LOCAL_TZ = ZoneInfo("Europe/Rome")
# A slot missed by more than this (engine stopped, a real alert going out) waits for the next one,
# so a test never reaches staff far from the time they chose (the engine restarting at 3 a.m.).
LATE_LIMIT = dt.timedelta(hours=2)


@dataclass(frozen=True)
class SelfTestSettings:
    numbers: tuple[str, ...] = ()
    interval: dt.timedelta = dt.timedelta(hours=168)
    timeout: dt.timedelta = dt.timedelta(minutes=15)
    channels: tuple[str, ...] = (Channel.SMS,)
    comune: str = "Comune di Esempio"
    language: str = "it"
    sounds_dir: str = ""
    sms_attempts: int = SCHEMA["retry"]["max_attempts"].default
    voice_attempts: int = SCHEMA["voice"]["max_attempts"].default
    voice_interval: float = SCHEMA["voice"]["interval"].default
    voice_growth: float = SCHEMA["voice"]["growth"].default
    voice_cap: int = SCHEMA["voice"]["per_number_cap"].default
    at: dt.time | None = None         # [ops] selftest_at; None: interval only
    weekday: int | None = None        # [ops] selftest_weekday as datetime.weekday(); None: any day

    @property
    def enabled(self) -> bool:
        return bool(self.numbers) and bool(self.channels)

    @property
    def check_interval(self) -> float:
        return max(0.5, min(10.0, self.timeout.total_seconds() / 10))

    @classmethod
    def from_config(cls, config: Config) -> "SelfTestSettings":
        ops, voice = config.ops, config.voice
        channels = tuple(c for c, on in ((Channel.SMS, bool(config.modems)),
                                         (Channel.VOICE, config.asterisk.enabled)) if on)
        at = dt.time.fromisoformat(ops.selftest_at) if ops.selftest_at else None
        weekday = WEEKDAYS.index(ops.selftest_weekday) if ops.selftest_weekday else None
        return cls(at=at, weekday=weekday, numbers=tuple(ops.selftest_numbers), interval=dt.timedelta(hours=ops.selftest_interval_hours),
                   timeout=dt.timedelta(minutes=ops.selftest_timeout_minutes), channels=channels,
                   comune=config.general.comune, language=voice.language, sounds_dir=config.sounds_dir,
                   sms_attempts=config.retry.max_attempts, voice_attempts=voice.max_attempts,
                   voice_interval=voice.interval, voice_growth=voice.growth, voice_cap=voice.per_number_cap)


class SelfTestError(Exception):
    pass


def next_selftest(now_local: dt.datetime, last_run: dt.datetime | None, settings: SelfTestSettings) -> dt.datetime:
    """When the next scheduled self-test is due (aware, in ``now_local``'s zone); due once now reaches it.

    ``last_run`` is the start of the last scheduled run (aware), None if there was none.
    Without ``settings.at``: ``interval`` after the last run, or now for the first. With it:
    the first slot (``at`` on a day, on ``weekday`` if set) after the last run and at least
    ``interval`` after it, less half the slots' period: a run that started a few seconds
    (or, held behind a real alert, an hour) after its slot keeps the next one on time instead
    of sliding a day. A slot more than ``LATE_LIMIT`` in the past is skipped.

    Every comparison is in UTC: aware datetimes sharing a zone compare and subtract by wall
    clock, which is wrong across a DST change. A slot on a wall time that does not exist that
    day (the spring change) falls an hour later; one that happens twice takes the first.
    """
    now_utc = now_local.astimezone(dt.timezone.utc)
    last_utc = last_run.astimezone(dt.timezone.utc) if last_run is not None else None
    if settings.at is None:
        return now_local if last_utc is None else (last_utc + settings.interval).astimezone(now_local.tzinfo)
    zone = now_local.tzinfo
    period = dt.timedelta(days=1 if settings.weekday is None else 7)
    lower = now_utc - LATE_LIMIT
    if last_utc is not None:
        lower = max(lower, last_utc + settings.interval - period / 2)
    day = lower.astimezone(zone).date() - dt.timedelta(days=1)   # a day early: the zone may shift the date
    while True:
        if settings.weekday is None or day.weekday() == settings.weekday:
            slot = dt.datetime.combine(day, settings.at, tzinfo=zone).astimezone(dt.timezone.utc)
            if slot >= lower and (last_utc is None or slot > last_utc):
                return slot.astimezone(zone)
        day += dt.timedelta(days=1)


def tts_language(configured: str) -> str:
    """The language the test call speaks: [voice] language when we have a voice for it, else Italian."""
    return voice_language(configured) or FALLBACK_LANGUAGE


def voice_version(settings: SelfTestSettings) -> Version:
    """The test call's message: who calls and how to confirm in the configured language.

    TEXT is Italian, so the Italian voice reads it (an Italian sentence in an English voice
    is not understood).
    """
    return Version(None, tts_language(settings.language), TEXT, "it")


def render_voice(settings: SelfTestSettings, renderer: VoiceRenderer | None = None) -> tuple[str, float]:
    """The test call's message, spoken into the sounds directory: (path without extension, seconds)."""
    # The staff hear TEXT as written: it says itself that it is a test, without the drill prefix.
    renderer = renderer or VoiceRenderer(settings.sounds_dir, comune=settings.comune, drill_prefix="")
    name = renderer.new_name("allerta-selftest")
    info = renderer.render_with_confirmation(voice_version(settings), name, drill=False)
    return str(name), info.seconds


def start_run(sessions: sessionmaker[Session], alerts: AlertService, settings: SelfTestSettings, *,
              trigger: str = "schedule", voice_message: tuple[str, float] | Exception | None = None) -> int:
    """Create the test alert and record the run; returns the run's id.

    A run that cannot even start (no reachable staff number, the voice message
    cannot be rendered) is recorded at once as failed, with the reason.
    ``voice_message`` is the rendered audio (``render_voice``), or the exception that
    rendering raised; None renders it here.
    """
    if not settings.numbers:
        raise SelfTestError("no staff number to test: set [ops] selftest_numbers")
    if not settings.channels:
        raise SelfTestError("no channel configured: add [[modems]], or [asterisk] enabled = true with [[trunks]]")
    now = utcnow()
    error, alert_id, audio_path = None, None, None
    try:
        audio_seconds = None
        if Channel.VOICE in settings.channels:
            if isinstance(voice_message, Exception):
                raise voice_message
            audio_path, audio_seconds = voice_message or render_voice(settings)
        request = AlertRequest(text=TEXT, target=Target(numbers=settings.numbers), channels=settings.channels,
                               drill=True, created_by=CREATED_BY, deadline=now + settings.timeout,
                               max_attempts=settings.voice_attempts if Channel.VOICE in settings.channels
                               else settings.sms_attempts,
                               audio_path=audio_path, audio_seconds=audio_seconds,
                               audio_source="tts" if audio_path else None, voice_interval=settings.voice_interval,
                               voice_growth=settings.voice_growth, voice_cap=settings.voice_cap)
        alert_id, _ = alerts.create(request)
    except AlertError as exc:
        error = f"test alert not created: {exc}"
    except Exception as exc:  # noqa: BLE001 - e.g. AudioError: the run fails, with the reason
        error = f"test call message not rendered: {exc}"
    if error and audio_path:
        remove_message(audio_path)
    with sessions.begin() as session:
        run = SelfTestRun(started_at=now, trigger=trigger, alert_id=alert_id)
        if error:
            run.result, run.finished_at, run.details = "failed", now, json.dumps({"error": error})
        session.add(run)
        session.flush()
        run_id = run.id
    if error:
        log.error("self-test %d failed to start: %s", run_id, error)
    else:
        log.info("self-test %d started: alert %d to %d staff number(s) by %s", run_id, alert_id,
                 len(settings.numbers), "+".join(settings.channels))
    return run_id


def outcome(session: Session, run: SelfTestRun, now: dt.datetime, timeout: dt.timedelta) -> tuple[str, dict] | None:
    """(result, details) of an open run, or None while it may still pass."""
    rows = session.execute(select(Delivery.channel, Delivery.e164, Delivery.state, Delivery.last_error)
                           .where(Delivery.alert_id == run.alert_id).order_by(Delivery.id)).all() \
        if run.alert_id is not None else []
    channels: dict[str, dict] = {}
    missing = []
    for channel, e164, state, error in rows:
        entry = channels.setdefault(channel, {"total": 0, "reached": 0, "by_state": Counter()})
        entry["total"] += 1
        entry["by_state"][state] += 1
        if state in OK_STATES.get(channel, ()):
            entry["reached"] += 1
        else:
            missing.append({"channel": channel, "number": e164, "state": state, "error": error})
    for entry in channels.values():
        entry["by_state"] = dict(entry["by_state"])
    details = {"alert_id": run.alert_id, "channels": channels, "not_reached": missing}
    if rows and not missing:
        return "ok", details
    if now - run.started_at >= timeout:
        if not rows:
            details["error"] = "the test alert has no delivery (deleted?)"
        return "failed", details
    return None


def summary(details: dict) -> str:
    """One line, in Italian like the other alarms: what reached the staff and what did not."""
    if details.get("error"):
        return details["error"]
    words = {Channel.SMS: "SMS consegnati", Channel.VOICE: "chiamate riuscite"}
    parts = [f"{words.get(channel, channel)} {entry['reached']}/{entry['total']}"
             for channel, entry in sorted(details.get("channels", {}).items())]
    return ", ".join(parts) or "nessun invio"


def record(sessions: sessionmaker[Session], run_id: int, result: str, details: dict) -> bool:
    """Store the verdict once (a conditional UPDATE: two judges cannot both record it)."""
    with sessions.begin() as session:
        return bool(session.execute(update(SelfTestRun).where(SelfTestRun.id == run_id, SelfTestRun.result.is_(None))
                                    .values(result=result, finished_at=utcnow(),
                                            details=json.dumps(details, ensure_ascii=False))).rowcount)


class SelfTestMonitor:
    """The engine's part: start runs on schedule, judge them, raise or clear the alarm.

    ``alarms`` is the engine's ``gateway.core.alarms.AlarmMonitor`` (its ``raise_alarm``
    and ``clear_alarm``), so a failed self-test travels like every other alarm.
    """

    def __init__(self, sessions: sessionmaker[Session], alerts: AlertService, settings: SelfTestSettings,
                 alarms) -> None:
        self.sessions = sessions
        self.alerts = alerts
        self.settings = settings
        self.alarms = alarms

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:  # noqa: BLE001 - the self-test must never stop the engine
                log_failure(log, "self-test check failed", exc)
            await asyncio.sleep(self.settings.check_interval)

    async def check(self) -> list[int]:
        """Judge the open runs, then start one if due; returns the ids of the runs judged now.
        The database work runs off the event loop (see AlarmMonitor.run)."""
        judged = await asyncio.to_thread(self.judge)
        if self.settings.enabled and await asyncio.to_thread(self.due):
            voice: tuple[str, float] | Exception | None = None
            if Channel.VOICE in self.settings.channels:
                try:  # espeak-ng and sox take a moment: not on the event loop
                    voice = await asyncio.to_thread(render_voice, self.settings)
                except Exception as exc:  # noqa: BLE001 - start_run records the run as failed
                    voice = exc
            run_id = await asyncio.to_thread(self._start, voice)
            if run_id is not None:
                judged.append(run_id)
        return judged

    def _start(self, voice: tuple[str, float] | Exception | None) -> int | None:
        """Start a run; the id of a run that could not even start (judged failed at once), else None."""
        run_id = start_run(self.sessions, self.alerts, self.settings, voice_message=voice)
        with self.sessions() as session:
            run = session.get(SelfTestRun, run_id)
            failed_at_start = run.result == "failed"
            details = json.loads(run.details or "{}")
        if failed_at_start:   # could not even start: that is a failed self-test too
            self._verdict(run_id, "failed", details)
            return run_id
        return None

    def due(self, now: dt.datetime | None = None) -> bool:
        """``now``: naive UTC like the stored times (tests pass one; the engine, the clock)."""
        now = now or utcnow()
        with self.sessions() as session:
            if session.scalar(select(SelfTestRun.id).where(SelfTestRun.result.is_(None)).limit(1)) is not None:
                return False   # one run at a time
            # Only scheduled runs set the schedule: a test by hand ('allerta selftest') on a
            # Sunday must not push Monday's to the week after.
            last = session.scalar(select(SelfTestRun.started_at).where(SelfTestRun.trigger == "schedule")
                                  .order_by(SelfTestRun.started_at.desc()).limit(1))
            now_local = now.replace(tzinfo=dt.timezone.utc).astimezone(LOCAL_TZ)
            last_local = last.replace(tzinfo=dt.timezone.utc).astimezone(LOCAL_TZ) if last is not None else None
            if now_local < next_selftest(now_local, last_local, self.settings):
                return False
            # Not while a real alert is going out: the test would wait behind it and fail for nothing.
            busy = session.scalar(select(exists().where(
                Delivery.alert_id == Alert.id, Alert.created_by != CREATED_BY, Alert.state == AlertState.ACTIVE,
                Delivery.state.in_(OPEN_DELIVERY_STATES),
                (Delivery.next_attempt_at.is_(None)) | (Delivery.next_attempt_at <= now))))
            return not busy

    def judge(self) -> list[int]:
        now = utcnow()
        verdicts = []
        with self.sessions() as session:
            for run in session.scalars(select(SelfTestRun).where(SelfTestRun.result.is_(None))
                                       .order_by(SelfTestRun.id)).all():
                verdict = outcome(session, run, now, self.settings.timeout)
                if verdict is not None:
                    verdicts.append((run.id, *verdict))
        judged = []
        for run_id, result, details in verdicts:
            if record(self.sessions, run_id, result, details):
                judged.append(run_id)
                self._verdict(run_id, result, details)
        return judged

    def _verdict(self, run_id: int, result: str, details: dict) -> None:
        text = summary(details)
        if result == "ok":
            log.info("self-test %d passed: %s", run_id, text)
            self.alarms.clear_alarm(ALARM_KIND, ALARM_SUBJECT)
            return
        not_reached = ", ".join(f"{m['channel']} {mask_number(m['number'])} {m['state']}"
                                for m in details.get("not_reached", []))
        log.warning("self-test %d failed: %s%s", run_id, text, f" (not reached: {not_reached})" if not_reached else "")
        self.alarms.raise_alarm(ALARM_KIND, ALARM_SUBJECT, f"autotest {run_id} fallito: {text}")
