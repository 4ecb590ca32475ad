"""Alerts: compose (with live SMS cost and recipients), approve, follow, export."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template, request, send_file,
                   stream_with_context, url_for)
from flask_babel import get_locale, gettext as _, lazy_gettext, ngettext
from flask_login import current_user
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from gateway.core import inbox
from gateway.core.audio import VOICES, AudioError
from gateway.core.alerts import AlertError, AlertRequest, Target, compose_sms_text
from gateway.core.db import utcnow
from gateway.core.models_cap import CapMessage
from gateway.core.door_knock import door_knock_list
from gateway.core.models import Alert, Attempt, Contact, Delivery, Group, Zone, contact_numbers
from gateway.core.models_panel import AlertText
from gateway.core.polls import MAX_OPTIONS, Poll, answer_suffix, poll_results, votes_by_number
from gateway.core.quiet_hours import local_time
from gateway.core.sms_text import SmsTextError, is_gsm7, plan_sms, transliterate
from gateway.core.states import (REACHED_DELIVERY_STATES, AlertCategory, AlertState, ApprovalDecision, CapCategory,
                                 Channel, DeliveryState)
from gateway.core.voice_messages import (EmptyText, NoVoice, RecordingError, VoiceRenderer, discard, main_version,
                                         translation_version)
from web import alert_flow
from web.alert_pictures import AlertPictures, PicturesCache, alert_pictures
from web.params import bounded_int, page_number
from web.context import panel
from web.errors import audio_reason, error_message
from web.i18n import DEFAULT_LANGUAGE, LANGUAGES
from web.inbox import help_rows
from web.labels import label, labels_for
from web.progress import BUCKETS, alert_progress, eta_seconds
from web.report_pdf import report_pdf
from web.security import passive, require_role

bp = Blueprint("alerts", __name__, url_prefix="/alerts")

# The compose form's choice -> the channels it sends on.
CHANNEL_CHOICES = {"sms": (Channel.SMS,), "voice": (Channel.VOICE,), "both": (Channel.SMS, Channel.VOICE),
                   "voice_fallback": (Channel.VOICE,)}
AUDIO_TYPES = {".wav", ".mp3", ".ogg", ".oga"}
PAGE_SIZE = 50
REACHED = REACHED_DELIVERY_STATES

# Starting texts for the usual risks; the operator completes and corrects them.
TEMPLATES = {
    "flood": "Allerta rossa per rischio idraulico: salire ai piani alti, non usare l'auto, non scendere in cantine e sottopassi.",
    "wind": "Allerta vento forte: restare in casa, fissare gli oggetti su balconi e terrazzi, evitare parchi e alberi.",
    "heat": "Ondata di calore: evitare di uscire dalle 11 alle 18, bere spesso, controllare anziani e persone fragili.",
    "evacuation": "Evacuazione: lasciare subito l'abitazione e raggiungere l'area di attesa indicata dalla Protezione Civile.",
    "water": "Interruzione dell'acqua potabile: fare scorta, non bere l'acqua del rubinetto fino a nuovo avviso.",
    "all_clear": "Cessato allarme: la situazione è tornata alla normalità. Grazie per la collaborazione.",
    "correction": "Rettifica: il messaggio precedente conteneva un errore. Il testo corretto è: ",
}
# The category each template starts with (category, CAP category): a risk is an emergency, a water
# outage public-utility information; a follow-up takes its original's (None).
TEMPLATE_CATEGORIES = {"flood": ("emergency", "Met"), "wind": ("emergency", "Met"), "heat": ("emergency", "Met"),
                       "evacuation": ("emergency", "Safety"), "water": ("information", ""),
                       "all_clear": None, "correction": None}
TEMPLATE_NAMES = {"flood": lazy_gettext("Flood"), "wind": lazy_gettext("Wind"), "heat": lazy_gettext("Heat"),
                  "evacuation": lazy_gettext("Evacuation"), "water": lazy_gettext("Water outage"),
                  "all_clear": lazy_gettext("All clear"), "correction": lazy_gettext("Correction")}

# Versions of the text in other languages: the languages of the contact lists (gateway/core/contacts_csv.py).
LANGUAGE_NAMES = {"en": lazy_gettext("English"), "fr": lazy_gettext("French"), "de": lazy_gettext("German"),
                  "es": lazy_gettext("Spanish"), "ro": lazy_gettext("Romanian"), "ar": lazy_gettext("Arabic"),
                  "uk": lazy_gettext("Ukrainian"), "sq": lazy_gettext("Albanian"), "zh": lazy_gettext("Chinese")}
FOLLOW_UP_NAMES = {"correction": lazy_gettext("Correction"), "all_clear": lazy_gettext("All clear")}
# The time to send is typed in the municipality's time; stored as naive UTC like every time.
LOCAL_TZ = ZoneInfo("Europe/Rome")
MAX_SCHEDULE_DAYS = 30


class FormError(Exception):
    pass


def _int(name: str, default: int, low: int = 1, high: int = 100) -> int:
    raw = request.form.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FormError(_("%(field)s must be a whole number.", field=name)) from None
    if not low <= value <= high:
        raise FormError(_("%(field)s must be between %(low)s and %(high)s.", field=name, low=low, high=high))
    return value


def _split_numbers(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.replace(";", "\n").replace(",", "\n").splitlines() if n.strip())


def _send_at() -> dt.datetime | None:
    """The chosen time to send (typed in local time) as naive UTC; None: at once."""
    at = _local_time("send_at", _("The time to send is not a valid date and time."))
    if at is None:
        return None
    now = utcnow()
    if at < now - dt.timedelta(minutes=1):
        raise FormError(_("The time to send has passed: leave it empty to send at once."))
    if at > now + dt.timedelta(days=MAX_SCHEDULE_DAYS):
        raise FormError(ngettext("The time to send is more than %(num)s day away.",
                                 "The time to send is more than %(num)s days away.", MAX_SCHEDULE_DAYS))
    return at


def _follows() -> tuple[int | None, str | None]:
    follows = bounded_int(request.form, "follows")
    if follows is None:
        return None, None
    kind = request.form.get("follow_up", "")
    if kind not in FOLLOW_UP_NAMES:
        raise FormError(_("Choose whether this is a correction or an all clear."))
    return follows, kind


def _poll() -> Poll | None:
    """The form's poll: a question and the options typed (empty boxes left out); None when all are empty."""
    form = request.form
    question = form.get("poll_question", "").strip()
    options = tuple(option for option in form.getlist("poll_options") if option.strip())
    if not question and not options:
        return None
    closes = _local_time("poll_closes_at", _("The closing time of the poll is not a valid date and time."))
    return Poll(question, options, closes)


