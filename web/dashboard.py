"""The dashboard: open alarms about the box, line health, active alerts with live progress, capacity."""
from __future__ import annotations

from flask import Blueprint, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from gateway.core.inbox import help_requests
from web.inbox import help_rows
from gateway.core.models_ops import Alarm

from web.context import panel
from web.labels import label
from web.progress import active_alerts, alert_progress, capacity, line_rows, stale_after
from web.security import passive, require_role

bp = Blueprint("dashboard", __name__)


def capacity_sentences(cap: dict, stale_seconds: float) -> dict[str, str]:
    engine = ""
    if cap["sms_lines"] + cap["voice_lines"] and not cap["engine_reporting"]:
        engine = _("The engine has not reported for more than %(minutes)s minutes: no line counts as up. "
                   "Is allerta-engine running?", minutes=round(stale_seconds / 60))
    return {
        "engine": engine,
        "sms": _("In the next %(minutes)s minutes, with %(up)s of %(total)s modems up, the box can reach "
                 "about %(people)s people by SMS (one-segment message).", minutes=cap["minutes"],
                 up=cap["sms_lines_up"], total=cap["sms_lines"], people=cap["sms_people"]),
        "voice": _("By voice, with %(up)s of %(total)s trunks up, about %(people)s calls.",
                   up=cap["voice_lines_up"], total=cap["voice_lines"], people=cap["voice_people"]),
    }


def summary(text: str, length: int = 80) -> str:
    """The start of an alert's text, for its dashboard row."""
    return text if len(text) <= length else text[:length - 1].rstrip() + "…"


def open_alarms(session) -> list[dict]:
    """Alarms about the box (modem lost, SIM near its cap, Asterisk down, self-test failed) not cleared yet."""
    return [{"id": a.id, "kind": a.kind, "subject": a.subject, "message": a.message,
             "raised_at": a.raised_at.isoformat() + "Z", "alert_id": a.alert_id}
            for a in session.scalars(select(Alarm).where(Alarm.cleared_at.is_(None)).order_by(Alarm.id.desc()))]


def _snapshot() -> dict:
    stale_seconds = stale_after(panel().config)
    with panel().sessions() as s:
        alarms = open_alarms(s)
        helps = help_rows(help_requests(s))
        lines = line_rows(s, stale_seconds)
        alerts = active_alerts(s)
        progress = alert_progress(s, [a.id for a in alerts])
    for line in lines:
        line["state_label"] = label(line["state"], "line_state")
        if line["stale"]:
            line["state_label"] += " (" + _("no recent report") + ")"
    cap = capacity(lines)
    return {
        "alarms": alarms,
        "help_requests": helps,
        "lines": lines,
        "capacity": cap,
        "capacity_text": capacity_sentences(cap, stale_seconds),
        # Everything a row needs: the page's script rebuilds the rows from this (new alerts appear).
        "alerts": [{"id": a.id, "url": url_for("alerts.show", alert_id=a.id), "state": a.state,
                    "state_label": label(a.state, "alert_state"), "drill": a.drill, "text": a.sms_text,
                    "category": a.category, "category_label": label(a.category, "category"),
                    "summary": summary(a.sms_text), "channels": a.channels,
                    "created_at": a.created_at.isoformat() + "Z", "created_by": a.created_by,
                    "progress": progress[a.id]} for a in alerts],
    }


@bp.route("/")
@require_role("viewer")
def index():
    return render_template("dashboard/index.html", **_snapshot())


@bp.route("/dashboard.json")
@require_role("viewer")
@passive
def snapshot():
    return _snapshot()
