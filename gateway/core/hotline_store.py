"""The hotline's database side: who is calling, what is in progress, and recording what they chose.

``gateway.core.hotline`` decides; this module reads the situation for it and records its
effects, each in one transaction, so an effect is either wholly recorded or not at all.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.audio import POLL_SUFFIX, poll_wav
from gateway.core.audit import AuditLog
from gateway.core.db import utcnow
from gateway.core.hotline import (Caller, Confirm, Effect, Message, Register, SetLanguage, Situation, StopCalls,
                                  Vote)
from gateway.core.models import Alert, Contact, Delivery, PhoneNumberRow, Zone
from gateway.core.models_panel import AlertText
from gateway.core.phone import InvalidNumber, normalise_number
from gateway.core.polls import cast_vote
from gateway.core.states import AlertCategory, AlertState, Channel, DeliveryState
from gateway.core.store import _UPGRADABLE_VOICE_STATES, _drop_unneeded_fallback

CONSENT_SOURCE = "phone"
_AUDITED = {Register: "hotline.register", SetLanguage: "hotline.language", StopCalls: "hotline.stop"}
_AUDIO_EXTENSIONS = (".wav", ".wav16", ".sln", ".gsm", ".ulaw", ".alaw")


def _playback_name(path: str) -> str:
    """A stored audio path as STREAM FILE wants it: without its extension."""
    for extension in _AUDIO_EXTENSIONS:
        if path.lower().endswith(extension):
            return path[:-len(extension)]
    return path


class HotlineStore:
    def __init__(self, sessions: sessionmaker[Session], *, languages: tuple[str, ...] = ("it", "en"),
                 region: str = "IT", situation_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, audit: AuditLog | None = None) -> None:
        self.sessions = sessions
        # Changes to the directory a caller makes (registration, zone, language, stop) are audited
        # as the panel's are, so an operator can see and undo them.
        self.audit = audit
        self.languages = languages
        self.region = region
        # Many callers ring at once right after an alert: they share one reading of what is in
        # progress for a few seconds (the zones of a big alert cost a scan of its deliveries).
        self.situation_seconds = situation_seconds
        self._clock = clock
        self._situations: dict[str, tuple[float, Situation]] = {}

    def number_of(self, caller_id: str | None) -> str | None:
        """The caller's number in E.164, None when withheld or not a phone number."""
        if not caller_id:
            return None
        try:
            return normalise_number(caller_id, self.region).e164
        except InvalidNumber:
            return None

    def caller(self, caller_id: str | None) -> Caller:
        e164 = self.number_of(caller_id)
        if e164 is None:
            return Caller(None, known=False)
        with self.sessions() as s:
            contact = s.execute(select(Contact).join(Contact.numbers).where(PhoneNumberRow.e164 == e164)
                                .order_by(Contact.id)).scalars().first()
            if contact is None:
                return Caller(e164, known=False)
            language = contact.language if contact.language in self.languages else self.languages[0]
            return Caller(e164, known=True, language=language, zone=contact.zone.name if contact.zone else None)

    def situation(self, language: str) -> Situation:
        """The zones, and the alerts in progress with their audio in ``language`` (read at most
        every ``situation_seconds``)."""
        now = self._clock()
        cached = self._situations.get(language)
        if cached is not None and now - cached[0] < self.situation_seconds:
            return cached[1]
        situation = self._read_situation(language)
        self._situations[language] = (now, situation)
        return situation

    def _read_situation(self, language: str) -> Situation:
        with self.sessions() as s:
            zones = tuple(s.scalars(select(Zone.name).order_by(Zone.name)))
            active = s.execute(select(Alert).where(Alert.state == AlertState.ACTIVE,
                                                   Alert.audio_path.is_not(None)).order_by(Alert.id.desc())).scalars().all()
            in_progress: dict[str | None, list[Message]] = defaultdict(list)
            emergencies = [a for a in active if a.category != AlertCategory.INFORMATION]
            for alert in emergencies:
                message = self._message(s, alert, language)
                in_progress[None].append(message)
                for (zone,) in s.execute(select(Delivery.zone).where(Delivery.alert_id == alert.id)
                                         .distinct()):
                    if zone:
                        in_progress[zone].append(message)
            latest = s.execute(select(Alert).where(Alert.category == AlertCategory.INFORMATION,
                                                   Alert.audio_path.is_not(None),
                                                   Alert.state.in_((AlertState.ACTIVE, AlertState.COMPLETED)))
                               .order_by(Alert.id.desc()).limit(1)).scalars().first()
            return Situation(zones=zones, languages=self.languages,
                             in_progress={zone: tuple(items) for zone, items in in_progress.items()},
                             latest_information=self._message(s, latest, language) if latest else None)

    def latest_audio(self) -> str | None:
        """The message everyone hears when the engine cannot answer: the newest alert in progress,
        else the newest information message (its own audio, the alert's main language)."""
        situation = self.situation(self.languages[0])
        newest = situation.in_progress.get(None, ()) or (
            (situation.latest_information,) if situation.latest_information else ())
        return newest[0].audio if newest else None

    def polls_without_audio(self) -> list[tuple[Path, str, list[str]]]:
        """Open polls of alerts in progress whose spoken question is not rendered yet:
        (where it goes, the question, the options)."""
        with self.sessions() as s:
            alerts = s.execute(select(Alert).where(Alert.state == AlertState.ACTIVE, Alert.audio_path.is_not(None),
                                                   Alert.poll_question.is_not(None))).scalars().all()
            missing = []
            for alert in alerts:
                target = poll_wav(_playback_name(alert.audio_path or ""))
                if alert.poll_options and not target.is_file():
                    missing.append((target, alert.poll_question or "", list(json.loads(alert.poll_options))))
            return missing

    def _message(self, s: Session, alert: Alert, language: str) -> Message:
        translated = s.scalar(select(AlertText.audio_path).where(AlertText.alert_id == alert.id,
                                                                 AlertText.language == language))
        audio = _playback_name(translated or alert.audio_path or "")
        options = 0
        poll_audio = None
        if alert.poll_question and alert.poll_options and (alert.poll_closes_at is None
                                                           or alert.poll_closes_at > utcnow()):
            # The question and its options, rendered beside the message ("premi 1 se ..."): the
            # caller's language version's, else the alert's own.
            for candidate in (audio + POLL_SUFFIX, _playback_name(alert.audio_path or "") + POLL_SUFFIX):
                if Path(candidate + ".wav").is_file():
                    options, poll_audio = len(json.loads(alert.poll_options)), candidate
                    break
        return Message(alert.id, audio, poll_audio, options)

    # --- effects ----------------------------------------------------------------------

    def record(self, caller: Caller, effect: Effect, now: dt.datetime | None = None) -> None:
        """Record one effect of the caller's choice, wholly or not at all."""
        if caller.e164 is None:
            raise ValueError(f"{type(effect).__name__} needs the caller's number; the call is anonymous")
        now = now or utcnow()
        with (self.audit.transaction() if self.audit is not None else self.sessions.begin()) as s:
            if self.audit is not None and not isinstance(effect, (Confirm, Vote)):
                self.audit.record(s, f"phone {caller.e164}", _AUDITED[type(effect)], caller.e164,
                                  **{k: v for k, v in vars(effect).items()})
            if isinstance(effect, Confirm):
                self._confirm(s, caller.e164, effect.alert_ids, now)
            elif isinstance(effect, StopCalls):
                self._stop(s, caller.e164, now)
            elif isinstance(effect, Register):
                self._register(s, caller.e164, effect, now)
            elif isinstance(effect, SetLanguage):
                for contact in self._contacts(s, caller.e164):
                    contact.language = effect.language
            elif isinstance(effect, Vote):
                self._vote(s, caller.e164, effect, now)

    @staticmethod
    def _contacts(s: Session, e164: str) -> list[Contact]:
        return list(s.execute(select(Contact).join(Contact.numbers).where(PhoneNumberRow.e164 == e164)).scalars())

    @staticmethod
    def _confirm(s: Session, e164: str, alert_ids: tuple[int, ...], now: dt.datetime) -> None:
        """As a 1 pressed in an alert's call: the number's voice deliveries of those alerts end
        'confirmed', so no more calls are placed to it, and an SMS fallback not yet sent is dropped.
        A call in flight ('submitting') is left to finish."""
        rows = s.execute(select(Delivery.id, Delivery.alert_id, Delivery.number_id).where(
            Delivery.alert_id.in_(alert_ids), Delivery.e164 == e164, Delivery.channel == Channel.VOICE,
            Delivery.state.in_(_UPGRADABLE_VOICE_STATES))).all()
        for row in rows:
            s.execute(update(Delivery).where(Delivery.id == row.id, Delivery.state.in_(_UPGRADABLE_VOICE_STATES))
                      .values(state=DeliveryState.CONFIRMED, next_attempt_at=None, delivered_at=now,
                              updated_at=now, last_error="confirmed by the citizen on the hotline"))
            _drop_unneeded_fallback(s, row.alert_id, row.number_id, now)

    @staticmethod
    def _stop(s: Session, e164: str, now: dt.datetime) -> None:
        number = s.scalar(select(PhoneNumberRow).where(PhoneNumberRow.e164 == e164))
        if number is None:
            return
        number.opted_out, number.opted_out_at, number.opted_out_via = True, now, "phone"
        s.execute(update(Delivery).where(Delivery.number_id == number.id, Delivery.state == DeliveryState.PENDING)
                  .values(state=DeliveryState.CANCELLED, next_attempt_at=None, updated_at=now,
                          last_error="the citizen asked on the hotline to stop all calls"))

    def _register(self, s: Session, e164: str, effect: Register, now: dt.datetime) -> None:
        zone = s.scalar(select(Zone).where(Zone.name == effect.zone)) if effect.zone else None
        contacts = self._contacts(s, e164)
        if contacts:
            for contact in contacts:
                contact.zone, contact.language = zone, effect.language
            return
        number = s.scalar(select(PhoneNumberRow).where(PhoneNumberRow.e164 == e164))
        if number is None:
            number = PhoneNumberRow(e164=e164, kind=normalise_number(e164, self.region).kind)
            s.add(number)
        # Calling in to register is consent: a number that had asked to stop is called again.
        number.opted_out, number.opted_out_at, number.opted_out_via = False, None, None
        s.add(Contact(name="", zone=zone, language=effect.language, numbers=[number], consent_at=now,
                      consent_date=now.date(), consent_source=CONSENT_SOURCE))

    @staticmethod
    def _vote(s: Session, e164: str, effect: Vote, now: dt.datetime) -> None:
        alert = s.get(Alert, effect.alert_id)
        if alert is not None:
            cast_vote(s, alert, e164, effect.option, at=now, channel=Channel.VOICE)