def _local_time(name: str, invalid: str) -> dt.datetime | None:
    """A datetime-local field (the municipality's time) as naive UTC; None when empty."""
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        local = dt.datetime.fromisoformat(raw)
        at = (local if local.tzinfo else local.replace(tzinfo=LOCAL_TZ)).astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01 in local time is before year 1 in UTC
        raise FormError(invalid) from None
    return at.replace(tzinfo=None)


def request_from_form() -> AlertRequest:
    """The AlertRequest the compose form describes (the voice message is added later)."""
    config = panel().config
    voice = config.voice
    form = request.form
    choice = form.get("channels", "sms")
    if choice not in CHANNEL_CHOICES:
        raise FormError(_("Choose the channels."))
    channels = CHANNEL_CHOICES[choice]
    follows, follow_up = _follows()
    # A correction or all-clear goes to the original's recipients: the form has no target.
    target = Target() if follows is not None else Target(
        everyone=form.get("everyone") == "1", zones=tuple(form.getlist("zones")),
        groups=tuple(form.getlist("groups")), numbers=_split_numbers(form.get("numbers", "")))
    default_attempts = voice.max_attempts if Channel.VOICE in channels else config.retry.max_attempts
    deadline = _int("deadline_minutes", int(voice.deadline_minutes), 1, 24 * 60)
    send_at = _send_at()
    translations = {lang: form.get(f"text_{lang}", "").strip() for lang in LANGUAGE_NAMES}
    return AlertRequest(
        text=form.get("text", ""), target=target, channels=channels, drill=form.get("drill") == "1",
        priority=form.get("priority") == "1", max_attempts=_int("max_attempts", default_attempts, 1, 20),
        # The deadline counts from the time the alert starts going out.
        deadline=(send_at or utcnow()) + dt.timedelta(minutes=deadline),
        voice_interval=_int("voice_interval", int(voice.interval), 0, 24 * 3600),
        voice_growth=voice.growth, voice_cap=_int("voice_cap", voice.per_number_cap, 1, 20),
        stop_on_confirm=voice.stop_on_confirm, sms_fallback=choice == "voice_fallback",
        translations={lang: text for lang, text in translations.items() if text},
        send_at=send_at, follows=follows, follow_up=follow_up,
        # Empty: the default (gateway.core.alerts.default_category), which the form's first option says.
        # The CAP category select keeps its value when "information" is picked after it: it is then ignored.
        category=form.get("category", "").strip() or None,
        cap_category=(form.get("cap_category", "").strip() or None) if form.get("category") != "information" else None,
        election_reason=form.get("election_reason", ""),
        asks_confirmation=form.get("asks_confirmation") == "1", poll=_poll())


