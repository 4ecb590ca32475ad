"""The JSON API for other systems (/api/v1), authenticated by bearer tokens created by admins."""
from __future__ import annotations

import datetime as dt
from functools import wraps

from flask import Blueprint, jsonify, request, url_for

from gateway.core import inbox
from gateway.core.audio import AudioError
from gateway.core.alerts import AlertError, AlertRequest, Target
from gateway.core.db import utcnow
from gateway.core.models import Alert
from gateway.core.polls import Poll, poll_results
from gateway.core.states import AlertState, Channel
from gateway.core.voice_messages import VoiceRenderer, discard
from web import alert_flow
from web.api_schema import OPENAPI, body_error
from web.context import panel
from web.params import MAX_ID, MAX_PAGE
from web.progress import alert_progress, line_rows, stale_after
from web.security import public, token_auth
from web.throttle import API, API_POLICY, blocked_for, count_failure, retry_after
from web.tokens import Refusal, authenticate_token
from web.users import has_role

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_INBOX_PAGE = 500


def _error(status: int, message: str, field: str | None = None):  # noqa: ANN202
    response = jsonify({"error": message} | ({} if field is None else {"field": field}))
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="allerta"'
    return response


def _too_many(wait) -> object:  # noqa: ANN001
    response = _error(429, "too many refused tokens from this address; try again later")
    response.headers["Retry-After"] = str(retry_after(wait))
    return response


def _count_bad_token(address: str, now):  # noqa: ANN001, ANN202
    """Per address, as sign-ins (web/throttle.py): a day's first 20 refused tokens are free, then the
    address waits longer and longer; the audit log hears of the block, not of every refused call."""
    audit = panel().audit
    with audit.transaction() as s:
        counted = count_failure(s, API, address, API_POLICY, now)
        if counted.newly_blocked:
            audit.record(s, f"api@{address}"[:80], "api.throttled", address, failures=counted.failures)
        return counted.blocked


def api_role(role: str):  # noqa: ANN201
    """A token-authenticated view that needs at least ``role``."""
    def decorate(view):  # noqa: ANN001, ANN202
        @wraps(view)
        def wrapper(*args, **kwargs):  # noqa: ANN202
            audit, address, now = panel().audit, request.remote_addr or "-", utcnow()
            with audit.sessions() as s:
                wait = blocked_for(s, API, address, now)
            if wait is not None:
                return _too_many(wait)
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _error(401, "missing bearer token")
            row = authenticate_token(audit, token.strip())
            if isinstance(row, Refusal):
                wait = _count_bad_token(address, now)
                return _error(401, row.message) if wait is None else _too_many(wait)
            if not has_role(row.role, role):
                return _error(403, f"this token's role ({row.role}) cannot do this")
            request.api_actor = f"api:{row.name}"
            request.api_role = row.role
            return view(*args, **kwargs)
        return token_auth(wrapper)
    return decorate


def _alert_json(alert: Alert, progress: dict, poll: dict | None) -> dict:
    now = utcnow()
    held = (panel().services.alerts.quiet_hold(alert.category, max(now, alert.send_at or now))
            if alert.state == AlertState.ACTIVE and progress.get("queued") else None)
    return {"asks_confirmation": bool(alert.asks_confirmation), "poll": poll, "id": alert.id, "state": alert.state,
            "drill": alert.drill, "priority": alert.priority,
            "category": alert.category, "cap_category": alert.cap_category, "election_reason": alert.election_reason,
            "held_until": held.isoformat() + "Z" if held else None,
            "text": alert.sms_text, "encoding": alert.encoding, "segments": alert.segments,
            "channels": list(alert.delivery_channels), "recipients": alert.recipients,
            "created_by": alert.created_by, "created_at": alert.created_at.isoformat() + "Z",
            "completed_at": alert.completed_at.isoformat() + "Z" if alert.completed_at else None,
            "progress": progress, "url": url_for("alerts.show", alert_id=alert.id)}


