"""The Inbox: what citizens wrote, what was made of it, an operator's reply, help requests handled."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import format_datetime, gettext as _
from flask_login import current_user

from gateway.core import inbox
from gateway.core.replies import ReplyError
from web.context import panel
from web.errors import error_message, reply_reason
from web.labels import label
from web.params import bounded_int, page_number
from web.security import require_role

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
PAGE_SIZE = 50
# The filters offered first (the four), then the other kinds.
FILTERS = ("help_request", "command", "poll_answer", "unrecognised", "confirmation", "ignored")


def local_time(value: str | None) -> str:
    """A stored time (ISO, UTC, as gateway.core.inbox gives it) in the municipality's time, to the second:
    which came first matters when messages pour in."""
    if not value:
        return ""
    return format_datetime(dt.datetime.fromisoformat(value.removesuffix("Z")), "medium")


def help_rows(rows: list[dict]) -> list[dict]:
    """Help requests with the links the page's script needs to rebuild their rows."""
    for row in rows:
        row["handled_url"] = url_for("inbox.handled", help_id=row["id"])
        row["alert_url"] = url_for("alerts.show", alert_id=row["alert_id"]) if row["alert_id"] else None
        row["inbound_url"] = url_for("inbox.show", inbound_id=row["inbound_id"]) if row["inbound_id"] else None
        row["needs_label"] = label(row["needs"], "needs")
        row["received_label"] = local_time(row["received_at"])
        row["handled_label"] = local_time(row["handled_at"])
    return rows


def _query() -> inbox.InboxQuery:
    kind = request.args.get("kind", "") or None
    if kind is not None and kind not in inbox.KINDS:
        abort(400, description=_("Unknown kind of message: %(kind)s.", kind=kind))
    return inbox.InboxQuery(kind=kind, sender=request.args.get("sender", "").strip() or None,
                            alert_id=bounded_int(request.args, "alert"))


@bp.route("/")
@require_role("viewer")
def index():
    page = page_number(request.args)
    query = _query()
    with panel().sessions() as s:
        messages, total = inbox.list_messages(s, query, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        open_help = help_rows(inbox.help_requests(s))
    return render_template("inbox/index.html", messages=messages, total=total, page=page,
                           pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE), filters=FILTERS,
                           kind=query.kind or "", sender=query.sender or "", alert_id=query.alert_id,
                           help_requests=open_help)


def _show(inbound_id: int, text: str = "", status: int = 200):  # noqa: ANN202
    with panel().sessions() as s:
        try:
            message = inbox.get_message(s, inbound_id)
        except inbox.NotFound:
            abort(404)
        name = inbox.names_by_number(s, {message.sender}).get(message.sender, "")
        talk = inbox.conversation(s, message.sender)
        helps = help_rows(inbox.help_requests(s, open_only=False, inbound_id=inbound_id))
    return render_template("inbox/show.html", message=message, name=name, conversation=talk,
                           help_requests=helps, text=text), status


@bp.route("/<int:inbound_id>")
@require_role("viewer")
def show(inbound_id: int):
    return _show(inbound_id)


@bp.route("/<int:inbound_id>/reply", methods=["POST"])
@require_role("operator")
def reply(inbound_id: int):
    text = request.form.get("text", "")
    try:
        queued = inbox.reply(panel().audit, inbound_id, text, actor=current_user.username,
                             region=panel().config.general.region)
    except inbox.NotFound:
        abort(404)
    except inbox.InboxError as exc:
        flash(error_message(exc), "error")
        return _show(inbound_id, text, 400)
    except ReplyError as exc:
        flash(_("The reply was not sent: %(reason)s", reason=reply_reason(str(exc))), "error")
        return _show(inbound_id, text, 400)
    flash(_("Reply queued to %(number)s: it goes out when no alert is waiting.", number=queued.e164), "success")
    return redirect(url_for("inbox.show", inbound_id=inbound_id))


def _back() -> str:
    """Where the mark-handled form came from (the dashboard, an alert, the Inbox): a path of this panel."""
    target = request.form.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("inbox.index")


@bp.route("/help/<int:help_id>/handled", methods=["POST"])
@require_role("operator")
def handled(help_id: int):
    try:
        inbox.mark_handled(panel().audit, help_id, actor=current_user.username, note=request.form.get("note", ""))
    except inbox.NotFound:
        abort(404)
    except inbox.InboxError as exc:
        flash(error_message(exc), "error")
        return redirect(_back())
    flash(_("Help request %(id)s marked handled.", id=help_id), "success")
    return redirect(_back())