def _recording() -> tuple[bytes, str]:
    """The recording of the form: a file uploaded, or one made in the browser (allerta-voice.js)."""
    recorded = request.form.get("voice_source") == "browser"
    upload = request.files.get("recording" if recorded else "audio")
    if upload is None or not upload.filename:
        raise FormError(_("Record the message first.") if recorded else _("Choose a recording to upload."))
    suffix = Path(upload.filename).suffix.lower()
    if suffix not in AUDIO_TYPES:
        raise FormError(_("Unsupported file type %(type)s: upload a WAV, MP3 or OGG recording.",
                          type=suffix or "?"))
    limit = panel().web.max_upload_mb * 1024 * 1024
    data = upload.read(limit + 1)
    if not data:
        raise FormError(_("The uploaded file is empty."))
    if len(data) > limit:
        raise FormError(_("The file is too large: at most %(mb)s MB.", mb=panel().web.max_upload_mb))
    return data, upload.filename


@contextmanager
def _recording_file() -> Iterator[str | None]:
    """The form's recording in a temporary file, which the audio functions read; None: speech."""
    if request.form.get("voice_source") not in ("upload", "browser"):
        yield None
        return
    data, filename = _recording()
    uploads = Path(panel().config.general.data_dir) / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=Path(filename).suffix.lower(), dir=uploads)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield tmp
    except RecordingError as exc:
        raise FormError(_("The recording cannot be used: %(reason)s",
                          reason=audio_reason(str(exc).replace(tmp, filename)))) from None
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def _speech_errors() -> Iterator[None]:
    """gateway.core.voice_messages' errors as the compose form says them."""
    try:
        yield
    except NoVoice:
        raise FormError(_("No voice for this language.")) from None
    except EmptyText:
        raise FormError(_("Write the text of the message first.")) from None
    except AudioError as exc:
        raise FormError(_("The speech could not be synthesised: %(reason)s", reason=str(exc))) from None


def _text_language() -> str:
    """The language the text is written in, read by its voice (the form's "Speech ... in")."""
    return request.form.get("voice_language", panel().config.voice.language)


def _voice_message(alert_request: AlertRequest) -> None:
    """Render every voice version of the alert into Asterisk's sounds directory, as the CLI and the API do."""
    with _speech_errors(), _recording_file() as recording:
        VoiceRenderer.from_config(panel().config).render_alert(
            alert_request, panel().services.alerts, text_language=_text_language(), recording=recording)


def _choices(follows: int | None = None) -> dict:
    with panel().sessions() as s:
        zones = list(s.scalars(select(Zone.name).order_by(Zone.name)))
        groups = list(s.scalars(select(Group.name).order_by(Group.name)))
        original = s.get(Alert, follows) if follows is not None else None
        sent_to = {}
        if original is not None:
            sent_to = dict(s.execute(select(Delivery.channel, func.count()).where(
                Delivery.alert_id == original.id, Delivery.state != DeliveryState.CANCELLED)
                .group_by(Delivery.channel)).all())
    return {"zones": zones, "groups": groups, "voices": sorted(VOICES), "templates": TEMPLATES,
            "template_names": TEMPLATE_NAMES, "template_categories": TEMPLATE_CATEGORIES,
            "categories": list(AlertCategory), "cap_categories": list(CapCategory), "languages": LANGUAGE_NAMES, "follow_up_names": FOLLOW_UP_NAMES,
            "defaults": panel().config.voice, "retry": panel().config.retry, "original": original,
            "sent_to": sent_to}


def _channel_choice(alert: Alert) -> str:
    channels = alert.delivery_channels
    if channels == (Channel.VOICE,):
        return "voice_fallback" if alert.sms_fallback else "voice"
    return "both" if Channel.VOICE in channels else "sms"


def _follow_up_form(original: Alert, kind: str) -> dict:
    """The compose form of a correction or all-clear, filled from the original."""
    text = TEMPLATES["all_clear"] if kind == "all_clear" else TEMPLATES["correction"] + original.text
    return {"text": text, "channels": _channel_choice(original), "follows": str(original.id), "follow_up": kind,
            "drill": "1" if original.drill else "", "category": original.category,
            "cap_category": original.cap_category or ""}


