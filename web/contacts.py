"""Contacts: search, create, edit, delete (erasing personal data), CSV import with a preview.

The rules of saving and erasing are in gateway/core/contacts.py (`allerta contacts erase` uses them too).
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
from pathlib import Path

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, lazy_gettext
from flask_login import current_user
from sqlalchemy import exists, func, or_, select

from gateway.core.contacts import ContactError, ContactFields, NotFound, delete_contact, save_contact
from gateway.core.contacts_csv import parse_contacts_csv
from gateway.core.contacts_import import import_contacts
from gateway.core.models import Contact, Group, PhoneNumberRow, Zone, contact_groups, contact_numbers
from gateway.core.models_panel import ErasedContacts
from gateway.core.phone import InvalidNumber, normalise_number
from web.context import panel
from web.params import page_number
from web.errors import error_message
from web.security import require_role

bp = Blueprint("contacts", __name__, url_prefix="/contacts")
PAGE_SIZE = 50
NEEDS = ("", "text_only", "voice_only")
_TOKEN = re.compile(r"^[0-9a-f]{32}$")


class FormError(Exception):
    pass


# The refusals of gateway/core/contacts.py's save_contact, listed for the catalogue's extraction (web/errors.py).
CONTACT_MESSAGES = (lazy_gettext("the %(field)s contains control characters (%(characters)s): remove them"),)


@bp.route("/")
@require_role("viewer")
def index():
    q = request.args.get("q", "").strip()
    zone = request.args.get("zone", "")
    group = request.args.get("group", "")
    page = page_number(request.args)
    c = Contact.__table__.c
    conditions = []
    if q:
        digits = re.sub(r"[^\d]", "", q)
        name_match = func.lower(c.name).contains(q.lower(), autoescape=True)
        if digits and len(digits) >= 3:
            number_match = exists().where(contact_numbers.c.contact_id == c.id,
                                          contact_numbers.c.number_id == PhoneNumberRow.id,
                                          PhoneNumberRow.e164.contains(digits, autoescape=True))
            conditions.append(or_(name_match, number_match))
        else:
            conditions.append(name_match)
    if zone:
        conditions.append(c.zone_id == select(Zone.id).where(Zone.name == zone).scalar_subquery())
    if group:
        conditions.append(exists().where(contact_groups.c.contact_id == c.id, contact_groups.c.group_id == (
            select(Group.id).where(Group.name == group).scalar_subquery())))
    if request.args.get("vulnerable") == "1":
        conditions.append(c.vulnerable.is_(True))
    if request.args.get("self_registered") == "1":
        # People who registered themselves (by phone on the hotline, by SMS): to review, or to undo
        # one (deleting the contact erases it).
        conditions.append(c.consent_at.is_not(None))
    with panel().sessions() as s:
        if q:
            # A text search scans the table whatever we do (LIKE '%...%'): scan it once for
            # the ordered ids of every match (few, as a rule) and page over those, instead
            # of once to count and again to fetch the page.
            matching = list(s.scalars(select(Contact.id).where(*conditions).order_by(Contact.name, Contact.id)))
            total = len(matching)
            page_ids = matching[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
            by_id = {x.id: x for x in s.scalars(select(Contact).where(Contact.id.in_(page_ids)))}
            contacts = [by_id[i] for i in page_ids]
        else:
            total = s.scalar(select(func.count()).select_from(Contact).where(*conditions))
            contacts = list(s.scalars(select(Contact).where(*conditions).order_by(Contact.name, Contact.id)
                                      .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)))
        ids = [x.id for x in contacts]
        numbers: dict[int, list[str]] = {}
        for contact_id, e164, kind in s.execute(
                select(contact_numbers.c.contact_id, PhoneNumberRow.e164, PhoneNumberRow.kind)
                .join(PhoneNumberRow, PhoneNumberRow.id == contact_numbers.c.number_id)
                .where(contact_numbers.c.contact_id.in_(ids))):
            numbers.setdefault(contact_id, []).append(f"{e164} ({kind})")
        groups: dict[int, list[str]] = {}
        for contact_id, group_name in s.execute(
                select(contact_groups.c.contact_id, Group.name).join(Group, Group.id == contact_groups.c.group_id)
                .where(contact_groups.c.contact_id.in_(ids)).order_by(Group.name)):
            groups.setdefault(contact_id, []).append(group_name)
        zones = dict(s.execute(select(Zone.id, Zone.name)).all())
        zone_names = sorted(zones.values())
        group_names = list(s.scalars(select(Group.name).order_by(Group.name)))
        erased = s.scalar(select(func.count()).select_from(ErasedContacts))
    return render_template("contacts/index.html", contacts=contacts, numbers=numbers, zones=zones,
                           zone_names=zone_names, groups=groups, group_names=group_names, group=group,
                           total=total, page=page, q=q, zone=zone, erased=erased,
                           pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE))


def _form_values() -> ContactFields:
    form = request.form
    name = form.get("name", "").strip()
    if not name:
        raise FormError(_("The name is required."))
    region = panel().config.general.region
    numbers = []
    for raw in re.split(r"[\n;,]+", form.get("numbers", "")):
        if raw.strip():
            try:
                numbers.append(normalise_number(raw.strip(), region))
            except InvalidNumber as exc:
                raise FormError(_("Number %(number)s: %(reason)s", number=raw.strip(), reason=str(exc))) from None
    if not numbers:
        raise FormError(_("Give at least one phone number."))
    language = form.get("language", "it").strip().lower() or "it"
    if not re.fullmatch(r"[a-z]{2}", language):
        raise FormError(_("The language is a two-letter code such as it, en, ro."))
    needs = form.get("needs", "")
    if needs not in NEEDS:
        raise FormError(_("Unknown need."))
    consent = form.get("consent_date", "").strip()
    try:
        consent_date = dt.date.fromisoformat(consent) if consent else None
    except ValueError:
        raise FormError(_("The consent date must be a date (YYYY-MM-DD).")) from None
    return ContactFields(
        name=name[:200], numbers=tuple(numbers), language=language, needs=needs or None,
        vulnerable=form.get("vulnerable") == "1", address=form.get("address", "").strip()[:300] or None,
        zone=form.get("zone", "").strip()[:120], consent_date=consent_date,
        consent_source=form.get("consent_source", "").strip()[:120] or None,
        groups=tuple(g.strip()[:120] for g in form.get("groups", "").split(",") if g.strip()))


def _form_page(contact: Contact | None, status: int = 200):
    with panel().sessions() as s:
        zone_names = list(s.scalars(select(Zone.name).order_by(Zone.name)))
        current = {}
        if contact is not None:
            c = s.get(Contact, contact.id)
            current = {"name": c.name, "numbers": "\n".join(n.e164 for n in c.numbers), "language": c.language,
                       "needs": c.needs or "", "vulnerable": c.vulnerable, "address": c.address or "",
                       "zone": c.zone.name if c.zone else "", "groups": ", ".join(g.name for g in c.groups),
                       "consent_date": c.consent_date.isoformat() if c.consent_date else "",
                       "consent_source": c.consent_source or ""}
    values = request.form if request.method == "POST" else current
    return render_template("contacts/form.html", contact=contact, values=values, zone_names=zone_names,
                           needs=NEEDS), status


@bp.route("/new", methods=["GET", "POST"])
@require_role("operator")
def new():
    if request.method == "POST":
        try:
            values = _form_values()
        except FormError as exc:
            flash(str(exc), "error")
            return _form_page(None, 400)
        try:
            contact_id = save_contact(panel().audit, None, values, actor=current_user.username)
        except ContactError as exc:
            flash(error_message(exc), "error")
            return _form_page(None, 400)
        flash(_("Contact saved."), "success")
        return redirect(url_for("contacts.edit", contact_id=contact_id))
    return _form_page(None)


@bp.route("/<int:contact_id>", methods=["GET", "POST"])
@require_role("viewer")
def edit(contact_id: int):
    with panel().sessions() as s:
        contact = s.get(Contact, contact_id)
    if contact is None:
        abort(404)
    if request.method == "POST":
        if not current_user.can("operator"):
            abort(403)
        try:
            values = _form_values()
        except FormError as exc:
            flash(str(exc), "error")
            return _form_page(contact, 400)
        try:
            save_contact(panel().audit, contact_id, values, actor=current_user.username)
        except NotFound:
            abort(404)  # deleted meanwhile
        except ContactError as exc:
            flash(error_message(exc), "error")
            return _form_page(contact, 400)
        flash(_("Contact saved."), "success")
        return redirect(url_for("contacts.edit", contact_id=contact_id))
    return _form_page(contact)


@bp.route("/<int:contact_id>/delete", methods=["POST"])
@require_role("operator")
def delete(contact_id: int):
    """Erase a person: name, address, numbers no one else shares; keep only anonymous counts."""
    try:
        delete_contact(panel().audit, contact_id, actor=current_user.username)
    except NotFound:
        abort(404)
    flash(_("Contact deleted: personal data erased."), "success")
    return redirect(url_for("contacts.index"))


# --- import -------------------------------------------------------------------------------
# A preview waits on disk for its confirmation. The file holds residents' names and numbers, so one
# nobody confirmed or cancelled (the tab closed, the operator went home) must not stay there forever:
# every new preview sweeps the ones older than this.
PREVIEW_MAX_AGE = dt.timedelta(hours=1)


def _uploads() -> Path:
    path = Path(panel().config.general.data_dir) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _preview_path(token: str) -> Path:
    if not _TOKEN.match(token):
        abort(400)
    return _uploads() / f"import-{token}.csv"


def _sweep_previews(uploads: Path) -> None:
    oldest = (dt.datetime.now() - PREVIEW_MAX_AGE).timestamp()
    for path in uploads.glob("import-*.csv"):
        try:
            if path.stat().st_mtime < oldest:
                path.unlink()
        except FileNotFoundError:
            pass  # confirmed or swept by another request meanwhile


@bp.route("/import", methods=["GET", "POST"])
@require_role("operator")
def import_file():
    # Anything but a POST shows the form: a HEAD (which CSRF protection does not check) stores no upload.
    if request.method != "POST":
        return render_template("contacts/import.html", parsed=None)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(_("Choose a CSV file."), "error")
        return render_template("contacts/import.html", parsed=None), 400
    data = upload.read()
    if not data:
        flash(_("The uploaded file is empty."), "error")
        return render_template("contacts/import.html", parsed=None), 400
    parsed = parse_contacts_csv(data, default_region=panel().config.general.region)
    token = None
    status = 200
    if parsed.fatal or not parsed.contacts:
        status = 400
    else:
        token = secrets.token_hex(16)
        uploads = _uploads()
        _sweep_previews(uploads)
        (uploads / f"import-{token}.csv").write_bytes(data)
    return render_template("contacts/import.html", parsed=parsed, token=token, filename=upload.filename), status


@bp.route("/import/confirm", methods=["POST"])
@require_role("operator")
def import_confirm():
    path = _preview_path(request.form.get("token", ""))
    if not path.exists():
        flash(_("The uploaded file is no longer available; upload it again."), "error")
        return redirect(url_for("contacts.import_file"))
    data = path.read_bytes()
    strict = request.form.get("strict") == "1"
    p = panel()
    try:
        # The contacts and the audit entry that records their import: one transaction.
        with p.audit.transaction() as s:
            report = import_contacts(p.sessions, data, region=p.config.general.region, strict=strict, session=s)
            p.audit.record(s, current_user.username, "contacts.import", request.form.get("filename", "")[:120],
                           imported=report.imported, created=report.contacts_created,
                           updated=report.contacts_updated, rejected=len(report.rejected), strict=strict)
    finally:
        path.unlink(missing_ok=True)  # used once, whatever happened: a failed import is uploaded again
    return render_template("contacts/import_done.html", report=report), 200 if report.imported else 400


@bp.route("/import/cancel", methods=["POST"])
@require_role("operator")
def import_cancel():
    """The operator saw the preview and does not want it: the file goes now, not at the next sweep."""
    _preview_path(request.form.get("token", "")).unlink(missing_ok=True)
    flash(_("Import cancelled: the uploaded file was deleted."), "success")
    return redirect(url_for("contacts.import_file"))
