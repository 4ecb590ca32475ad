"""CAP 1.2 over HTTP: warnings in (POST /api/v1/cap, operator token) and our alerts out
(/cap/alerts/<id>.xml, /cap/feed.atom).

Publishing is off unless ``[cap] publish``; then the documents are readable without signing in
only from the ``[cap] publish_allow`` networks (the radio station, the neighbouring town, the
provincial operations room), and by anyone signed in to the panel.
"""
from __future__ import annotations

import ipaddress

from flask import Blueprint, Response, abort, jsonify, request, url_for
from flask_login import current_user

from gateway.core.cap_out import atom_feed, cap_document
from gateway.core.cap_service import CapRefused, CapSettings, build_receiver, publication, published_ids
from web.api import _error, api_role
from web.context import panel
from web.security import public

api_bp = Blueprint("cap_api", __name__, url_prefix="/api/v1")
bp = Blueprint("cap", __name__, url_prefix="/cap")
CAP_TYPE = "application/cap+xml"


@api_bp.route("/cap", methods=["POST"])
@api_role("operator")
def receive():
    p = panel()
    receiver = build_receiver(p.services, p.audit)
    limit = receiver.settings.max_bytes
    if request.content_length is not None and request.content_length > limit:
        return _error(413, f"<alert>: the document is {request.content_length} bytes; the limit is {limit} "
                           "([cap] max_document_kb)", "alert")
    data = request.stream.read(limit + 1)
    try:
        received = receiver.receive(data, request.api_actor)
    except CapRefused as exc:
        response = jsonify({"error": str(exc), "element": exc.error.element, "rule": exc.error.rule})
        response.status_code = 400 if exc.error.malformed else 422
        return response
    body = {"outcome": received.outcome, "alert_id": received.alert_id, "detail": received.detail,
            "cap_message_id": received.message_id}
    if received.alert_id is not None:
        body["url"] = url_for("alerts.show", alert_id=received.alert_id)
    return body, 201 if received.outcome in ("draft", "update", "cancel") else 200


def _readable() -> CapSettings:
    """404 when publishing is off; 403 from an address not allowed, unless signed in."""
    config = panel().config
    if not config.cap.publish:
        abort(404)
    if not current_user.is_authenticated:
        try:
            address = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            abort(403)
        if not any(address in ipaddress.ip_network(net, strict=False) for net in config.cap.publish_allow):
            abort(403)
    return CapSettings.from_config(config)


@bp.route("/alerts/<int:alert_id>.xml")
@public
def document(alert_id: int):
    settings = _readable()
    with panel().sessions() as s:
        published = publication(s, alert_id, settings)
    if published is None:
        abort(404)
    return Response(cap_document(published), mimetype=CAP_TYPE)


@bp.route("/feed.atom")
@public
def feed():
    settings = _readable()
    with panel().sessions() as s:
        publications = [p for p in (publication(s, alert_id, settings) for alert_id in published_ids(s)) if p]
    body = atom_feed(publications, title=f"Allerta {settings.sender_name}", feed_url=url_for("cap.feed", _external=True),
                     document_url=lambda p: url_for("cap.document", alert_id=p.alert_id, _external=True))
    return Response(body, mimetype="application/atom+xml")