# --- compose ------------------------------------------------------------------------------
@bp.route("/new", methods=["GET", "POST"])
@require_role("operator")
def new():
    # Anything but a POST shows the form: a HEAD (which CSRF protection does not check) changes nothing.
    if request.method != "POST":
        follows = bounded_int(request.args, "follows")
        if follows is None:
            return render_template("alerts/new.html", form=request.form, **_choices())
        kind = request.args.get("kind", "correction")
        if kind not in FOLLOW_UP_NAMES:
            abort(404)
        original = _get_alert(follows)
        form = _follow_up_form(original, kind)
        return render_template("alerts/new.html", form=_FormView(form), **_choices(follows))
    mode = request.form.get("action", "submit")
    alert_request = None
    try:
        alert_request = request_from_form()
        panel().services.alerts.preview(alert_request)  # text, target: fail before rendering audio
        if Channel.VOICE in alert_request.channels:
            _voice_message(alert_request)
        outcome = alert_flow.create_alert(panel(), alert_request, actor=current_user.username,
                                          role=current_user.role, mode=mode, reason=request.form.get("reason", ""),
                                          shared=request.form.get("shared") == "1")
    except (FormError, AlertError, alert_flow.FlowError) as exc:
        if alert_request is not None:
            discard(alert_request)
        flash(error_message(exc), "error")
        voice = Channel.VOICE in CHANNEL_CHOICES.get(request.form.get("channels", ""), ())
        if voice and request.form.get("voice_source") in ("upload", "browser"):
            # Every other field comes back filled in; a browser never lets a page put a file back into
            # a file input, so the one thing to do again is the recording.
            flash(_("The recording was not kept: a browser cannot hold on to a file after a refused send. "
                    "Record it or choose the file again before sending."), "warning")
        return render_template("alerts/new.html", form=request.form,
                               **_choices(bounded_int(request.form, "follows"))), 400
    messages = {AlertState.DRAFT: _("Draft %(id)s saved.", id=outcome.alert_id),
                AlertState.AWAITING_APPROVAL: _("Alert %(id)s is waiting for an approver.", id=outcome.alert_id),
                AlertState.ACTIVE: _("Alert %(id)s is being sent.", id=outcome.alert_id)}
    flash(messages[outcome.state], "success")
    if outcome.state == AlertState.ACTIVE:
        _flash_held(alert_request.category, alert_request.send_at)
    return redirect(url_for("alerts.show", alert_id=outcome.alert_id))


def held_until(category: str, send_at: dt.datetime | None) -> str | None:
    """"08:00" when an alert of ``category`` starting now (or at ``send_at``) waits for the end of the
    quiet hours ([ops] quiet_hours), in Italian time; None when nothing holds it."""
    now = utcnow()
    held = panel().services.alerts.quiet_hold(category, max(now, send_at or now))
    return None if held is None else local_time(held).strftime("%H:%M")


def _flash_held(category: str, send_at: dt.datetime | None) -> None:
    held = held_until(category, send_at)
    if held:
        flash(_("Held until %(time)s (quiet hours): information messages wait for the morning.", time=held),
              "warning")


@bp.route("/sms-plan", methods=["POST"])
@require_role("operator")
@passive
def sms_plan():
    """Encoding and segments of a text as typed, for the live counter."""
    data = request.get_json(silent=True) or {}
    text = str(data.get("text", ""))
    general = panel().config.general
    # What the citizens are asked to answer ends the SMS and counts (gateway/core/polls.py).
    suffix = _answer_suffix(data)
    composed = compose_sms_text(text, bool(data.get("drill")), general.drill_prefix) + suffix
    # Only a text that goes out by SMS is limited by the segments ("voice" alone is not).
    by_sms = str(data.get("channels") or "sms") != "voice"
    result = {"length": len(text), "max_segments": general.max_sms_segments}
    if not text.strip():
        return {**result, "encoding": None, "segments": 0, "units": 0, "culprits": [], "fixed": None}
    try:
        as_typed = plan_sms(composed, transliterate_typographic=False)
    except SmsTextError as exc:
        return {**result, "error": str(exc), "encoding": None, "segments": 0, "units": 0, "culprits": [],
                "fixed": None}
    culprits = sorted({ch for ch in composed if not is_gsm7(ch)})
    fixed = transliterate(text)
    fixable = as_typed.encoding == "UCS-2" and is_gsm7(compose_sms_text(fixed, bool(data.get("drill")),
                                                                          general.drill_prefix) + suffix)
    return {**result, "encoding": as_typed.encoding, "segments": as_typed.segments, "units": as_typed.units,
            "culprits": culprits, "fixed": fixed if fixable else None,
            "too_long": by_sms and as_typed.segments > general.max_sms_segments}


def _answer_suffix(data: dict) -> str:
    """The end of the SMS the counter's JSON describes (question, options, confirmation, language)."""
    question = str(data.get("poll_question") or "").strip()
    raw_options = data.get("poll_options") if isinstance(data.get("poll_options"), list) else []
    options = tuple(str(option).strip() for option in raw_options[:MAX_OPTIONS] if str(option).strip())
    poll = Poll(question, options) if question or options else None
    language = str(data.get("language") or "it")
    return answer_suffix(language, poll=poll, asks_confirmation=bool(data.get("asks_confirmation")) and poll is None)


