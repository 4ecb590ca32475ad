"""The JSON API for other systems (/api/v1), authenticated by bearer tokens created by admins."""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, jsonify, request, url_for

from gateway.core.audio import VOICES, AudioError
from gateway.core.alerts import AlertError, AlertRequest, Target
from gateway.core.models import Alert
from gateway.core.states import AlertState, Channel
from gateway.core.voice_messages import VoiceRenderer, discard
from web import alert_flow
from web.context import panel
from web.progress import alert_progress, line_rows, stale_after
from web.security import public, token_auth
from web.tokens import authenticate_token
from web.users import has_role

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _error(status: int, message: str):  # noqa: ANN202
    response = jsonify({"error": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="allerta"'
    return response


def api_role(role: str):  # noqa: ANN201
    """A token-authenticated view that needs at least ``role``."""
    def decorate(view):  # noqa: ANN001, ANN202
        @wraps(view)
        def wrapper(*args, **kwargs):  # noqa: ANN202
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _error(401, "missing bearer token")
            row = authenticate_token(panel().audit, token.strip())
            if row is None:
                return _error(401, "invalid or revoked token")
            if not has_role(row.role, role):
                return _error(403, f"this token's role ({row.role}) cannot do this")
            request.api_actor = f"api:{row.name}"
            request.api_role = row.role
            return view(*args, **kwargs)
        return token_auth(wrapper)
    return decorate


def _alert_json(alert: Alert, progress: dict) -> dict:
    return {"id": alert.id, "state": alert.state, "drill": alert.drill, "priority": alert.priority,
            "text": alert.sms_text, "encoding": alert.encoding, "segments": alert.segments,
            "channels": list(alert.delivery_channels), "recipients": alert.recipients,
            "created_by": alert.created_by, "created_at": alert.created_at.isoformat() + "Z",
            "completed_at": alert.completed_at.isoformat() + "Z" if alert.completed_at else None,
            "progress": progress, "url": url_for("alerts.show", alert_id=alert.id)}


def _translations(value: object) -> dict[str, str]:
    """The "translations" object, {"en": "text"}: versions for the recipients of those languages."""
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise AlertError("translations must be an object of language codes and texts")
    return {language.strip().lower(): text for language, text in value.items()}


@bp.route("/alerts", methods=["POST"])
@api_role("operator")
def create_alert():
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _error(400, "send a JSON object")
    p = panel()
    config = p.config
    voice = config.voice
    channels = data.get("channels", [Channel.SMS])
    target = data.get("target") or {}
    if not isinstance(channels, list) or not isinstance(target, dict):
        return _error(400, "channels is a list and target an object")

    def names(key: str) -> tuple[str, ...]:
        value = target.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise AlertError(f"target.{key} must be a list of strings")
        return tuple(value)

    alert_request = None
    try:
        if not isinstance(data.get("text"), str):
            raise AlertError("text is required")
        alert_request = AlertRequest(
            text=data["text"], channels=tuple(str(c) for c in channels), drill=bool(data.get("drill")),
            priority=bool(data.get("priority")),
            target=Target(everyone=bool(target.get("all")), zones=names("zones"), groups=names("groups"),
                          numbers=names("numbers")),
            max_attempts=voice.max_attempts if Channel.VOICE in channels else config.retry.max_attempts,
            deadline=alert_flow.default_deadline(voice.deadline_minutes),
            voice_interval=voice.interval, voice_growth=voice.growth, voice_cap=voice.per_number_cap,
            stop_on_confirm=voice.stop_on_confirm, sms_fallback=bool(data.get("sms_fallback", voice.sms_fallback)),
            translations=_translations(data.get("translations", {})))
        p.services.alerts.preview(alert_request)
        if Channel.VOICE in alert_request.channels:
            # As the panel and the CLI render it (gateway/core/voice_messages.py).
            VoiceRenderer.from_config(config).render_alert(
                alert_request, p.services.alerts, text_language=str(data.get("voice_language", voice.language)))
        # A draft made through the API is shared: the API cannot submit it, people review and submit it.
        outcome = alert_flow.create_alert(p, alert_request, actor=request.api_actor, role=request.api_role,
                                          mode=str(data.get("mode", "submit")), reason=str(data.get("reason", "")),
                                          shared=True)
    except (AlertError, AudioError, alert_flow.FlowError) as exc:
        if alert_request is not None:
            discard(alert_request)
        return _error(422, str(exc))
    with p.sessions() as s:
        alert = s.get(Alert, outcome.alert_id)
        progress = alert_progress(s, [alert.id])[alert.id]
    body = _alert_json(alert, progress)
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
    body = _alert_json(alert, progress)
    if alert.state not in (AlertState.DRAFT, AlertState.AWAITING_APPROVAL, AlertState.REJECTED):
        body["eta_seconds"] = panel().services.alerts.status(alert_id)["eta_seconds"]
    return body


@bp.route("/lines")
@api_role("viewer")
def lines():
    with panel().sessions() as s:
        return {"lines": line_rows(s, stale_after(panel().config))}


@bp.route("/openapi.json")
@public
def openapi():
    return OPENAPI


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}}
_PROGRESS = {"type": "object", "properties": {k: {"type": "integer"} for k in
                                               ("total", "queued", "in_progress", "sent", "reached", "failed",
                                                "cancelled")} | {"percent": {"type": "number"},
                                                                 "channels": {"type": "object"}}}
