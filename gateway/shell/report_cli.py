"""``allerta alert report ID --out report.pdf``: the after-action report the panel's button gives.

The same code makes both (web/report_pdf.py), in a bare Flask app for the templates and the
translations: the command line reads the box's database directly and needs no running panel.
"""
from __future__ import annotations

import argparse
import os
import sys

from gateway.core.audit import audit_log_for, local_actor
from gateway.core.config import load_config
from gateway.core.files import open_private
from gateway.core.services import build_services
from web.i18n import DEFAULT_LANGUAGE, LANGUAGES
from web.report_pdf import ReportError, rendering_app, report_pdf


def add_report_command(alert: argparse._SubParsersAction) -> None:
    """``alert report`` on the ``alert`` sub-commands of gateway/shell/cli.py."""
    p = alert.add_parser("report", help="the after-action report of an alert as a PDF (timeline, reach, "
                                        "people not reached, help requests, lines, audit head)")
    p.add_argument("id", type=int)
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the PDF (made readable by you only)")
    p.add_argument("--language", choices=tuple(LANGUAGES), default=DEFAULT_LANGUAGE,
                   help=f"language of the report (default {DEFAULT_LANGUAGE})")
    p.set_defaults(func=cmd_alert_report)


def cmd_alert_report(args: argparse.Namespace) -> int:
    services = build_services(load_config(args.config))
    audit = audit_log_for(services.config, services.sessions)
    # Whoever runs this on the box may read everything (as with the CSV export's data on disk):
    # the door-knock list comes with names and addresses.
    with rendering_app().app_context():
        try:
            report = report_pdf(services, audit, args.id, actor=local_actor(), language=args.language)
        except ReportError as exc:
            print(f"allerta: {exc}", file=sys.stderr)
            return 2
    try:
        # 0600: the report names vulnerable people and their addresses.
        with os.fdopen(open_private(args.out, 0o600), "wb") as out:
            out.write(report.pdf)
    except OSError as exc:
        print(f"allerta: --out {args.out}: cannot write the report ({exc.strerror})", file=sys.stderr)
        return 2
    print(f"alert {args.id}: after-action report written to {args.out} ({len(report.pdf) // 1024 + 1} KB); "
          f"audit head {report.head.line()} (printed in it)")
    return 0