@bp.route("/preview", methods=["POST"])
@require_role("operator")
@passive
def preview():
    """Recipients per channel and ETA for the compose form, before anything is stored."""
    try:
        alert_request = request_from_form()
        result = panel().services.alerts.preview(alert_request)
    except (FormError, AlertError) as exc:
        return {"error": error_message(exc)}, 400
    with panel().sessions() as s:
        etas = eta_seconds(s, result.recipients, result.plan.segments, panel().config)
    return {"recipients": result.recipients, "segments": result.plan.segments, "encoding": result.plan.encoding,
            "total_segments": result.total_segments, "eta_seconds": etas,
            "channel_labels": labels_for("channel"),
            # The counts in words, singular or plural in the user's language, for the page's script.
            "recipients_text": {channel: ngettext("%(num)s recipient", "%(num)s recipients", count)
                                for channel, count in result.recipients.items()},
            "eta_text": {channel: None if eta is None else ngettext("%(num)s minute", "%(num)s minutes",
                                                                    math.ceil(eta / 60))
                         for channel, eta in etas.items()}}


class _FormView(dict):
    """A dict with the ``getlist`` of a request form, to fill the compose template."""

    def getlist(self, key: str) -> list:
        value = self.get(key)
        return [] if value is None else value if isinstance(value, list) else [value]


@bp.route("/voice-preview", methods=["POST"])
@require_role("operator")
def voice_preview():
    """The voice message exactly as citizens will hear it (the 8 kHz WAV a call plays), before sending.

    The same code renders the speech or converts the recording as when the
    alert is created, into a temporary file deleted once read: nothing is stored.
    ``preview_language`` picks a version in another language.
    """
    language = request.form.get("preview_language", "")
    try:
        alert_request = request_from_form()
        previews = Path(panel().config.general.data_dir) / "previews"
        previews.mkdir(parents=True, exist_ok=True)
        renderer = VoiceRenderer.from_config(panel().config)
        with tempfile.TemporaryDirectory(dir=previews) as tmp:
            out = Path(tmp) / "preview.wav"
            if language:
                if language not in alert_request.translations:
                    raise FormError(_("Write the version in this language first."))
                try:
                    version = translation_version(language, alert_request.translations[language])
                except NoVoice:
                    raise FormError(_("No voice for this language: its recipients hear the main message.")) from None
                with _speech_errors():
                    renderer.render(version, out, drill=alert_request.drill)
            else:
                with _speech_errors(), _recording_file() as recording:
                    version = main_version(alert_request.text, _text_language(), recorded=recording is not None)
                    renderer.render(version, out, drill=alert_request.drill, recording=recording)
            data = out.read_bytes()
    except (FormError, AlertError) as exc:
        return {"error": error_message(exc)}, 400
    return Response(data, mimetype="audio/wav",
                    headers={"Content-Disposition": 'inline; filename="preview.wav"'})


# --- lists and pages -----------------------------------------------------------------------
@bp.route("/")
@require_role("viewer")
def index():
    page = page_number(request.args)
    state = request.args.get("state", "")
    with panel().sessions() as s:
        query = select(Alert)
        if state:
            query = query.where(Alert.state == state)
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        alerts = list(s.scalars(query.order_by(Alert.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)))
        progress = alert_progress(s, [a.id for a in alerts])
    return render_template("alerts/index.html", alerts=alerts, progress=progress, page=page, state=state,
                           pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE), now=utcnow(),
                           follow_up_names=FOLLOW_UP_NAMES)


def _get_alert(alert_id: int) -> Alert:
    with panel().sessions() as s:
        alert = s.get(Alert, alert_id)
    if alert is None:
        abort(404)
    return alert


def _delivery_filters(alert_id: int):
    conditions = [Delivery.alert_id == alert_id]
    state, channel = request.args.get("state", ""), request.args.get("channel", "")
    zone, number = request.args.get("zone", ""), request.args.get("number", "").strip()
    if state:
        states = [s for s, b in BUCKETS.items() if b == state] or [state]
        conditions.append(Delivery.state.in_(states))
    if channel:
        conditions.append(Delivery.channel == channel)
    if request.args.get("vulnerable") == "1":
        conditions.append(Delivery.vulnerable.is_(True))
    if number:
        conditions.append(Delivery.e164.contains(number.replace(" ", ""), autoescape=True))
    if zone:
        conditions.append(Delivery.zone == zone)
    return and_(*conditions)


def eta_label(seconds: float | None) -> str:
    """Time still needed as the compose page shows it: whole minutes, rounded up."""
    if seconds is None:
        return _("no line up: cannot estimate")
    return f"{math.ceil(seconds / 60)} {_('min')}" if seconds else "-"


def _with_etas(s: Session, alert: Alert, progress: dict) -> dict:
    """``progress`` with each channel's time still needed, the ETA of ``allerta alert status``."""
    etas = eta_seconds(s, {channel: c["remaining"] for channel, c in progress["channels"].items()},
                       alert.segments, panel().config)
    for channel, seconds in etas.items():
        progress["channels"][channel].update(eta_seconds=seconds, eta=eta_label(seconds))
    return progress


