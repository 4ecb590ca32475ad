"""Alerts: compose, fan out into one delivery per recipient number and channel, cancel, report."""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import DateTime, Integer, and_, case, cast, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.core import capacity, line_health
from gateway.core.config import SCHEMA
from gateway.core.control_chars import control_characters
from gateway.core.db import transaction, utcnow
from gateway.core.elections import period_at
from gateway.core.models_panel import AlertText
from gateway.core.models import (Alert, Attempt, Contact, Delivery, Group, Line, PhoneNumberRow, SmsPart, Zone,
                            contact_groups, contact_numbers)
from gateway.core.phone import InvalidNumber, normalise_number
from gateway.core.quiet_hours import QuietHours
from gateway.core.polls import Poll, PollError, answer_suffix, check_poll, poll_results
from gateway.core.sms_text import SmsPlan, SmsTextError, plan_sms
from gateway.core.states import (AlertCategory, AlertState, CapCategory, Channel, DeliveryState, PartStatus,
                                 join_channels)


class AlertError(Exception):
    """An alert that cannot be created as asked; nothing was stored.

    ``msgid`` is the message with ``%(name)s`` placeholders and ``params`` their
    values: a user interface translates ``msgid`` (it is a gettext key) and fills
    in ``params``, while ``str()`` stays the English text the CLI prints.
    """

    def __init__(self, msgid: str, **params: object) -> None:
        self.msgid = msgid
        self.params = params
        super().__init__(msgid % params if params else msgid)


class AnswerError(AlertError):
    """A poll or confirmation request refused (gateway.core.polls.PollError): ``field`` says where."""

    def __init__(self, error: PollError) -> None:
        super().__init__(error.msgid, **error.params)
        self.field = error.field


FOLLOW_UPS = ("correction", "all_clear")
# What an emergency is about when nobody said (CAP 1.2 <category>): "Safety", CAP's "general emergency
# and public safety", is true of every alert a town sends; "Other" would tell a reader nothing.
DEFAULT_CAP_CATEGORY = CapCategory.SAFETY
# An alert stored without deliveries yet: release() fans it out, discard() ends it.
WAITING_TO_GO = (AlertState.DRAFT, AlertState.AWAITING_APPROVAL)


@dataclass(frozen=True)
class Target:
    everyone: bool = False
    zones: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()

    def describe(self) -> dict:
        return {"all": self.everyone, "zones": list(self.zones), "groups": list(self.groups),
                "numbers": list(self.numbers)}


@dataclass
class AlertRequest:
    text: str
    target: Target
    channels: tuple[str, ...] = (Channel.SMS,)
    drill: bool = False
    priority: bool = False
    created_by: str = "cli"
    deadline: dt.datetime | None = None
    # The retry policy (gateway.core.retry.AlertPolicy): the entry points fill it from the
    # configuration; these defaults are the schema's, for callers that do not.
    max_attempts: int = SCHEMA["retry"]["max_attempts"].default
    # Voice: the rendered message and the retry policy.
    audio_path: str | None = None
    audio_seconds: float | None = None
    audio_source: str | None = None
    voice_interval: float = SCHEMA["voice"]["interval"].default
    voice_growth: float = SCHEMA["voice"]["growth"].default
    voice_cap: int = SCHEMA["voice"]["per_number_cap"].default
    stop_on_confirm: bool = SCHEMA["voice"]["stop_on_confirm"].default
    sms_fallback: bool = SCHEMA["voice"]["sms_fallback"].default
    # Versions of the text in other languages, {"ro": "..."}: a recipient whose language
    # has one gets it; everyone else gets ``text``. ``translation_audio`` holds the voice
    # message of a version, {"ro": (path without extension, seconds)}.
    translations: dict[str, str] = field(default_factory=dict)
    translation_audio: dict[str, tuple[str, float]] = field(default_factory=dict)
    # Send at this time (naive UTC); None: at once.
    send_at: dt.datetime | None = None
    # A correction or all-clear of alert ``follows``: it goes to exactly the numbers, per
    # channel, the original went to (not cancelled before going out); ``target`` is ignored.
    follows: int | None = None
    follow_up: str | None = None
    # An AlertCategory; None: the default (``default_category``). ``cap_category`` (a CapCategory)
    # only for an emergency; None: DEFAULT_CAP_CATEGORY.
    category: str | None = None
    cap_category: str | None = None
    # During an election period an information message needs an approver's reason that it is
    # impersonal and indispensable (law 28/2000, art. 9), and who gave it. The entry points
    # check the role; the core checks that the reason is there.
    election_reason: str | None = None
    election_reason_by: str | None = None
    # What citizens are asked to answer by SMS (gateway/core/polls.py): one or the other, never both.
    asks_confirmation: bool = False
    poll: Poll | None = None


