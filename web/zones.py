"""Zones and groups: list them with how many people and numbers they hold, rename, merge, delete.

The rules (what a rename or a merge changes, what may be deleted) are in
gateway/core/zones.py, which the command line calls too; here the forms.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, lazy_gettext, lazy_ngettext, ngettext
from flask_login import current_user
from sqlalchemy import func, select

from gateway.core import zones as zone_services
from gateway.core.models import Contact, Group, Zone, contact_groups, contact_numbers
from gateway.core.zones import Kind, NotFound, ZoneError
from web.context import panel
from web.params import bounded_int
from web.errors import error_message
from web.security import require_role

bp = Blueprint("zones", __name__, url_prefix="/zones")
# The refusals of gateway/core/zones.py an operator can meet here, listed for the catalogue's extraction
# (web/errors.py says why); a missing zone or group is a 404 instead, and a merge into itself is
# refused by the form before the service is called.
ZONE_MESSAGES = (
    lazy_gettext("Give a name."),
    lazy_gettext("The name is too long: at most %(count)s characters."),
    lazy_gettext("%(name)s already exists: merge into it instead."),
    lazy_ngettext("%(name)s still has %(num)s contact: merge it into another instead.",
                  "%(name)s still has %(num)s contacts: merge it into another instead.", 1),
    lazy_gettext("The name contains control characters (%(characters)s): remove them."),
)


@dataclass
class Row:
    id: int
    name: str
    contacts: int
    numbers: int
    code: str | None = None          # zones: ISTAT or our own code (CAP <geocode>)
    has_geometry: bool = False       # zones: a polygon from `allerta zones import-geojson`


def _zone_rows(s) -> list[Row]:
    contacts = dict(s.execute(select(Contact.zone_id, func.count()).where(Contact.zone_id.is_not(None))
                              .group_by(Contact.zone_id)).all())
    # A household number shared by two people of the zone is one number, as an alert counts it.
    numbers = dict(s.execute(select(Contact.zone_id, func.count(func.distinct(contact_numbers.c.number_id)))
                             .join(contact_numbers, contact_numbers.c.contact_id == Contact.id)
                             .where(Contact.zone_id.is_not(None)).group_by(Contact.zone_id)).all())
    return [Row(zone_id, name, contacts.get(zone_id, 0), numbers.get(zone_id, 0), code, has_geometry)
            for zone_id, name, code, has_geometry in s.execute(
                select(Zone.id, Zone.name, Zone.code, Zone.geometry.is_not(None)).order_by(Zone.name))]


def _group_rows(s) -> list[Row]:
    group_id = contact_groups.c.group_id
    contacts = dict(s.execute(select(group_id, func.count()).group_by(group_id)).all())
    numbers = dict(s.execute(select(group_id, func.count(func.distinct(contact_numbers.c.number_id)))
                             .join(contact_numbers, contact_numbers.c.contact_id == contact_groups.c.contact_id)
                             .group_by(group_id)).all())
    return [Row(gid, name, contacts.get(gid, 0), numbers.get(gid, 0))
            for gid, name in s.execute(select(Group.id, Group.name).order_by(Group.name))]


@bp.route("/")
@require_role("viewer")
def index():
    with panel().sessions() as s:
        zones, groups = _zone_rows(s), _group_rows(s)
        no_zone = s.scalar(select(func.count()).select_from(Contact).where(Contact.zone_id.is_(None)))
    return render_template("zones/index.html", zones=zones, groups=groups, no_zone=no_zone)


def _refused(exc: ZoneError):  # noqa: ANN202
    """A refusal in the user's language; a zone or group that is not there any more is a 404."""
    if isinstance(exc, NotFound):
        abort(404)
    flash(error_message(exc), "error")
    return _page_with_error()


def _done(kind: str):  # noqa: ANN202
    return redirect(url_for("zones.index") + f"#{kind}s")


@bp.route("/<any(zone, group):kind>/<int:item_id>/rename", methods=["POST"])
@require_role("operator")
def rename(kind: str, item_id: int):
    try:
        renamed = zone_services.rename(panel().audit, Kind(kind), item_id, request.form.get("name", ""),
                                       actor=current_user.username)
    except ZoneError as exc:
        return _refused(exc)
    flash(_("%(old)s is now called %(new)s.", old=renamed.old, new=renamed.new), "success")
    return _done(kind)


@bp.route("/<any(zone, group):kind>/<int:item_id>/merge", methods=["POST"])
@require_role("operator")
def merge(kind: str, item_id: int):
    """Move everyone of ``item_id`` into ``into`` and remove ``item_id``."""
    into_id = bounded_int(request.form, "into")
    if into_id is None or into_id == item_id:
        flash(_("Choose another one to merge into."), "error")
        return _page_with_error()
    try:
        merged = zone_services.merge(panel().audit, Kind(kind), item_id, into_id, actor=current_user.username)
    except ZoneError as exc:
        return _refused(exc)
    flash(ngettext("%(old)s merged into %(new)s: %(num)s contact moved.",
                   "%(old)s merged into %(new)s: %(num)s contacts moved.", merged.contacts_moved,
                   old=merged.source_name, new=merged.target_name), "success")
    return _done(kind)


@bp.route("/<any(zone, group):kind>/<int:item_id>/delete", methods=["POST"])
@require_role("operator")
def remove(kind: str, item_id: int):
    """Only an empty one (gateway/core/zones.py says why)."""
    try:
        name = zone_services.delete_empty(panel().audit, Kind(kind), item_id, actor=current_user.username)
    except ZoneError as exc:
        return _refused(exc)
    flash(_("%(name)s deleted.", name=name), "success")
    return _done(kind)


def _page_with_error():  # noqa: ANN202
    """The list again with the flashed error, as a 400 so scripts and tests see the refusal."""
    response = index()
    return response, 400