@bp.route("/<int:alert_id>")
@require_role("viewer")
def show(alert_id: int):
    alert = _get_alert(alert_id)
    page = page_number(request.args)
    with panel().sessions() as s:
        progress = _with_etas(s, alert, alert_progress(s, [alert_id])[alert_id])
        by_zone_rows = s.execute(select(Delivery.zone, Delivery.state, func.count())
                                 .where(Delivery.alert_id == alert_id).group_by(Delivery.zone, Delivery.state)).all()
        # One scan of the alert's deliveries (by zone and state) gives the counts by state
        # and what has gone out too: at 100,000 deliveries each extra COUNT costs ~30 ms.
        by_state: dict[str, int] = {}
        for _zone, state, count in by_zone_rows:
            by_state[state] = by_state.get(state, 0) + count
        where = _delivery_filters(alert_id)
        filtered = any(request.args.get(key) for key in ("state", "channel", "zone", "number", "vulnerable"))
        total = (s.scalar(select(func.count()).select_from(Delivery).where(where)) if filtered
                 else sum(by_state.values()))
        # The page's ids first: the OFFSET then walks an index (alert, channel, state, id),
        # not the skipped rows themselves (deep in 100,000 deliveries that is most of the time).
        page_ids = (select(Delivery.id).where(where).order_by(Delivery.id)
                    .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE).scalar_subquery())
        rows = s.execute(select(Delivery, Delivery.zone.label("zone")).where(Delivery.id.in_(page_ids))
                         .order_by(Delivery.id)).all()
        zones = list(s.scalars(select(Zone.name).order_by(Zone.name)))
        versions = list(s.scalars(select(AlertText).where(AlertText.alert_id == alert_id)
                                  .order_by(AlertText.language)))
        follow_ups = list(s.scalars(select(Alert).where(Alert.follows_alert_id == alert_id).order_by(Alert.id)))
        cap_messages = list(s.scalars(select(CapMessage).where(CapMessage.alert_id == alert_id).order_by(CapMessage.id)))
        gone_out = sum(count for state, count in by_state.items() if state != DeliveryState.CANCELLED)
        answers = _answers(s, alert)
    by_zone: dict[str, dict[str, int]] = {}
    for zone_name, state, count in by_zone_rows:
        entry = by_zone.setdefault(zone_name or "-", {"total": 0, "reached": 0, "failed": 0, "open": 0})
        entry["total"] += count
        bucket = BUCKETS.get(state, "in_progress")
        entry["reached" if bucket == "reached" else "failed" if bucket in ("failed", "cancelled")
              else "open"] += count
    approvals = alert_flow.approvals(panel(), alert_id)
    held = held_until(alert.category, alert.send_at) if alert.state == AlertState.ACTIVE and by_state.get(
        DeliveryState.PENDING) else None
    asked = next((a.requested_by for a in reversed(approvals) if a.decision == ApprovalDecision.PENDING), None)
    me = {"actor": current_user.username, "role": current_user.role}
    return render_template("alerts/show.html", alert=alert, progress=progress, by_zone=by_zone, by_state=by_state,
                           cap_messages=cap_messages,
                           rows=rows, total=total, page=page, pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE),
                           zones=zones, approvals=approvals, may_change_draft=alert_flow.may_change_draft(alert, **me),
                           may_cancel=alert_flow.may_cancel(alert, asked, **me), asked_by=asked,
                           target=json.loads(alert.target), filters=request.args, versions=versions,
                           follow_ups=follow_ups, gone_out=gone_out, now=utcnow(), languages=LANGUAGE_NAMES,
                           follow_up_names=FOLLOW_UP_NAMES, held_until=held, **answers)


def _answers(s: Session, alert: Alert) -> dict:
    """What citizens answered the alert: its poll's results, its help requests (open and handled)."""
    return {"poll": poll_results(s, alert, now=utcnow()),
            "help_requests": help_rows(inbox.help_requests(s, open_only=False, alert_id=alert.id))}


@bp.route("/<int:alert_id>/progress.json")
@require_role("viewer")
@passive
def progress_json(alert_id: int):
    alert = _get_alert(alert_id)
    with panel().sessions() as s:
        progress = _with_etas(s, alert, alert_progress(s, [alert_id])[alert_id])
        answers = _answers(s, alert)
    return {"id": alert.id, "state": alert.state, "state_label": label(alert.state, "alert_state"),
            "progress": progress, **answers}


@bp.route("/<int:alert_id>/pictures.json")
@require_role("viewer")
@passive
def pictures_json(alert_id: int):
    """The reach curve, outcomes by call and zone map as SVG, for the page to swap in while the alert runs."""
    alert = _get_alert(alert_id)
    cache = current_app.extensions.setdefault("allerta_pictures", PicturesCache())

    def draw() -> AlertPictures:
        with panel().sessions() as s:
            return alert_pictures(s, alert, panel().config)
    return cache.get(alert_id, str(get_locale()), draw).as_json()