def default_category(request: AlertRequest, now: dt.datetime | None = None) -> AlertCategory:
    """The category of an alert nobody chose one for: a drill rehearses an emergency, and a CAP category
    names one; anything scheduled for later is public-utility information (an emergency goes now);
    otherwise emergency, the safe side (an emergency ignores STOP INFO, quiet hours and the election lock)."""
    if request.drill or request.cap_category:   # a CAP category says what emergency it is
        return AlertCategory.EMERGENCY
    if request.send_at is not None and request.send_at > (now or utcnow()):
        return AlertCategory.INFORMATION
    return AlertCategory.EMERGENCY


def resolve_category(request: AlertRequest, now: dt.datetime | None = None) -> None:
    """Check the request's category and CAP category and fill in the defaults (in place)."""
    if request.category is None:
        if request.follows is not None:
            return   # a follow-up takes its original's (AlertService._check_follow_up)
        request.category = default_category(request, now)
    try:
        request.category = AlertCategory(str(request.category).strip().lower())
    except ValueError:
        raise AlertError("unknown category %(category)s: emergency or information",
                         category=repr(request.category)) from None
    if request.category == AlertCategory.INFORMATION:
        if request.cap_category:
            raise AlertError("a CAP category (%(cap)s) is what an emergency is about: an information "
                             "message has none", cap=request.cap_category)
        request.cap_category = None
        return
    if not request.cap_category:
        request.cap_category = DEFAULT_CAP_CATEGORY
        return
    by_name = {member.value.casefold(): member for member in CapCategory}
    cap = by_name.get(str(request.cap_category).strip().casefold())
    if cap is None:
        raise AlertError("unknown CAP category %(cap)s: one of %(known)s", cap=repr(request.cap_category),
                         known=", ".join(CapCategory))
    request.cap_category = cap


@dataclass
class AlertPreview:
    sms_text: str
    plan: SmsPlan
    recipients: dict[str, int] = field(default_factory=dict)  # per channel

    @property
    def total_segments(self) -> int:
        return self.plan.segments * self.recipients.get(Channel.SMS, 0)


def compose_sms_text(text: str, drill: bool, drill_prefix: str) -> str:
    text = text.strip()
    if drill and not text.startswith(drill_prefix.strip()):
        text = drill_prefix + text
    return text


def answers_audited(request: AlertRequest) -> dict:
    """What the audit log keeps of the answers an alert asks for (the panel's, the API's and the CLI's entry)."""
    if request.poll is not None:
        poll = request.poll
        return {"poll": {"question": poll.question, "options": list(poll.options),
                         "closes_at": poll.closes_at.isoformat() + "Z" if poll.closes_at else None}}
    return {"asks_confirmation": True} if request.asks_confirmation else {}


def goes_by_sms(request: AlertRequest) -> bool:
    """Whether the text may go out as an SMS: by the SMS channel or as the voice fallback."""
    return Channel.SMS in request.channels or (Channel.VOICE in request.channels and request.sms_fallback)