class _BadField(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _poll(data: dict) -> Poll | None:
    """The body's poll; its closing time must say its offset (a bare time would be read in which zone?)."""
    poll = data.get("poll")
    if poll is None:
        return None
    closes_at = None
    if "closes_at" in poll:
        try:
            moment = dt.datetime.fromisoformat(poll["closes_at"])
        except ValueError:
            raise _BadField("/poll/closes_at", "not a date and time (ISO 8601, e.g. 2026-12-04T18:00:00Z)") from None
        if moment.tzinfo is None:
            raise _BadField("/poll/closes_at", "give the offset (Z or +01:00) with the closing time")
        closes_at = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return Poll(poll["question"], tuple(poll["options"]), closes_at)


@bp.route("/alerts", methods=["POST"])
@api_role("operator")
def create_alert():
    data = request.get_json(silent=True)
    if data is None:
        return _error(400, "send a JSON object (Content-Type: application/json)", "")
    # The published schema decides what is well-formed: types, ranges, unknown fields (web/api_schema.py).
    mismatch = body_error("create_alert", data)
    if mismatch is not None:
        return _error(400, mismatch.message, mismatch.field)
    p = panel()
    config = p.config
    voice = config.voice
    channels = data.get("channels", [Channel.SMS.value])
    target = data["target"]
    voice_language = data.get("voice_language", voice.language)
    try:
        poll = _poll(data)
    except _BadField as exc:
        return _error(400, str(exc), exc.field)
    alert_request = None
    try:
        alert_request = AlertRequest(
            text=data["text"], channels=tuple(channels), drill=data.get("drill", False),
            priority=data.get("priority", False),
            target=Target(everyone=target.get("all", False), zones=tuple(target.get("zones", ())),
                          groups=tuple(target.get("groups", ())), numbers=tuple(target.get("numbers", ()))),
            max_attempts=voice.max_attempts if Channel.VOICE in channels else config.retry.max_attempts,
            deadline=alert_flow.default_deadline(voice.deadline_minutes),
            voice_interval=voice.interval, voice_growth=voice.growth, voice_cap=voice.per_number_cap,
            stop_on_confirm=voice.stop_on_confirm, sms_fallback=data.get("sms_fallback", voice.sms_fallback),
            translations={language.strip().lower(): text for language, text in data.get("translations", {}).items()},
            category=data.get("category"), cap_category=data.get("cap_category"),
            election_reason=data.get("election_reason", ""),
            asks_confirmation=data.get("asks_confirmation", False), poll=poll)
        p.services.alerts.preview(alert_request)
        if Channel.VOICE in alert_request.channels:
            # As the panel and the CLI render it (gateway/core/voice_messages.py).
            VoiceRenderer.from_config(config).render_alert(
                alert_request, p.services.alerts, text_language=voice_language)
        # A draft made through the API is shared: the API cannot submit it, people review and submit it.
        outcome = alert_flow.create_alert(p, alert_request, actor=request.api_actor, role=request.api_role,
                                          mode=data.get("mode", "submit"), reason=data.get("reason", ""),
                                          shared=True)
    except (AlertError, AudioError, alert_flow.FlowError) as exc:
        if alert_request is not None:
            discard(alert_request)
        # A refused poll or confirmation says where (gateway.core.alerts.AnswerError).
        return _error(422, str(exc), getattr(exc, "field", None))
    with p.sessions() as s:
        alert = s.get(Alert, outcome.alert_id)
        progress = alert_progress(s, [alert.id])[alert.id]
        poll = poll_results(s, alert, now=utcnow())
    body = _alert_json(alert, progress, poll)
    body["recipients_by_channel"] = outcome.preview.recipients
    return body, 201


@bp.route("/alerts/<int:alert_id>")
@api_role("viewer")
def alert_status(alert_id: int):
    with panel().sessions() as s:
        alert = s.get(Alert, alert_id)
        if alert is None:
            return _error(404, f"no alert with id {alert_id}")
        progress = alert_progress(s, [alert_id])[alert_id]
        poll = poll_results(s, alert, now=utcnow())
    body = _alert_json(alert, progress, poll)
    if alert.state not in (AlertState.DRAFT, AlertState.AWAITING_APPROVAL, AlertState.REJECTED):
        body["eta_seconds"] = panel().services.alerts.status(alert_id)["eta_seconds"]
    return body


@bp.route("/lines")
@api_role("viewer")
def lines():
    with panel().sessions() as s:
        return {"lines": line_rows(s, stale_after(panel().config))}


def _query_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, "")
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12 and low <= int(raw) <= high):
        raise _BadField(name, f"{name} must be a whole number from {low} to {high}")
    return int(raw)


@bp.route("/inbox")
@api_role("viewer")
def inbox_messages():
    """Incoming SMS, newest first, with what was made of each (the panel's Inbox)."""
    try:
        limit = _query_int("limit", 50, 1, MAX_INBOX_PAGE)
        page = _query_int("page", 1, 1, MAX_PAGE)
        alert_id = _query_int("alert", 0, 0, MAX_ID) or None
        query = inbox.InboxQuery(kind=request.args.get("kind") or None, sender=request.args.get("sender") or None,
                                 alert_id=alert_id)
        with panel().sessions() as s:
            messages, total = inbox.list_messages(s, query, limit=limit, offset=(page - 1) * limit)
    except _BadField as exc:
        return _error(400, str(exc), exc.field)
    except inbox.InboxError as exc:
        return _error(400, str(exc), "kind")
    return {"total": total, "page": page, "messages": messages}


@bp.route("/help-requests")
@api_role("viewer")
def help_requests():
    """Help requests still open (``?all=true``: handled ones too), with the contact's details."""
    with panel().sessions() as s:
        rows = inbox.help_requests(s, open_only=request.args.get("all") not in ("1", "true"))
    return {"help_requests": rows}


@bp.route("/openapi.json")
@public
def openapi():
    return OPENAPI