@bp.route("/<int:alert_id>/deliveries/<int:delivery_id>")
@require_role("viewer")
def delivery(alert_id: int, delivery_id: int):
    with panel().sessions() as s:
        row = s.get(Delivery, delivery_id)
        if row is None or row.alert_id != alert_id:
            abort(404)
        attempts = list(s.scalars(select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.id)))
    return render_template("alerts/delivery.html", alert_id=alert_id, delivery=row,
                           attempts=[(attempt, call_seconds(attempt)) for attempt in attempts])


def call_seconds(attempt: Attempt) -> tuple[int | None, int | None]:
    """(whole call, of which answered) in seconds: how long a call held the line, and how long someone
    (or a mailbox) listened. None where the call has not ended, or was never answered."""
    if attempt.channel != Channel.VOICE or attempt.ended_at is None or attempt.started_at is None:
        return None, None
    total = max(0, round((attempt.ended_at - attempt.started_at).total_seconds()))
    if attempt.answered_at is None:
        return total, None
    return total, max(0, round((attempt.ended_at - attempt.answered_at).total_seconds()))


@bp.route("/<int:alert_id>/audio.wav")
@require_role("viewer")
def audio(alert_id: int):
    alert = _get_alert(alert_id)
    if not alert.audio_path:
        abort(404)
    path = Path(alert.audio_path + ".wav").resolve()
    sounds = Path(panel().config.sounds_dir).resolve()
    if sounds not in path.parents or not path.is_file():
        abort(404)
    return send_file(path, mimetype="audio/wav")


@bp.route("/<int:alert_id>/audio/<language>.wav")
@require_role("viewer")
def audio_version(alert_id: int, language: str):
    """The voice message of the alert's version in ``language``."""
    with panel().sessions() as s:
        version = s.scalar(select(AlertText).where(AlertText.alert_id == alert_id, AlertText.language == language))
    if version is None or not version.audio_path:
        abort(404)
    path = Path(version.audio_path + ".wav").resolve()
    sounds = Path(panel().config.sounds_dir).resolve()
    if sounds not in path.parents or not path.is_file():
        abort(404)
    return send_file(path, mimetype="audio/wav")


def csv_cell(value: object) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP: CSV injection)."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def _people_by_number(s, alert_id: int) -> dict[int, tuple[str, str | None, str | None]]:
    """number_id -> (names, zone, address) for the numbers of one alert, in one query."""
    numbers = select(Delivery.number_id).where(Delivery.alert_id == alert_id)
    rows = s.execute(select(contact_numbers.c.number_id, Contact.name, Zone.name, Contact.address)
                     .join(Contact, Contact.id == contact_numbers.c.contact_id)
                     .outerjoin(Zone, Zone.id == Contact.zone_id)
                     .where(contact_numbers.c.number_id.in_(numbers))).all()
    people: dict[int, tuple[str, str | None, str | None]] = {}
    for number_id, name, zone, address in rows:
        if number_id in people:
            old = people[number_id]
            people[number_id] = (", ".join(filter(None, (old[0], name))), old[1] or zone, old[2] or address)
        else:
            people[number_id] = (name, zone, address)
    return people


def _poll_answer(option: int | None, options: list[str]) -> str:
    if option is None:
        return ""
    return f"{option} · {options[option - 1]}" if 1 <= option <= len(options) else str(option)


