"""The after-action report of an alert as a PDF: the panel's button and ``allerta alert report`` both call this.

The facts come from gateway/core/after_action.py; here they are worded (the panel's catalogues,
Italian or English) in templates/reports/after_action.html and laid out by WeasyPrint with our
own print stylesheet (static/report.css). Rendering needs a Flask app context for the
templates and flask-babel: the panel has one; the command line builds ``rendering_app``, a bare
app with the templates and translations only (no blueprints, no secret key, nothing written).

Offline by construction: fonts come from the system (fontconfig: fonts-liberation), the pictures
are the alert page's own, inline SVG (web/alert_pictures.py), and WeasyPrint's URL fetcher is
replaced by one that refuses every URL but ``data:`` and our own static files (web/pdf_layout.py).
"""
from __future__ import annotations

import logging
from typing import NamedTuple

from flask import Flask, render_template
from flask_babel import force_locale, lazy_gettext, lazy_pgettext
from sqlalchemy.orm import Session

from gateway.core import after_action
from gateway.core.after_action import AfterAction, ReportError
from gateway.core.audit import AuditLog, Head
from gateway.core.config import Config
from gateway.core.db import utcnow
from gateway.core.line_health import stale_after
from gateway.core.models import Alert
from gateway.core.services import Services
from web.alert_pictures import alert_pictures
from web.i18n import DEFAULT_LANGUAGE, LANGUAGES, PanelBabel, compile_catalogues
from web.inbox import local_time
from web.labels import cause, label, labels

# WeasyPrint logs every step of every document at INFO on "weasyprint.progress": through our logging
# (stdout, the journal) that is a dozen lines per report, and it broke the JSON `bench web` prints.
# Its warnings (CSS it does not support, a refused URL) stay on "weasyprint" at WARNING.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

TEMPLATE = "reports/after_action.html"
_babel = PanelBabel()

__all__ = ["Report", "ReportError", "report_pdf", "rendering_app"]

# The timeline's events (gateway.core.after_action.Event.kind): the audit log's actions on an alert, the
# approval table's decisions, the alert's own times and its channels' first and last messages.
EVENT_NAMES = {
    "created": lazy_pgettext("timeline", "Created"),
    "alert.draft": lazy_gettext("Saved as a draft"),
    "alert.request": lazy_gettext("Submitted for approval"),
    "alert.approve": lazy_gettext("Approved and sent"),
    "alert.reject": lazy_pgettext("timeline", "Rejected"),
    "alert.send": lazy_pgettext("timeline", "Sent"),
    "alert.cancel": lazy_pgettext("timeline", "Cancelled"),
    "alert.share": lazy_gettext("Draft shared"),
    "alert.unshare": lazy_gettext("Draft no longer shared"),
    "alert.export": lazy_gettext("Recipients exported (CSV)"),
    "alert.vulnerable_list": lazy_gettext("Door-knock list printed"),
    "alert.report": lazy_gettext("After-action report made"),
    "approval.approved": lazy_gettext("Approved and sent"),
    "approval.rejected": lazy_pgettext("timeline", "Rejected"),
    "approval.bypassed": lazy_gettext("Sent without approval"),
    "scheduled": lazy_gettext("Time chosen to send"),
    "cancelled": lazy_pgettext("timeline", "Cancelled"),
    "completed": lazy_gettext("Completed: nothing left to send"),
    "first.sms": lazy_gettext("First SMS sent"),
    "last.sms": lazy_gettext("Last SMS sent"),
    "first_reached.sms": lazy_gettext("First SMS delivered"),
    "last_reached.sms": lazy_gettext("Last SMS delivered"),
    "first.voice": lazy_gettext("First call placed"),
    "last.voice": lazy_gettext("Last call placed"),
    "first_reached.voice": lazy_gettext("First call answered"),
    "last_reached.voice": lazy_gettext("Last call answered"),
    "follow_up.correction": lazy_gettext("Correction"),
    "follow_up.all_clear": lazy_gettext("All clear"),
}
DETAIL_NAMES = {
    "reason": lazy_gettext("reason"), "deliveries_stopped": lazy_gettext("messages stopped"),
    "recipients": lazy_gettext("recipients"), "people": lazy_gettext("people"),
    "bypassed_two_person_rule": lazy_gettext("without a second person's approval"),
    "language": lazy_gettext("language"), "alert": lazy_gettext("Alert"), "state": lazy_gettext("State"),
}


def rendering_app() -> Flask:
    """A bare Flask app to render the report outside the panel (the command line, the benchmark)."""
    app = Flask(__name__)
    app.config.update(BABEL_DEFAULT_LOCALE=DEFAULT_LANGUAGE, BABEL_DEFAULT_TIMEZONE="Europe/Rome")
    app.extensions["allerta_catalogues"] = compile_catalogues()
    _babel.init_app(app, locale_selector=lambda: DEFAULT_LANGUAGE)
    for name, function in (("label", label), ("labels", labels), ("cause", cause), ("local_time", local_time)):
        app.add_template_filter(function, name)
    return app


class Report(NamedTuple):
    pdf: bytes
    head: Head        # the audit log's head the report prints: the entry that records it


def report_pdf(services: Services, audit: AuditLog, alert_id: int, *, actor: str, language: str,
               with_names: bool = True) -> Report:
    """The report of ``alert_id`` in ``language`` (it | en), inside a Flask app context.

    The audit entry "alert.report" is written first, as for the CSV export: the report carries
    people's names out of the box. It is then the head of the chain the report prints, so
    ``allerta audit verify --head`` with the report's figures checks the log against it.
    ``with_names``: the door-knock list with names and addresses (the rule of its printable page:
    operators and above); without, its counts by zone only.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r}: the report is written in {', '.join(LANGUAGES)}")
    with audit.transaction() as s:
        if s.get(Alert, alert_id) is None:
            raise ReportError("no alert with id %(id)s", id=alert_id)
        audit.record(s, actor, "alert.report", alert_id, language=language, names=with_names)
    with services.sessions() as s:
        facts = after_action.gather(s, alert_id, now=utcnow(),
                                    stale_seconds=stale_after(services.config.engine.health_interval))
        with force_locale(language):
            html = render_report(s, facts, services.config, actor=actor, language=language,
                                 with_names=with_names)
    # WeasyPrint is imported here, not at the top: it costs 0.6 s and an ldconfig run, and every
    # `allerta` process (the engine, the simulators) imports this module through the command line.
    from web.pdf_layout import html_to_pdf  # noqa: PLC0415
    return Report(html_to_pdf(html), facts.audit_head)


def render_report(s: Session, facts: AfterAction, config: Config, *, actor: str, language: str,
                  with_names: bool) -> str:
    """The report's HTML in the current locale (``s``: for the pictures' own queries)."""
    pictures = alert_pictures(s, facts.alert, config)
    return render_template(TEMPLATE, r=facts, a=facts.alert, pictures=pictures, comune=config.general.comune,
                           actor=actor, language=language, with_names=with_names, head=facts.audit_head,
                           generated_at=facts.generated_at, event_names=EVENT_NAMES, detail_names=DETAIL_NAMES)