class AlertService:
    def __init__(self, sessions: sessionmaker[Session], *, region: str = "IT", max_segments: int = 4,
                 drill_prefix: str = "[ESERCITAZIONE] ",
                 stale_seconds: float = line_health.STALE_MINIMUM_SECONDS,
                 quiet_hours: QuietHours | None = None, clock: Callable[[], dt.datetime] = utcnow,
                 hotline_number: str = "") -> None:
        self.sessions = sessions
        # Naive UTC now: when an alert goes out decides quiet hours and the election lock (tests set it).
        self.clock = clock
        # Appended to SMS texts when it costs no extra segment, so people know the number to call back.
        self.hotline_number = hotline_number.strip()
        self.region = region
        self.max_segments = max_segments
        self.drill_prefix = drill_prefix
        self.stale_seconds = stale_seconds
        self.quiet_hours = quiet_hours

    # --- categories: quiet hours and the election lock ---------------------------------
    def quiet_hold(self, category: str | None, at: dt.datetime) -> dt.datetime | None:
        """When an alert of ``category`` due at ``at`` (naive UTC) may start: the end of the quiet
        hours for information due during them; None when nothing holds it."""
        if category != AlertCategory.INFORMATION or self.quiet_hours is None:
            return None
        return self.quiet_hours.held_until(at)

    @staticmethod
    def _check_election(session: Session, category: str, at: dt.datetime, reason: str | None) -> None:
        """An information message going out at ``at`` during an election period needs a reason."""
        if category != AlertCategory.INFORMATION or (reason or "").strip():
            return
        period = period_at(session, at)
        if period is not None:
            raise AlertError("election period %(description)s (%(span)s, Italian time): an information message "
                             "goes out only with an approver's reason that it is impersonal and indispensable "
                             "(law 28/2000, art. 9); give the reason, or send it as an emergency if it is one",
                             description=repr(period.description), span=period.local_span())

    # --- composing ----------------------------------------------------------------
    def plan(self, request: AlertRequest) -> tuple[str, SmsPlan]:
        if not request.text.strip():
            raise AlertError("the alert text is empty")
        self.check_answers(request)
        return self._plan_text(request.text, request.drill, goes_by_sms(request), self._suffix(request, "it"))

    @staticmethod
    def _suffix(request: AlertRequest, language: str) -> str:
        return answer_suffix(language, poll=request.poll, asks_confirmation=request.asks_confirmation)

    @staticmethod
    def check_answers(request: AlertRequest, now: dt.datetime | None = None) -> None:
        """The poll or confirmation request is usable (request.poll is replaced by its trimmed form);
        raises PollError (an AlertError, with a ``field``) saying what and where."""
        if request.poll is None and not request.asks_confirmation:
            return
        try:
            if request.poll is not None and request.asks_confirmation:
                raise PollError("/asks_confirmation", "an alert asks for a confirmation or carries a poll, "
                                "not both: a reply 1 would mean both")
            # A call asks its poll after the message (1 during the message confirms, as always), so a
            # voice-only alert may carry a poll; "Rispondi OK" is an SMS thing: a call is confirmed with 1.
            if request.poll is None and not goes_by_sms(request):
                raise PollError("/asks_confirmation",
                                "a confirmation request needs the SMS channel (a call is confirmed with 1)")
            if request.poll is not None:
                request.poll = check_poll(request.poll, now=now or utcnow(), starts_at=request.send_at)
        except PollError as exc:
            raise AnswerError(exc) from None

    def _plan_text(self, text: str, drill: bool, by_sms: bool = True, suffix: str = "") -> tuple[str, SmsPlan]:
        controls = control_characters(text)
        if controls:
            raise AlertError("the text contains control characters (%(characters)s): remove them",
                             characters=controls)
        sms_text = compose_sms_text(text, drill, self.drill_prefix) + suffix
        try:
            plan = plan_sms(sms_text)
        except SmsTextError as exc:
            raise AlertError(str(exc)) from None
        # The segment limit guards SMS costs and phones that cannot join many parts: a text
        # that only goes out as a voice call is not limited by it.
        if by_sms and plan.segments > self.max_segments:
            msgid = ("the message needs %(segments)s SMS segments (GSM-7, %(units)s septets); the configured "
                     "maximum is %(maximum)s ([general] max_sms_segments). Shorten the text."
                     if plan.encoding == "GSM-7" else
                     "the message needs %(segments)s SMS segments (UCS-2, %(units)s characters); the configured "
                     "maximum is %(maximum)s ([general] max_sms_segments). Shorten the text.")
            raise AlertError(msgid, segments=plan.segments, units=plan.units, maximum=self.max_segments)
        if by_sms and self.hotline_number:
            plan = self._with_hotline_number(plan)
        # What goes out is the planned text (typographic characters replaced).
        return plan.text, plan

    def _with_hotline_number(self, plan: SmsPlan) -> SmsPlan:
        """The text ending with the hotline number, if that fits in the same segments and encoding."""
        signed = plan_sms(f"{plan.text} Info: {self.hotline_number}")
        if signed.segments == plan.segments and signed.encoding == plan.encoding:
            return signed
        return plan

    def plan_translations(self, request: AlertRequest) -> dict[str, tuple[str, SmsPlan]]:
        """{language: (sms_text, plan)} of every version in another language; AlertError if one is unusable."""
        planned = {}
        for language, text in sorted(request.translations.items()):
            if not (2 <= len(language) <= 3 and language.isascii() and language.isalpha() and language.islower()):
                raise AlertError("%(language)s is not a language code (two letters, such as en, fr, ro)",
                                 language=language)
            if language == "it":
                raise AlertError("the Italian text is the main text, not another version")
            if not text.strip():
                raise AlertError("the %(language)s version is empty", language=language)
            try:
                planned[language] = self._plan_text(text, request.drill, goes_by_sms(request),
                                                    self._suffix(request, language))
            except AlertError as exc:
                raise AlertError("the %(language)s version: %(reason)s", language=language, reason=str(exc)) from None
        return planned

    def _check_follow_up(self, session: Session, request: AlertRequest) -> None:
        original = session.get(Alert, request.follows)
        if original is None:
            raise AlertError("no alert with id %(id)s", id=request.follows)
        sent = session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.alert_id == original.id, Delivery.state != DeliveryState.CANCELLED))
        if not sent:
            raise AlertError("alert %(id)s has not gone out to anyone: there is nobody to correct or reassure",
                             id=original.id)
        others = set(request.channels) - set(original.delivery_channels)
        if others:
            raise AlertError("alert %(id)s did not go out by %(channels)s: a follow-up uses its channels",
                             id=original.id, channels=", ".join(sorted(others)))
        if request.category is None:
            # A correction or all-clear is of the same kind as what it corrects or ends.
            request.category, request.cap_category = original.category, request.cap_category or original.cap_category
            resolve_category(request)

    def preview(self, request: AlertRequest) -> AlertPreview:
        sms_text, plan = self.plan(request)
        self.plan_translations(request)
        resolve_category(request, self.clock())
        with self.sessions() as session:
            if request.follows is not None:
                self._check_follow_up(session, request)
            else:
                self._check_target(session, request.target)
            counts = {}
            for channel in request.channels:
                query = self._recipients_query(session, request.target, channel, alert_id=None,
                                               follows=request.follows, category=request.category)
                counts[channel] = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
                if request.follows is None:
                    counts[channel] += self._unlisted_numbers(session, request.target, channel,
                                                              request.category)
        return AlertPreview(sms_text, plan, counts)

    def _unlisted_numbers(self, session: Session, target: Target, channel: str, category: str | None) -> int:
        """--to numbers in no contact, which ``create`` will make one-number contacts of
        (``_ensure_numbers``): the preview counts them without writing anything."""
        count = 0
        for e164, kind in {(n.e164, n.kind) for n in (normalise_number(raw, self.region) for raw in target.numbers)}:
            row = session.scalar(select(PhoneNumberRow).where(PhoneNumberRow.e164 == e164))
            if row is not None and (row.contacts or row.opted_out
                                    or (row.opted_out_info and category == AlertCategory.INFORMATION)):
                continue   # already counted by the query, or never reached
            if channel != Channel.SMS or (row.kind if row is not None else kind) == "mobile":
                count += 1
        return count

    def recipient_languages(self, request: AlertRequest, channel: str) -> dict[str, int]:
        """Language -> recipient numbers of ``channel`` the alert would reach, as the fan-out
        records them (Delivery.language): which language versions the alert needs."""
        with self.sessions() as session:
            query = self._recipients_query(session, request.target, channel, alert_id=None,
                                           follows=request.follows, category=request.category).subquery()
            rows = session.execute(select(query.c.language, func.count()).group_by(query.c.language)).all()
        return {language: count for language, count in rows}

    def _check_target(self, session: Session, target: Target) -> None:
        if not (target.everyone or target.zones or target.groups or target.numbers):
            raise AlertError("no recipients chosen: give --zone, --group, --all or --to")
        for msgid, model, names in (("unknown zone: %(names)s (known: %(known)s)", Zone, target.zones),
                                    ("unknown group: %(names)s (known: %(known)s)", Group, target.groups)):
            known = list(session.scalars(select(model.name).order_by(model.name)))
            folded = {name.casefold() for name in known}
            missing = [name for name in names if name.casefold() not in folded]
            if missing:
                raise AlertError(msgid, names=", ".join(missing), known=", ".join(known) or "none")
        for raw in target.numbers:
            try:
                normalise_number(raw, self.region)
            except InvalidNumber as exc:
                raise AlertError("--to %(number)s: %(reason)s", number=raw, reason=str(exc)) from None

    def _recipients_query(self, session: Session, target: Target, channel: str, alert_id: int | None,
                          follows: int | None = None, category: str | None = None):
        """SELECT of one row per recipient number, shaped for INSERT INTO deliveries.

        A number that sent STOP INFO gets no information message (its contact, even a vulnerable
        one, is then on no door-to-door list for it: their choice); emergencies still reach it."""
        if follows is not None:
            return self._follow_up_query(follows, channel, alert_id, category)
        c, n = Contact.__table__.c, PhoneNumberRow.__table__.c
        cn, cg = contact_numbers.c, contact_groups.c
        conditions = []
        if not target.everyone:
            picks = []
            if target.zones:
                zone_ids = select(Zone.id).where(func.lower(Zone.name).in_([z.casefold() for z in target.zones]))
                picks.append(c.zone_id.in_(zone_ids))
            if target.groups:
                group_ids = select(Group.id).where(func.lower(Group.name).in_([g.casefold() for g in target.groups]))
                picks.append(exists().where(cg.contact_id == c.id, cg.group_id.in_(group_ids)))
            if target.numbers:
                e164s = [normalise_number(raw, self.region).e164 for raw in target.numbers]
                picks.append(n.e164.in_(e164s))
            conditions.append(or_(*picks))
        if channel == Channel.SMS:
            # Only mobiles get SMS; landlines wait for the voice channel.
            conditions += [n.kind == "mobile", c.needs.is_distinct_from("voice_only")]
        else:
            conditions.append(c.needs.is_distinct_from("text_only"))
        conditions.append(n.opted_out.is_(False))
        if category == AlertCategory.INFORMATION:
            conditions.append(n.opted_out_info.is_(False))
        vulnerable = func.max(cast(c.vulnerable, Integer))
        z = Zone.__table__.c
        return (select(literal(alert_id, Integer).label("alert_id"), n.id.label("number_id"), n.e164,
                       literal(channel).label("channel"), vulnerable.label("vulnerable"),
                       func.min(c.language).label("language"), func.min(z.name).label("zone"))
                .select_from(PhoneNumberRow.__table__.join(contact_numbers, cn.number_id == n.id)
                             .join(Contact.__table__, c.id == cn.contact_id)
                             .outerjoin(Zone.__table__, z.id == c.zone_id))
                .where(and_(*conditions)).group_by(n.id, n.e164))

    # --- creating -----------------------------------------------------------------
    def _validated(self, request: AlertRequest) -> tuple[str, SmsPlan]:
        """Every check that does not need the database; the planned SMS text."""
        sms_text, plan = self.plan(request)
        self.plan_translations(request)
        unknown = set(request.channels) - set(Channel)
        if unknown or not request.channels:
            raise AlertError("unknown channel(s): %(channels)s", channels=", ".join(sorted(unknown)) or "none given")
        if Channel.VOICE in request.channels and not request.audio_path:
            raise AlertError("a voice alert needs its audio message (a recording or speech from the text)")
        if request.voice_cap < 1 or request.max_attempts < 1:
            raise AlertError("attempts and the per-number cap must be at least 1")
        if request.follow_up is not None and (request.follow_up not in FOLLOW_UPS or request.follows is None):
            raise AlertError("a follow-up is a correction or an all clear of an alert that went out")
        resolve_category(request, self.clock())
        return sms_text, plan

    def _check_recipients(self, session: Session, request: AlertRequest) -> None:
        if request.follows is not None:
            self._check_follow_up(session, request)
        else:
            self._check_target(session, request.target)
            self._ensure_numbers(session, request.target)

    def _add_translations(self, session: Session, alert: Alert, request: AlertRequest) -> None:
        """The versions in other languages, stored with the alert (gateway.core.models_panel.AlertText)."""
        for language, (sms_text, plan) in self.plan_translations(request).items():
            audio_path, audio_seconds = request.translation_audio.get(language, (None, None))
            session.add(AlertText(alert_id=alert.id, language=language, text=request.translations[language],
                                  sms_text=sms_text, encoding=plan.encoding, segments=plan.segments,
                                  audio_path=audio_path, audio_seconds=audio_seconds))

    @staticmethod
    def _new_alert(request: AlertRequest, sms_text: str, plan: SmsPlan, **extra) -> Alert:
        return Alert(text=request.text, sms_text=sms_text, encoding=plan.encoding, segments=plan.segments,
                     channels=join_channels(request.channels), target=json.dumps(request.target.describe()),
                     drill=request.drill, priority=request.priority, created_by=request.created_by,
                     deadline=request.deadline, max_attempts=request.max_attempts,
                     audio_path=request.audio_path, audio_seconds=request.audio_seconds,
                     audio_source=request.audio_source, voice_interval=request.voice_interval,
                     voice_growth=request.voice_growth, voice_cap=request.voice_cap,
                     stop_on_confirm=request.stop_on_confirm, sms_fallback=request.sms_fallback,
                     send_at=request.send_at, follows_alert_id=request.follows, follow_up=request.follow_up,
                     category=request.category, cap_category=request.cap_category,
                     **AlertService._election_columns(request),
                     asks_confirmation=request.asks_confirmation,
                     poll_question=request.poll.question if request.poll else None,
                     poll_options=json.dumps(list(request.poll.options), ensure_ascii=False) if request.poll else None,
                     poll_closes_at=request.poll.closes_at if request.poll else None, **extra)

    @staticmethod
    def _election_columns(request: AlertRequest) -> dict:
        """The reason is kept only where the lock applies: an emergency needs none."""
        reason = (request.election_reason or "").strip()
        if not reason or request.category != AlertCategory.INFORMATION:
            return {"election_reason": None, "election_reason_by": None}
        return {"election_reason": reason, "election_reason_by": request.election_reason_by}

    def create(self, request: AlertRequest, *, session: Session | None = None) -> tuple[int, AlertPreview]:
        """Create the alert and every delivery in one transaction (``session``'s when given); return its id."""
        sms_text, plan = self._validated(request)
        with transaction(self.sessions, session) as session:
            self._check_recipients(session, request)
            now = self.clock()
            self._check_election(session, request.category, max(now, request.send_at or now),
                                 request.election_reason)
            alert = self._new_alert(request, sms_text, plan)
            session.add(alert)
            session.flush()
            self._add_translations(session, alert, request)
            counts = {}
            not_before = self._not_before(alert)
            for channel in request.channels:
                counts[channel] = self._fan_out(session, alert, request, channel, not_before)
            alert.recipients = sum(counts.values())
            if alert.recipients == 0:
                raise AlertError("the chosen target has no reachable recipient for %(channels)s",
                                 channels=" or ".join(request.channels))
        return alert.id, AlertPreview(sms_text, plan, counts)

    def _ensure_numbers(self, session: Session, target: Target) -> None:
        """--to numbers that are in no contact list become a one-number contact."""
        for raw in target.numbers:
            number = normalise_number(raw, self.region)
            row = session.scalar(select(PhoneNumberRow).where(PhoneNumberRow.e164 == number.e164))
            if row is None:
                row = PhoneNumberRow(e164=number.e164, kind=number.kind)
                session.add(row)
            if not row.contacts:
                row.contacts.append(Contact(name="", language="it"))
        session.flush()

    def _follow_up_query(self, original_id: int, channel: str, alert_id: int | None, category: str | None = None):
        """The numbers alert ``original_id`` went to on ``channel`` (not those cancelled before going
        out, nor numbers opted out since), with their language: a correction or all-clear reaches
        exactly the people who may have received the original, whatever the contacts say now."""
        d, n = Delivery.__table__.c, PhoneNumberRow.__table__.c
        return (select(literal(alert_id, Integer).label("alert_id"), d.number_id, d.e164,
                       literal(channel).label("channel"), cast(d.vulnerable, Integer).label("vulnerable"),
                       d.language, d.zone)
                .select_from(Delivery.__table__.join(PhoneNumberRow.__table__, n.id == d.number_id))
                .where(d.alert_id == original_id, d.channel == channel, d.state != DeliveryState.CANCELLED,
                       n.opted_out.is_(False),
                       *([n.opted_out_info.is_(False)] if category == AlertCategory.INFORMATION else [])))

    def _not_before(self, alert: Alert) -> dt.datetime | None:
        """When the alert's deliveries may first be claimed (None: at once): its chosen time, and for
        information due during quiet hours their end, in the queue like a scheduled alert. A quiet-hours
        hold moves the deadline with it: the deadline counts from when sending may start."""
        now = self.clock()
        not_before = alert.send_at if alert.send_at is not None and alert.send_at > now else None
        held = self.quiet_hold(alert.category, not_before or now)
        if held is None:
            return not_before
        if alert.deadline is not None:
            alert.deadline += held - (not_before or now)
        return held

    def _fan_out(self, session: Session, alert: Alert, request: AlertRequest, channel: str,
                 not_before: dt.datetime | None) -> int:
        recipients = self._recipients_query(session, request.target, channel, alert.id,
                                            follows=alert.follows_alert_id, category=alert.category).subquery()
        # Lower sort_key goes first: priority alerts, then vulnerable people.
        base = 0 if request.priority else 2
        sort_key = case((recipients.c.vulnerable == 1, base), else_=base + 1)
        # A scheduled or held alert: its deliveries wait in the queue until ``not_before`` (Store.claim
        # honours next_attempt_at), so the time survives restarts and cancel stops them like any pending work.
        insert = Delivery.__table__.insert().from_select(
            ["alert_id", "number_id", "e164", "channel", "state", "sort_key", "vulnerable", "language", "zone",
             "attempts", "submissions", "possible_duplicate", "parts_total", "parts_delivered", "next_attempt_at"],
            select(recipients.c.alert_id, recipients.c.number_id, recipients.c.e164, recipients.c.channel,
                   literal(DeliveryState.PENDING.value), sort_key, recipients.c.vulnerable == 1, recipients.c.language,
                   recipients.c.zone,
                   literal(0), literal(0), literal(False), literal(0), literal(0), literal(not_before, DateTime)))
        session.execute(insert)
        # Counted, not taken from the INSERT ... SELECT's rowcount: psycopg gives -1 there (SQLite gives
        # the count), which made `alert status` say "-1 recipients" and the no-recipient check never fire.
        return session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.alert_id == alert.id, Delivery.channel == channel))

    # --- drafts and approval (the panel's two-person rule) ------------------------------
    def create_pending(self, request: AlertRequest, state: AlertState = AlertState.AWAITING_APPROVAL, *,
                       session: Session | None = None) -> tuple[int, AlertPreview]:
        """Store an alert WITHOUT deliveries, as a 'draft' or 'awaiting_approval'.

        Everything ``create`` checks is checked now, so approving cannot fail on
        the text or the target; ``release`` fans it out later.
        """
        if state not in WAITING_TO_GO:
            raise ValueError(f"not a pending state: {state}")
        sms_text, plan = self._validated(request)
        with transaction(self.sessions, session) as session:
            self._check_recipients(session, request)
            counts = {}
            for channel in request.channels:
                query = self._recipients_query(session, request.target, channel, alert_id=None,
                                               follows=request.follows, category=request.category)
                counts[channel] = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            if sum(counts.values()) == 0:
                raise AlertError("the chosen target has no reachable recipient for %(channels)s",
                                 channels=" or ".join(request.channels))
            alert = self._new_alert(request, sms_text, plan, state=state)
            session.add(alert)
            session.flush()
            self._add_translations(session, alert, request)
        return alert.id, AlertPreview(sms_text, plan, counts)

    def release(self, alert_id: int, *, session: Session | None = None, election_reason: str | None = None,
                election_reason_by: str | None = None) -> dict[str, int]:
        """Fan out a draft or approved alert now (one transaction); it becomes 'active'.

        The state changes with a conditional UPDATE, so two approvers clicking
        at once fan it out only once. The deadline moves by the time it waited.
        An information message during an election period needs ``election_reason`` (from an
        approver, ``election_reason_by``), unless one was recorded when it was written.
        """
        now = self.clock()
        reason = (election_reason or "").strip()
        with transaction(self.sessions, session) as session:
            waiting = session.get(Alert, alert_id)
            if waiting is not None and waiting.state in WAITING_TO_GO:
                self._check_election(session, waiting.category, max(now, waiting.send_at or now),
                                     reason or waiting.election_reason)
                if reason:
                    waiting.election_reason, waiting.election_reason_by = reason, election_reason_by
            taken = session.execute(update(Alert).where(
                Alert.id == alert_id, Alert.state.in_(WAITING_TO_GO)).values(
                state=AlertState.ACTIVE)).rowcount
            alert = session.get(Alert, alert_id)
            if alert is None:
                raise AlertError("no alert with id %(id)s", id=alert_id)
            if not taken:
                raise AlertError("alert %(id)s is %(state)s, not waiting to be sent", id=alert_id, state=alert.state)
            if alert.deadline is not None:
                # The deadline counts from when sending was planned to start (creation, or
                # the chosen time): it moves by however long the approval made it wait.
                planned = alert.send_at or alert.created_at
                alert.deadline += max(now - planned, dt.timedelta(0))
            target = json.loads(alert.target)
            request = AlertRequest(text=alert.text, priority=alert.priority, category=alert.category,
                                   channels=alert.delivery_channels,
                                   target=Target(everyone=bool(target.get("all")), zones=tuple(target.get("zones", ())),
                                                 groups=tuple(target.get("groups", ())),
                                                 numbers=tuple(target.get("numbers", ()))))
            not_before = self._not_before(alert)
            counts = {channel: self._fan_out(session, alert, request, channel, not_before)
                      for channel in request.channels}
            alert.recipients = sum(counts.values())
            if alert.recipients == 0:
                raise AlertError("the chosen target has no reachable recipient any more")
        return counts

    def discard(self, alert_id: int, state: AlertState = AlertState.REJECTED, *,
                session: Session | None = None) -> None:
        """A draft or an alert awaiting approval that will never go out ('rejected' or 'cancelled')."""
        with transaction(self.sessions, session) as session:
            taken = session.execute(update(Alert).where(
                Alert.id == alert_id, Alert.state.in_(WAITING_TO_GO)).values(
                state=state, cancelled_at=utcnow())).rowcount
            if not taken:
                alert = session.get(Alert, alert_id)
                if alert is None:
                    raise AlertError("no alert with id %(id)s", id=alert_id)
                raise AlertError("alert %(id)s is %(state)s, not waiting to be sent", id=alert_id, state=alert.state)

    # --- after ----------------------------------------------------------------------
    def cancel(self, alert_id: int, *, session: Session | None = None) -> int:
        """Stop what has not gone out; returns the number of deliveries cancelled.

        A call or SMS in flight now is not interrupted, but it is not tried again:
        the store never claims deliveries of a cancelled alert, and records an
        attempt that comes back as 'cancelled', with no SMS fallback.
        """
        now = utcnow()
        with transaction(self.sessions, session) as session:
            alert = session.get(Alert, alert_id)
            if alert is None:
                raise AlertError("no alert with id %(id)s", id=alert_id)
            cancelled = session.execute(update(Delivery).where(
                Delivery.alert_id == alert_id, Delivery.state == DeliveryState.PENDING).values(
                state=DeliveryState.CANCELLED, updated_at=now, last_error="alert cancelled")).rowcount
            alert.state, alert.cancelled_at = AlertState.CANCELLED, now
        return cancelled

    def status(self, alert_id: int) -> dict:
        with self.sessions() as session:
            alert = session.get(Alert, alert_id)
            if alert is None:
                raise AlertError("no alert with id %(id)s", id=alert_id)
            counts = session.execute(select(Delivery.channel, Delivery.state, func.count()).where(
                Delivery.alert_id == alert_id).group_by(Delivery.channel, Delivery.state)).all()
            duplicate_causes = {cause or "unknown": count for cause, count in session.execute(
                select(Delivery.duplicate_cause, func.count()).where(
                    Delivery.alert_id == alert_id, Delivery.possible_duplicate.is_(True))
                .group_by(Delivery.duplicate_cause)).all()}
            duplicates = sum(duplicate_causes.values())
            per_line = {line: {"segments_sent": sent, "segments_delivered": delivered}
                        for line, sent, delivered in session.execute(
                            select(SmsPart.line, func.count(),
                                   func.sum(case((SmsPart.status == PartStatus.DELIVERED, 1), else_=0)))
                            .join(Delivery, Delivery.id == SmsPart.delivery_id)
                            .where(Delivery.alert_id == alert_id).group_by(SmsPart.line)).all()}
            calls = dict(session.execute(select(Attempt.line, func.count()).join(
                Delivery, Delivery.id == Attempt.delivery_id).where(
                Delivery.alert_id == alert_id, Delivery.channel == Channel.VOICE).group_by(Attempt.line)).all())
            lines = session.scalars(select(Line)).all()
            poll = poll_results(session, alert, now=utcnow())
        by_channel: dict[str, dict[str, int]] = {}
        for channel, state, count in counts:
            by_channel.setdefault(channel, {})[state] = count
        now = self.clock()
        stale = line_health.stale_lines(lines, now, self.stale_seconds)
        for line in lines:
            entry = per_line.setdefault(line.label, {"segments_sent": 0, "segments_delivered": 0})
            entry.update(channel=line.channel, node=line.node, state=line.state, stale=stale[line.label],
                         rate_per_minute=line.rate_per_minute,
                         last_error=line.last_error, in_use=line.in_use, limit=line.limit,
                         calls=calls.get(line.label, 0))
        # The panel's alert page computes its ETA with the same two calls.
        etas = capacity.estimate({channel: capacity.remaining(states) for channel, states in by_channel.items()},
                                 alert.segments, capacity.line_rates(lines, now, self.stale_seconds))
        channels = {channel: {"by_state": states, "remaining": etas[channel].remaining,
                              "in_progress": states.get(DeliveryState.SUBMITTING, 0),
                              "capacity_per_minute": round(etas[channel].rate_per_minute, 2),
                              "eta_seconds": etas[channel].seconds}
                    for channel, states in by_channel.items()}
        all_states = {}
        for states in by_channel.values():
            for state, count in states.items():
                all_states[state] = all_states.get(state, 0) + count
        held = (self.quiet_hold(alert.category, max(now, alert.send_at or now))
                if alert.state == AlertState.ACTIVE and all_states.get(DeliveryState.PENDING) else None)
        return {
            "alert": alert.id, "state": alert.state, "drill": alert.drill, "priority": alert.priority,
            "category": alert.category, "cap_category": alert.cap_category,
            "election_reason": alert.election_reason, "election_reason_by": alert.election_reason_by,
            "held_until": held.isoformat() + "Z" if held else None,
            "text": alert.sms_text, "encoding": alert.encoding, "segments": alert.segments,
            "channels_requested": list(alert.delivery_channels), "audio_seconds": alert.audio_seconds,
            "recipients": alert.recipients, "created_at": alert.created_at.isoformat() + "Z",
            "completed_at": alert.completed_at.isoformat() + "Z" if alert.completed_at else None,
            "by_state": {state.value: all_states.get(state, 0) for state in DeliveryState},
            "channels": channels,
            "possible_duplicates": duplicates,
            "possible_duplicates_by_cause": duplicate_causes,
            "lines": per_line,
            "remaining_segments": channels.get(Channel.SMS, {}).get("remaining", 0) * alert.segments,
            "eta_seconds": capacity.overall_seconds(etas.values()),
            "asks_confirmation": bool(alert.asks_confirmation),
            "poll": poll,
        }
