"""What the engine makes of a citizen's SMS once it is committed: one message, one transaction.

``CitizenService.process`` takes one unhandled ``inbound_sms`` row (a conditional
UPDATE, so a message is acted on once even by two engines or after a crash),
links it to the number's contact and to the most recent alert sent there, reads
it (sms_commands), applies its effect (opt-out, registration, zone, language,
confirmation, help request, poll vote), queues the answer (replies.queue_reply)
and says what it made of it (``kind``, ``outcome``): all committed together, or
nothing, and then it is read again at the next start.

Safety first, as in the reader: a plea for help is always recorded (with the
alert it follows when one went to that number within ``help_window``, without
one otherwise: nobody trapped is turned away for writing late) and always
answered with "call 112". The answer is what reply_guard may withhold; the effect
never is, except for a flood (stored, marked ignored, not acted on).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.citizen_texts import language_name, reply_text, zone_menu_page
from gateway.core.db import utcnow
from gateway.core.models import (Alert, Attempt, Contact, Delivery, InboundSms, PhoneNumberRow, Zone)
from gateway.core.models_citizens import HelpRequest, SmsConversation, SmsReply
from gateway.core.phone import InvalidNumber, normalise_number
from gateway.core.plurals import counted
from gateway.core.polls import VoteCount, cast_vote
from gateway.core.replies import queue_reply
from gateway.core.reply_guard import GuardSettings, Traffic, flooding, reply_withheld, unanswerable_sender
from gateway.core.sms_commands import Command, Intent, read_command
from gateway.core.states import (AttemptOutcome, Channel, DeliveryState, InboundKind, ReplyReason,
                                 parse_channels)

log = logging.getLogger(__name__)

ZONE_CHOICE = "zone_choice"
# Voice deliveries an SMS confirmation closes as confirmed: planned calls and calls that ended
# without one. A call up now is left alone (record_result upgrades it when it ends).
_VOICE_CLOSED_BY_CONFIRMATION = (DeliveryState.PENDING, DeliveryState.FAILED, DeliveryState.ANSWERED,
                                 DeliveryState.VOICEMAIL)
_SMS_CONFIRMABLE = (DeliveryState.SENT, DeliveryState.DELIVERED)


@dataclass(frozen=True)
class CitizenSettings:
    comune: str = "Comune"
    region: str = "IT"
    reply_window: dt.timedelta = dt.timedelta(hours=48)
    help_window: dt.timedelta = dt.timedelta(hours=12)
    zone_menu: dt.timedelta = dt.timedelta(minutes=30)
    guard: GuardSettings = GuardSettings()

    @classmethod
    def from_config(cls, config) -> CitizenSettings:  # noqa: ANN001 - a gateway.core.config.Config
        inbound = config.inbound
        own = set()
        for raw in inbound.own_numbers:
            try:
                own.add(normalise_number(raw, config.general.region).e164)
            except InvalidNumber:
                own.add(raw)
        return cls(comune=config.general.comune, region=config.general.region,
                   reply_window=dt.timedelta(hours=inbound.reply_window_hours),
                   help_window=dt.timedelta(hours=inbound.help_window_hours),
                   zone_menu=dt.timedelta(minutes=inbound.zone_menu_minutes),
                   guard=GuardSettings(short_code_digits=inbound.short_code_digits, own_numbers=frozenset(own),
                                       max_replies_per_day=inbound.max_replies_per_day,
                                       loop_minutes=inbound.loop_minutes, loop_replies=inbound.loop_replies,
                                       flood_per_hour=inbound.flood_per_hour))


@dataclass(frozen=True)
class Handled:
    """What one message was made of (for the engine's log line)."""
    inbound_id: int
    sender: str
    kind: InboundKind
    outcome: str
    reply: ReplyReason | None


@dataclass
class _Answer:
    kind: InboundKind
    outcome: str
    reason: ReplyReason | None = None
    text: str | None = None
    solicited: bool = False      # it answers a question we asked (the numbered zone list)


class _Message:
    """One message being handled, with what the database says about its sender."""

    def __init__(self, s: Session, row: InboundSms, e164: str, kind: str, now: dt.datetime) -> None:
        self.s, self.row, self.e164, self.number_kind, self.now = s, row, e164, kind, now
        self.number = s.scalar(select(PhoneNumberRow).where(PhoneNumberRow.e164 == e164))
        self.contacts = sorted(self.number.contacts, key=lambda c: c.id) if self.number is not None else []
        self.language = self.contacts[0].language if self.contacts else "it"

    def ensure_number(self) -> PhoneNumberRow:
        if self.number is None:
            self.number = PhoneNumberRow(e164=self.e164, kind=self.number_kind)
            self.s.add(self.number)
            self.s.flush()
        return self.number


class CitizenService:
    def __init__(self, sessions: sessionmaker[Session], settings: CitizenSettings = CitizenSettings()) -> None:
        self.sessions = sessions
        self.settings = settings

    # --- the engine's calls ----------------------------------------------------------
    def unhandled(self, limit: int = 100) -> list[int]:
        """Messages committed and not yet acted on, oldest first."""
        with self.sessions() as s:
            return list(s.scalars(select(InboundSms.id).where(InboundSms.handled.is_(False))
                                  .order_by(InboundSms.id).limit(limit)))

    def process(self, inbound_id: int, now: dt.datetime | None = None) -> Handled | None:
        """Act on one message in one transaction; None when it was handled already."""
        now = now or utcnow()
        with self.sessions.begin() as s:
            taken = s.execute(update(InboundSms).where(InboundSms.id == inbound_id, InboundSms.handled.is_(False))
                              .values(handled=True, handled_at=now)).rowcount
            if not taken:
                return None
            row = s.get(InboundSms, inbound_id)
            answer = self._handle(s, row, now)
            row.kind, row.outcome = answer.kind, answer.outcome
            return Handled(row.id, row.sender, answer.kind, answer.outcome, answer.reason if answer.text else None)

    def give_up(self, inbound_id: int, error: str, now: dt.datetime | None = None) -> None:
        """A message whose handling raised (a bug): kept in the Inbox with the error, never retried in a loop."""
        with self.sessions.begin() as s:
            s.execute(update(InboundSms).where(InboundSms.id == inbound_id, InboundSms.handled.is_(False))
                      .values(handled=True, handled_at=now or utcnow(), kind=InboundKind.UNRECOGNISED,
                              outcome=f"not handled: internal error ({error}); see the engine's log"))

    # --- reading one message -----------------------------------------------------------
    def _handle(self, s: Session, row: InboundSms, now: dt.datetime) -> _Answer:
        guard = self.settings.guard
        try:
            number = normalise_number(row.sender, self.settings.region)
            e164, kind = number.e164, number.kind
        except InvalidNumber:
            e164 = kind = None
        why_not = unanswerable_sender(row.sender, e164, guard)
        if why_not:
            return _Answer(InboundKind.IGNORED, why_not)
        received = row.received_at or now
        recent = s.scalar(select(func.count()).select_from(InboundSms).where(
            InboundSms.sender == row.sender, InboundSms.received_at > received - dt.timedelta(hours=1),
            InboundSms.received_at <= received))
        flood = flooding(Traffic(messages_last_hour=recent), guard)
        if flood:
            # Once when the number crosses the line, not once per message of the flood.
            log.log(logging.WARNING if recent == guard.flood_per_hour + 1 else logging.DEBUG,
                    "inbound SMS %d: %s", row.id, flood)
            return _Answer(InboundKind.IGNORED, flood)
        msg = _Message(s, row, e164, kind, now)
        if msg.contacts:
            row.contact_id = msg.contacts[0].id
        alert = self._latest_alert(msg, self.settings.reply_window)
        if alert is not None:
            row.alert_id = alert.id
        zones = list(s.scalars(select(Zone.name).order_by(Zone.name)))
        command = read_command(row.text, zones)
        answer = self._act(msg, command, alert, zones)
        if answer.text is not None:
            withheld = reply_withheld(self._traffic(s, e164, now), answer.reason,
                                      understood=command.intent != Intent.UNKNOWN, solicited=answer.solicited,
                                      settings=guard)
            if withheld:
                answer.outcome += f"; no answer: {withheld}"
                answer.text = None
            else:
                queue_reply(s, e164, answer.text, answer.reason, inbound_id=row.id, now=now)
        return answer

    def _traffic(self, s: Session, e164: str, now: dt.datetime) -> Traffic:
        guard = self.settings.guard
        ours = (SmsReply.e164 == e164, SmsReply.created_by == "engine",
                SmsReply.created_at > now - dt.timedelta(days=1))
        day = s.execute(select(SmsReply.created_at, SmsReply.reason).where(*ours)).all()
        loop_since = now - dt.timedelta(minutes=guard.loop_minutes)
        return Traffic(replies_last_day=len(day),
                       replies_in_loop_window=sum(1 for at, _ in day if at > loop_since),
                       commands_lists_last_day=sum(1 for _, reason in day if reason == ReplyReason.COMMANDS))

    def _act(self, msg: _Message, command: Command, alert: Alert | None, zones: list[str]) -> _Answer:
        intent = command.intent
        if intent == Intent.HELP_REQUEST:
            return self._help_request(msg)
        if intent == Intent.STOP:
            return self._stop(msg)
        if intent == Intent.STOP_INFO:
            return self._stop_info(msg)
        if intent == Intent.REGISTER:
            return self._register(msg, command, zones)
        if intent == Intent.ZONE:
            return self._zone(msg, command, zones)
        if intent == Intent.LANGUAGE:
            return self._language(msg, command)
        if intent == Intent.INFO:
            return self._commands(msg, InboundKind.COMMAND, "INFO: list of commands")
        if intent == Intent.CONFIRM:
            return self._confirm(msg, alert, by="text")
        if intent == Intent.NUMBER:
            return self._number(msg, command.number, alert)
        return self._commands(msg, InboundKind.UNRECOGNISED, "not understood")

    def _say(self, msg: _Message, kind: InboundKind, outcome: str, reason: ReplyReason, key: str | None = None,
             reply_in: str | None = None, **values: object) -> _Answer:
        text = reply_text(key or reason, reply_in or msg.language, comune=self.settings.comune, **values)
        return _Answer(kind, outcome, reason, text)

    def _commands(self, msg: _Message, kind: InboundKind, outcome: str) -> _Answer:
        return self._say(msg, kind, outcome, ReplyReason.COMMANDS)

    # --- alerts this number received ---------------------------------------------------
    def _alerts_sent_to(self, msg: _Message, window: dt.timedelta, *extra) -> list[int]:  # noqa: ANN002
        """Alerts that went to this number within ``window`` before the message, most recent first.

        Candidates are the alerts created or scheduled in the window (a handful), then each is
        looked up by (alert_id, number_id): the unique delivery index, never a scan of deliveries."""
        if msg.number is None:
            return []
        received = msg.row.received_at or msg.now
        since = received - window
        candidates = select(Alert.id).where(or_(Alert.created_at >= since, Alert.send_at >= since), *extra)
        rows = msg.s.execute(
            select(Delivery.alert_id, func.max(Delivery.sent_at).label("at"))
            .where(Delivery.alert_id.in_(candidates), Delivery.number_id == msg.number.id,
                   Delivery.sent_at.is_not(None), Delivery.sent_at >= since, Delivery.sent_at <= received)
            .group_by(Delivery.alert_id).order_by(func.max(Delivery.sent_at).desc(), Delivery.alert_id.desc())
        ).all()
        return [r.alert_id for r in rows]

    def _latest_alert(self, msg: _Message, window: dt.timedelta) -> Alert | None:
        found = self._alerts_sent_to(msg, window)
        return msg.s.get(Alert, found[0]) if found else None

    # --- commands ------------------------------------------------------------------------
    def _stop(self, msg: _Message) -> _Answer:
        number = msg.ensure_number()
        number.opted_out, number.opted_out_at, number.opted_out_via = True, msg.now, "sms"
        # "No more messages of any kind": what is still queued for this number goes too.
        cancelled = msg.s.execute(update(Delivery).where(Delivery.number_id == number.id,
                                                         Delivery.state == DeliveryState.PENDING)
                                  .values(state=DeliveryState.CANCELLED, next_attempt_at=None, updated_at=msg.now,
                                          last_error="the number wrote STOP")).rowcount
        outcome = "STOP: number opted out of every message"
        if cancelled:
            outcome += f" ({counted(cancelled, 'queued message')} cancelled)"
        return self._say(msg, InboundKind.COMMAND, outcome, ReplyReason.STOPPED)

    def _stop_info(self, msg: _Message) -> _Answer:
        number = msg.ensure_number()
        # The fan-out of an information alert skips this number (gateway/core/alerts.py); an
        # emergency still reaches it.
        number.opted_out_info, number.opted_out_at, number.opted_out_via = True, msg.now, "sms"
        return self._say(msg, InboundKind.COMMAND, "STOP INFO: no information messages, emergencies still come",
                         ReplyReason.STOPPED_INFO)

    def _register(self, msg: _Message, command: Command, zones: list[str]) -> _Answer:
        language = command.language or (msg.contacts[0].language if msg.contacts else None)
        current_zone = next((c.zone.name for c in msg.contacts if c.zone is not None), None)
        if command.zone is None and zones and (command.zone_text or current_zone is None):
            came_back = self._back_in(msg)
            return self._zone_menu(msg, "register", language, zones, 0,
                                   "ISCRIVI: zone " + (f"'{command.zone_text}' not recognised" if command.zone_text
                                                       else "missing") + came_back)
        return self._registered(msg, command.zone or current_zone, language)

    def _back_in(self, msg: _Message) -> str:
        number = msg.ensure_number()
        was_out = number.opted_out or number.opted_out_info
        number.opted_out = number.opted_out_info = False
        number.opted_out_at = number.opted_out_via = None
        return "; opted back in" if was_out else ""

    def _registered(self, msg: _Message, zone_name: str | None, language: str | None) -> _Answer:
        """Register the number (or update its contacts) with ``zone_name`` and ``language``."""
        came_back = self._back_in(msg)
        number = msg.ensure_number()
        zone = msg.s.scalar(select(Zone).where(Zone.name == zone_name)) if zone_name else None
        if not msg.contacts:
            contact = Contact(name="", zone=zone, language=language or "it", consent_at=msg.now,
                              consent_source="sms")
            msg.s.add(contact)
            number.contacts.append(contact)
            msg.s.flush()
            msg.contacts = [contact]
            msg.row.contact_id = contact.id
            outcome = "registered"
        else:
            for contact in msg.contacts:
                if zone is not None:
                    contact.zone = zone
                if language:
                    contact.language = language
                contact.consent_at = msg.now
                contact.consent_source = contact.consent_source or "sms"
            outcome = "registration confirmed"
        language = language or msg.contacts[0].language
        msg.language = language
        outcome += f" (zone {zone.name if zone else 'none'}, language {language}){came_back}"
        if zone is None:
            return self._say(msg, InboundKind.COMMAND, outcome, ReplyReason.REGISTERED, key="no_zones",
                             reply_in=language, language=language_name(language, language))
        return self._say(msg, InboundKind.COMMAND, outcome, ReplyReason.REGISTERED, reply_in=language,
                         zone=zone.name, language=language_name(language, language))

    def _zone(self, msg: _Message, command: Command, zones: list[str]) -> _Answer:
        if not msg.contacts:
            return self._say(msg, InboundKind.COMMAND, "ZONA from a number that is not registered",
                             ReplyReason.COMMANDS, key="not_registered")
        if command.zone is None:
            return self._zone_menu(msg, "zone", None, zones, 0,
                                   f"ZONA: zone '{command.zone_text}' not recognised" if command.zone_text
                                   else "ZONA: zone missing")
        return self._zone_changed(msg, command.zone)

    def _zone_changed(self, msg: _Message, zone_name: str) -> _Answer:
        zone = msg.s.scalar(select(Zone).where(Zone.name == zone_name))
        for contact in msg.contacts:
            contact.zone = zone
        return self._say(msg, InboundKind.COMMAND, f"zone changed to {zone_name}", ReplyReason.ZONE_CHANGED,
                         zone=zone_name)

    def _language(self, msg: _Message, command: Command) -> _Answer:
        if not msg.contacts:
            return self._say(msg, InboundKind.COMMAND, "LINGUA from a number that is not registered",
                             ReplyReason.COMMANDS, key="not_registered")
        if command.language is None:
            return self._say(msg, InboundKind.COMMAND, "LINGUA: language not recognised",
                             ReplyReason.LANGUAGE_CHANGED, key="unknown_language")
        for contact in msg.contacts:
            contact.language = command.language
        msg.language = command.language
        return self._say(msg, InboundKind.COMMAND, f"language changed to {command.language}",
                         ReplyReason.LANGUAGE_CHANGED, language=language_name(command.language, command.language))

    # --- the numbered zone list --------------------------------------------------------------
    def _zone_menu(self, msg: _Message, purpose: str, language: str | None, zones: list[str], start: int,
                   outcome: str) -> _Answer:
        if start >= len(zones):
            start = 0
        reply_in = language or msg.language
        text, end = zone_menu_page(zones, start, reply_in, self.settings.comune)
        data = json.dumps({"zones": zones, "next": end, "purpose": purpose, "language": language})
        conversation = msg.s.get(SmsConversation, msg.e164)
        if conversation is None:
            conversation = SmsConversation(e164=msg.e164)
            msg.s.add(conversation)
        conversation.expects, conversation.data = ZONE_CHOICE, data
        conversation.expires_at = msg.now + self.settings.zone_menu
        shown = f"zones {start + 1}-{end} of {len(zones)}"
        return _Answer(InboundKind.COMMAND, f"{outcome}: numbered list sent ({shown})", ReplyReason.ZONE_MENU, text)

    def _zone_choice(self, msg: _Message, number: int) -> _Answer | None:
        conversation = msg.s.get(SmsConversation, msg.e164)
        if conversation is None or conversation.expects != ZONE_CHOICE:
            return None
        if conversation.expires_at < (msg.row.received_at or msg.now):
            msg.s.delete(conversation)
            return None
        data = json.loads(conversation.data)
        zones, language = data["zones"], data.get("language")
        if number == 0:
            return self._zone_menu(msg, data["purpose"], language, zones, data["next"], "next page of zones")
        if not 1 <= number <= len(zones) or msg.s.scalar(select(Zone.id).where(Zone.name == zones[number - 1])) is None:
            return self._zone_menu(msg, data["purpose"], language, zones, 0, f"{number}: not a zone of the list")
        msg.s.delete(conversation)
        if data["purpose"] == "zone" and msg.contacts:
            answer = self._zone_changed(msg, zones[number - 1])
        else:
            answer = self._registered(msg, zones[number - 1], language)
        answer.outcome = f"zone chosen by number ({number}): {answer.outcome}"
        answer.solicited = True
        return answer

    # --- answers to an alert --------------------------------------------------------------
    def _number(self, msg: _Message, number: int, alert: Alert | None) -> _Answer:
        chosen = self._zone_choice(msg, number)
        if chosen is not None:
            return chosen
        voted = self._vote(msg, number)
        if voted is not None:
            return voted
        if number == 1:
            return self._confirm(msg, alert, by="1")
        return self._commands(msg, InboundKind.UNRECOGNISED, f"the number {number} answers nothing open")

    def _vote(self, msg: _Message, option: int) -> _Answer | None:
        """A vote for the most recent poll sent to this number whose options include ``option``."""
        polls = self._alerts_sent_to(msg, self.settings.reply_window, Alert.poll_options.is_not(None))
        polls += [a for a in self._alerts_sent_to(msg, dt.timedelta(days=366), Alert.poll_options.is_not(None),
                                                  Alert.poll_closes_at.is_not(None)) if a not in polls]
        received = msg.row.received_at or msg.now
        closed = None
        for alert_id in polls:
            alert = msg.s.get(Alert, alert_id)
            options = json.loads(alert.poll_options or "[]")
            if not 1 <= option <= len(options):
                continue
            if alert.poll_closes_at is not None and received >= alert.poll_closes_at:
                closed = closed or alert
                continue
            return self._count_vote(msg, alert, option, options[option - 1])
        if closed is not None:
            msg.row.alert_id = closed.id
            return self._say(msg, InboundKind.POLL_ANSWER, f"vote {option} for the poll of alert {closed.id}, "
                             "after it closed: not counted", ReplyReason.POLL_VOTE, key="poll_closed")
        return None

    def _count_vote(self, msg: _Message, alert: Alert, option: int, label: str) -> _Answer:
        msg.row.alert_id = alert.id
        result = cast_vote(msg.s, alert, msg.e164, option, at=msg.row.received_at or msg.now,
                           channel=Channel.SMS, inbound_id=msg.row.id)
        if result.count is VoteCount.COUNTED:
            return self._say(msg, InboundKind.POLL_ANSWER, f"vote {option} ({label}) for the poll of alert {alert.id}",
                             ReplyReason.POLL_VOTE, option=option)
        if result.count is VoteCount.OUTDATED:
            # Read out of order (a backlog after a restart): the later answer already counts.
            return _Answer(InboundKind.POLL_ANSWER, f"vote {option} for the poll of alert {alert.id}: an older "
                           "answer than the one counted, ignored")
        if result.count is VoteCount.REPEATED:
            return self._say(msg, InboundKind.POLL_ANSWER, f"vote {option} ({label}) for the poll of alert "
                             f"{alert.id} repeated", ReplyReason.POLL_VOTE, option=option)
        return self._say(msg, InboundKind.POLL_ANSWER, f"vote for the poll of alert {alert.id} changed from "
                         f"{result.previous} to {option} ({label})", ReplyReason.POLL_VOTE, key="poll_changed",
                         option=option)

    def _confirm(self, msg: _Message, alert: Alert | None, *, by: str) -> _Answer:
        if alert is None:
            return self._commands(msg, InboundKind.UNRECOGNISED, f"confirmation ({by}) with no recent alert")
        if not (alert.asks_confirmation or Channel.VOICE in parse_channels(alert.channels)):
            return _Answer(InboundKind.CONFIRMATION, f"acknowledgement of alert {alert.id}, which asks for no "
                           "confirmation: nothing to do")
        stopped = self._confirm_deliveries(msg, alert)
        outcome = f"alert {alert.id} confirmed by SMS"
        if stopped:
            outcome += f"; {stopped} planned calls stopped"
        return self._say(msg, InboundKind.CONFIRMATION, outcome, ReplyReason.CONFIRMED)

    def _confirm_deliveries(self, msg: _Message, alert: Alert) -> int:
        """The number's deliveries of ``alert`` end confirmed; returns the planned calls that will not be made.

        A call up now is not interrupted: a confirmed attempt on its delivery makes the store end it
        confirmed whatever the call comes to (the best outcome of any attempt wins: Store.record_result),
        so no further call follows, exactly as when the callee presses 1."""
        stopped = 0
        deliveries = msg.s.scalars(select(Delivery).where(Delivery.alert_id == alert.id,
                                                          Delivery.number_id == msg.number.id)).all()
        for delivery in deliveries:
            if delivery.channel == Channel.SMS and delivery.state in _SMS_CONFIRMABLE:
                delivery.state, delivery.updated_at = DeliveryState.CONFIRMED, msg.now
                delivery.delivered_at = delivery.delivered_at or msg.now
            elif delivery.channel == Channel.VOICE and delivery.state in _VOICE_CLOSED_BY_CONFIRMATION:
                if delivery.state == DeliveryState.PENDING:
                    stopped += 1
                delivery.state, delivery.next_attempt_at, delivery.updated_at = DeliveryState.CONFIRMED, None, msg.now
                delivery.delivered_at = delivery.delivered_at or msg.now
                delivery.last_error = "confirmed by SMS"
            elif delivery.channel == Channel.VOICE and delivery.state == DeliveryState.SUBMITTING:
                msg.s.add(Attempt(delivery_id=delivery.id, channel=Channel.VOICE, outcome=AttemptOutcome.CONFIRMED,
                                  started_at=msg.now, ended_at=msg.now, error="confirmed by SMS during a call"))
        return stopped

    def _help_request(self, msg: _Message) -> _Answer:
        alert = self._latest_alert(msg, self.settings.help_window)
        msg.row.alert_id = alert.id if alert is not None else msg.row.alert_id
        msg.s.add(HelpRequest(inbound_id=msg.row.id, alert_id=alert.id if alert is not None else None,
                              e164=msg.e164, contact_id=msg.row.contact_id, text=msg.row.text, channel=Channel.SMS,
                              received_at=msg.row.received_at or msg.now))
        hours = self.settings.help_window.total_seconds() / 3600
        outcome = (f"help request after alert {alert.id}" if alert is not None
                   else f"help request with no alert to this number in the last {hours:g} h")
        log.warning("help request by SMS (inbound %d)%s", msg.row.id,
                    f" after alert {alert.id}" if alert is not None else "")
        return self._say(msg, InboundKind.HELP_REQUEST, outcome, ReplyReason.HELP_REQUEST)