@bp.route("/<int:alert_id>/export.csv")
@require_role("operator")
def export(alert_id: int):
    alert = _get_alert(alert_id)
    header = ["delivery", "number", "channel", "state", "attempts", "line", "last_error", "sent_at",
              "delivered_at", "vulnerable", "name", "zone"]
    # An alert with a poll: each number's answer ("2 · no"), the last it gave (one vote per number).
    options = json.loads(alert.poll_options) if alert.poll_question and alert.poll_options else None
    if options is not None:
        header.append("poll_answer")

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        with panel().sessions() as s:
            people = _people_by_number(s, alert_id)
            votes = votes_by_number(s, alert_id) if options is not None else {}
            result = s.execute(select(Delivery.id, Delivery.number_id, Delivery.e164, Delivery.channel,
                                      Delivery.state, Delivery.attempts, Delivery.line, Delivery.last_error,
                                      Delivery.sent_at, Delivery.delivered_at, Delivery.vulnerable, Delivery.zone)
                               .where(Delivery.alert_id == alert_id).order_by(Delivery.id)
                               .execution_options(yield_per=2000))
            for count, row in enumerate(result, 1):
                # The zone the alert was sent for, as on the alert page (not where the contact is now).
                name, _zone_now, _address = people.get(row.number_id, ("", None, None))
                cells = [row.id, row.e164, row.channel, row.state, row.attempts, row.line, row.last_error,
                         row.sent_at, row.delivered_at, "yes" if row.vulnerable else "no", name, row.zone]
                if options is not None:
                    cells.append(_poll_answer(votes.get(row.e164), options))
                writer.writerow([csv_cell(v) for v in cells])
                if count % 2000 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    # Written before the first row leaves: an export whose download is interrupted, or never read to
    # the end, still took residents' data out of the box.
    panel().audit.write(current_user.username, "alert.export", alert_id)
    # content_type, not mimetype: Werkzeug adds "; charset=utf-8" to a text/* mimetype a second time.
    return Response(stream_with_context(generate()), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="allerta-{alert_id}.csv"'})


@bp.route("/<int:alert_id>/vulnerable")
@require_role("operator")
def vulnerable(alert_id: int):
    """Printable: vulnerable people of this alert not reached yet, for volunteers at the door."""
    alert = _get_alert(alert_id)
    with panel().sessions() as s:
        rows = door_knock_list(s, alert_id, REACHED)
    panel().audit.write(current_user.username, "alert.vulnerable_list", alert_id, people=len(rows))
    return render_template("alerts/vulnerable.html", alert=alert, rows=rows)


@bp.route("/<int:alert_id>/report.pdf")
@require_role("viewer")
def report(alert_id: int):
    """The after-action report (web/report_pdf.py) in the user's language: the same PDF as
    ``allerta alert report``. The door-knock list's names and addresses follow the rule of its
    printable page (operators and above); a viewer's copy counts those people by zone."""
    _get_alert(alert_id)
    language = str(get_locale() or DEFAULT_LANGUAGE)
    made = report_pdf(panel().services, panel().audit, alert_id, actor=current_user.username,
                      language=language if language in LANGUAGES else DEFAULT_LANGUAGE,
                      with_names=current_user.can("operator"))
    return Response(made.pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="allerta-{alert_id}-report.pdf"'})


# --- decisions -----------------------------------------------------------------------------
def _decide(action):  # noqa: ANN001, ANN202
    try:
        return action()
    except alert_flow.FlowError as exc:
        flash(error_message(exc), "error")
        return None


@bp.route("/<int:alert_id>/submit", methods=["POST"])
@require_role("operator")
def submit(alert_id: int):
    state = _decide(lambda: alert_flow.submit_draft(panel(), alert_id, actor=current_user.username,
                                                     role=current_user.role,
                                                     election_reason=request.form.get("election_reason", "")))
    if state:
        flash(_("Alert %(id)s is waiting for an approver.", id=alert_id) if state == AlertState.AWAITING_APPROVAL
              else _("Alert %(id)s is being sent.", id=alert_id), "success")
        if state == AlertState.ACTIVE:
            alert = _get_alert(alert_id)
            _flash_held(alert.category, alert.send_at)
    return redirect(url_for("alerts.show", alert_id=alert_id))


@bp.route("/<int:alert_id>/approve", methods=["POST"])
@require_role("approver")
def approve(alert_id: int):
    if _decide(lambda: alert_flow.approve(panel(), alert_id, actor=current_user.username, role=current_user.role,
                                          election_reason=request.form.get("election_reason", ""))) is not None:
        flash(_("Alert %(id)s approved: it is being sent.", id=alert_id), "success")
        alert = _get_alert(alert_id)
        _flash_held(alert.category, alert.send_at)
    return redirect(url_for("alerts.show", alert_id=alert_id))


@bp.route("/<int:alert_id>/reject", methods=["POST"])
@require_role("approver")
def reject(alert_id: int):
    done = _decide(lambda: alert_flow.reject(panel(), alert_id, actor=current_user.username,
                                             role=current_user.role, reason=request.form.get("reason", "")) or True)
    if done:
        flash(_("Alert %(id)s rejected.", id=alert_id), "success")
    return redirect(url_for("alerts.show", alert_id=alert_id))


@bp.route("/<int:alert_id>/share", methods=["POST"])
@require_role("operator")
def share(alert_id: int):
    """The author lets other operators submit or cancel their draft, or stops letting them."""
    shared = request.form.get("shared") == "1"
    if _decide(lambda: alert_flow.share_draft(panel(), alert_id, actor=current_user.username,
                                              shared=shared) or True):
        flash(_("Draft %(id)s shared: other operators may submit it.", id=alert_id) if shared
              else _("Draft %(id)s is yours alone again.", id=alert_id), "success")
    return redirect(url_for("alerts.show", alert_id=alert_id))


@bp.route("/<int:alert_id>/cancel", methods=["POST"])
@require_role("operator")
def cancel(alert_id: int):
    stopped = _decide(lambda: alert_flow.cancel(panel(), alert_id, actor=current_user.username,
                                                role=current_user.role, reason=request.form.get("reason", "")))
    if stopped is not None:
        flash(ngettext("Alert %(id)s cancelled: %(num)s message stopped before going out.",
                       "Alert %(id)s cancelled: %(num)s messages stopped before going out.", stopped,
                       id=alert_id), "success")
    return redirect(url_for("alerts.show", alert_id=alert_id))