_ALERT = {"type": "object", "properties": {
    "id": {"type": "integer"},
    "state": {"type": "string", "enum": [state.value for state in AlertState]},
    "drill": {"type": "boolean"}, "priority": {"type": "boolean"}, "text": {"type": "string"},
    "encoding": {"type": "string", "enum": ["GSM-7", "UCS-2"]}, "segments": {"type": "integer"},
    "channels": {"type": "array", "items": {"type": "string", "enum": [channel.value for channel in Channel]}},
    "recipients": {"type": "integer"}, "created_by": {"type": "string"},
    "created_at": {"type": "string", "format": "date-time"}, "progress": _PROGRESS,
    "completed_at": {"type": ["string", "null"], "format": "date-time"},
    "eta_seconds": {"type": ["number", "null"]}, "url": {"type": "string"}}}
_UNAUTHORIZED = {"description": "missing, invalid or revoked token",
                 "content": {"application/json": {"schema": _ERROR}}}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "Allerta API", "version": "1",
             "description": "Create alerts and follow them. Every call needs 'Authorization: Bearer <token>'; "
                            "admins create and revoke tokens in the panel (Administration, API tokens). A token "
                            "has a role: viewer reads, operator creates alerts (waiting for approval under the "
                            "two-person rule), approver may also send at once with a reason."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/alerts": {"post": {
            "summary": "Create an alert",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["text", "target"],
                "properties": {
                    "text": {"type": "string", "description": "The SMS text, also read by the synthesised voice"},
                    "channels": {"type": "array", "items": {"type": "string",
                                                            "enum": [channel.value for channel in Channel]},
                                 "default": [Channel.SMS.value]},
                    "target": {"type": "object", "properties": {
                        "all": {"type": "boolean"}, "zones": {"type": "array", "items": {"type": "string"}},
                        "groups": {"type": "array", "items": {"type": "string"}},
                        "numbers": {"type": "array", "items": {"type": "string"}}}},
                    "drill": {"type": "boolean", "default": False},
                    "priority": {"type": "boolean", "default": False},
                    "sms_fallback": {"type": "boolean", "description": "voice: unconfirmed mobiles get the SMS"},
                    "voice_language": {"type": "string", "enum": sorted(VOICES),
                                       "description": "the language the text is written in, read by its voice; "
                                                      "every recipient hears the introduction and closing in "
                                                      "their own language"},
                    "translations": {"type": "object", "additionalProperties": {"type": "string"},
                                     "description": "the message in other languages, {\"en\": \"...\"}: "
                                                    "recipients of that language get it, by SMS and spoken"},
                    "mode": {"type": "string", "enum": ["submit", "draft", "send_now"], "default": "submit",
                             "description": "a draft is shared: any operator may review and submit it in the panel"},
                    "reason": {"type": "string", "description": "required with send_now under the two-person rule"},
                }}}}},
            "responses": {"201": {"description": "created", "content": {"application/json": {"schema": _ALERT}}},
                          "401": _UNAUTHORIZED,
                          "403": {"description": "the token's role cannot create alerts"},
                          "422": {"description": "the alert cannot be created as asked",
                                  "content": {"application/json": {"schema": _ERROR}}}}}},
        "/api/v1/alerts/{id}": {"get": {
            "summary": "Progress of an alert",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "the alert", "content": {"application/json": {"schema": _ALERT}}},
                          "401": _UNAUTHORIZED, "404": {"description": "no such alert"}}}},
        "/api/v1/lines": {"get": {
            "summary": "Health of every modem and trunk, as last written by the engine",
            "responses": {"200": {"description": "lines", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"lines": {"type": "array", "items": {"type": "object"}}}}}}},
                "401": _UNAUTHORIZED}}},
    },
}
