"""Zones and groups: list them with how many people and numbers they hold, rename, merge, delete.

Zones and groups come into being as free text on a contact or in an import
("Isola sacra", "Isola Sacra ", "I. Sacra"), so the spellings pile up and an
alert to one spelling misses the people filed under another. Here an operator
folds them back into one. Alerts already sent keep the names they were sent
with (their target is stored as text): renaming changes who a future alert
reaches, never the record of a past one.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import delete, func, insert, literal, select, update

from gateway.core.models import Contact, Group, Zone, contact_groups, contact_numbers
from gateway.core.models_panel import ErasedContacts
from web.context import panel
from web.security import require_role

bp = Blueprint("zones", __name__, url_prefix="/zones")
NAME_LENGTH = 120  # the column's length in gateway/core/models.py


class InvalidName(Exception):
    pass


@dataclass
class Row:
    id: int
    name: str
    contacts: int
    numbers: int


def _model(kind: str):  # noqa: ANN202
    return Zone if kind == "zone" else Group


def _zone_rows(s) -> list[Row]:
    contacts = dict(s.execute(select(Contact.zone_id, func.count()).where(Contact.zone_id.is_not(None))
                              .group_by(Contact.zone_id)).all())
    # A household number shared by two people of the zone is one number, as an alert counts it.
    numbers = dict(s.execute(select(Contact.zone_id, func.count(func.distinct(contact_numbers.c.number_id)))
                             .join(contact_numbers, contact_numbers.c.contact_id == Contact.id)
                             .where(Contact.zone_id.is_not(None)).group_by(Contact.zone_id)).all())
    return [Row(zone_id, name, contacts.get(zone_id, 0), numbers.get(zone_id, 0))
            for zone_id, name in s.execute(select(Zone.id, Zone.name).order_by(Zone.name))]


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


def _get(s, kind: str, item_id: int):  # noqa: ANN202
    item = s.get(_model(kind), item_id)
    if item is None:
        abort(404)
    return item


def _new_name(s, kind: str, item_id: int) -> str:
    name = " ".join(request.form.get("name", "").split())
    if not name:
        raise InvalidName(_("Give a name."))
    if len(name) > NAME_LENGTH:
        raise InvalidName(_("The name is too long: at most %(count)s characters.", count=NAME_LENGTH))
    model = _model(kind)
    # Contacts and alerts look names up without regard to case, so "fregene" would be the same zone.
    clash = s.scalar(select(model.name).where(func.lower(model.name) == name.lower(), model.id != item_id))
    if clash is not None:
        raise InvalidName(_("%(name)s already exists: merge into it instead.", name=clash))
    return name


def _done(kind: str):  # noqa: ANN202
    return redirect(url_for("zones.index") + f"#{kind}s")


@bp.route("/<any(zone, group):kind>/<int:item_id>/rename", methods=["POST"])
@require_role("operator")
def rename(kind: str, item_id: int):
    p = panel()
    try:
        with p.audit.transaction() as s:
            item = _get(s, kind, item_id)
            old, new = item.name, _new_name(s, kind, item_id)
            item.name = new
            if kind == "zone":
                # The anonymous counts of erased people name their zone as text.
                s.execute(update(ErasedContacts).where(ErasedContacts.zone == old).values(zone=new))
            p.audit.record(s, current_user.username, f"{kind}.rename", item_id, old=old, new=new)
    except InvalidName as exc:
        flash(str(exc), "error")
        return _page_with_error()
    flash(_("%(old)s is now called %(new)s.", old=old, new=new), "success")
    return _done(kind)


@bp.route("/<any(zone, group):kind>/<int:item_id>/merge", methods=["POST"])
@require_role("operator")
def merge(kind: str, item_id: int):
    """Move everyone of ``item_id`` into ``into`` and remove ``item_id``."""
    into_id = request.form.get("into", type=int)
    if into_id is None or into_id == item_id:
        flash(_("Choose another one to merge into."), "error")
        return _page_with_error()
    p = panel()
    with p.audit.transaction() as s:
        source, target = _get(s, kind, item_id), _get(s, kind, into_id)
        source_name, target_name = source.name, target.name
        if kind == "zone":
            moved = s.execute(update(Contact).where(Contact.zone_id == item_id)
                              .values(zone_id=into_id)).rowcount
            s.execute(update(ErasedContacts).where(ErasedContacts.zone == source_name).values(zone=target_name))
        else:
            members = select(contact_groups.c.contact_id).where(contact_groups.c.group_id == item_id)
            already = select(contact_groups.c.contact_id).where(contact_groups.c.group_id == into_id)
            moved = s.scalar(select(func.count()).select_from(members.subquery()))
            # People in both groups keep one membership, not two rows for the same pair.
            s.execute(insert(contact_groups).from_select(
                ["contact_id", "group_id"],
                select(contact_groups.c.contact_id, literal(into_id))
                .where(contact_groups.c.group_id == item_id, contact_groups.c.contact_id.not_in(already))))
            s.execute(delete(contact_groups).where(contact_groups.c.group_id == item_id))
        s.delete(source)
        p.audit.record(s, current_user.username, f"{kind}.merge", item_id, name=source_name, into=into_id,
                       into_name=target_name, contacts=moved)
    flash(_("%(old)s merged into %(new)s: %(count)s contacts moved.", old=source_name, new=target_name,
            count=moved), "success")
    return _done(kind)


@bp.route("/<any(zone, group):kind>/<int:item_id>/delete", methods=["POST"])
@require_role("operator")
def remove(kind: str, item_id: int):
    """Only an empty one: deleting a zone with people in it would silently drop them from zone alerts."""
    p = panel()
    with p.audit.transaction() as s:
        item = _get(s, kind, item_id)
        name = item.name
        if kind == "zone":
            members = s.scalar(select(func.count()).select_from(Contact).where(Contact.zone_id == item_id))
        else:
            members = s.scalar(select(func.count()).select_from(contact_groups)
                               .where(contact_groups.c.group_id == item_id))
        if not members:
            s.delete(item)
            p.audit.record(s, current_user.username, f"{kind}.delete", item_id, name=name)
    if members:
        flash(_("%(name)s still has %(count)s contacts: merge it into another instead.", name=name,
                count=members), "error")
        return _page_with_error()
    flash(_("%(name)s deleted.", name=name), "success")
    return _done(kind)


def _page_with_error():  # noqa: ANN202
    """The list again with the flashed error, as a 400 so scripts and tests see the refusal."""
    response = index()
    return response, 400
