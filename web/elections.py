"""Administration: the election periods (law 28/2000, art. 9), and the banner shown while one is in force.

The rules and the audit entries are gateway/core/elections.py's, the same as `allerta elections`.
"""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.db import utcnow
from gateway.core.elections import (ElectionError, PeriodView, add_period, list_periods, parse_moment, period_at,
                                    revoke_period, scheduled_information)
from web.context import panel
from web.errors import error_message
from web.params import bounded_int
from web.security import require_role

bp = Blueprint("elections", __name__, url_prefix="/admin/elections")


def election_in_force(sessions: sessionmaker[Session]) -> PeriodView | None:
    """The period in force now, for the banner every page shows during it."""
    with sessions() as s:
        return period_at(s, utcnow())


@bp.route("/", methods=["GET", "POST"])
@require_role("admin")
def index():
    p = panel()
    if request.method == "POST":
        form = request.form
        try:
            if form.get("action") == "revoke":
                period = revoke_period(p.audit, bounded_int(form, "id") or 0, actor=current_user.username)
                flash(_("Election period %(id)s revoked.", id=period.id), "success")
            else:
                period = add_period(p.audit, parse_moment(form.get("starts", ""), option=_("From")),
                                    parse_moment(form.get("ends", ""), option=_("To"), end_of_day=True),
                                    form.get("description", ""), actor=current_user.username)
                flash(_("Election period %(id)s recorded: %(span)s.", id=period.id, span=period.local_span()),
                      "success")
                with p.sessions() as s:
                    scheduled = scheduled_information(s, period)
                if scheduled:
                    flash(_("Information alerts scheduled inside it, decided before the period existed: %(ids)s. "
                            "Review them.", ids=", ".join(map(str, scheduled))), "warning")
        except ElectionError as exc:
            flash(error_message(exc), "error")
            return render_template("admin/elections.html", periods=list_periods(p.sessions), now=utcnow(),
                                   form=form), 400
        return redirect(url_for("elections.index"))
    return render_template("admin/elections.html", periods=list_periods(p.sessions), now=utcnow(), form={})
