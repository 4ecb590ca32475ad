"""The dashboard: open alarms about the box, line health, active alerts with live progress, capacity."""
from __future__ import annotations

from flask import Blueprint, render_template, url_for
from flask_babel import gettext as _, ngettext
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
    """The capacity statement, each count with its noun in the right form ("1 linea attiva su 2", "2 linee
    attive su 3"): each count that has a noun is its own ``ngettext`` piece, so no sentence carries two
    counts whose nouns would need different forms. A noun agrees with the lines up, not the total,
    in Italian and English alike ("1 modem up of 3")."""
    engine = ""
    if cap["sms_lines"] + cap["voice_lines"] and not cap["engine_reporting"]:
        engine = ngettext("The engine has not reported for more than %(num)s minute: no line counts as up. "
                          "Is allerta-engine running?",
                          "The engine has not reported for more than %(num)s minutes: no line counts as up. "
                          "Is allerta-engine running?", round(stale_seconds / 60))
    modems = ngettext("%(num)s modem up of %(total)s", "%(num)s modems up of %(total)s", cap["sms_lines_up"],
                      total=cap["sms_lines"])
    trunks = ngettext("%(num)s trunk up of %(total)s", "%(num)s trunks up of %(total)s", cap["voice_lines_up"],
                      total=cap["voice_lines"])
    return {
        "engine": engine,
        "sms": ngettext("In the next minute, with %(lines)s, the box can reach about %(people)s by SMS "
                        "(one-segment message).",
                        "In the next %(num)s minutes, with %(lines)s, the box can reach about %(people)s by SMS "
                        "(one-segment message).", cap["minutes"], lines=modems,
                        people=ngettext("%(num)s person", "%(num)s people", cap["sms_people"])),
        "voice": _("By voice, with %(lines)s, about %(calls)s.", lines=trunks,
                   calls=ngettext("%(num)s call", "%(num)s calls", cap["voice_people"])),
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
