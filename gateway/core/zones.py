"""Zones and groups: rename, merge, delete an empty one; for the panel and the CLI alike.

Zones and groups come into being as free text on a contact or in an import
("Isola sacra", "Isola Sacra ", "I. Sacra"), so the spellings pile up and an
alert to one spelling misses the people filed under another. These services
fold them back into one. Alerts already sent keep the names they were sent
with (their target is stored as text): renaming changes who a future alert
reaches, never the record of a past one.

Each service runs in one audited transaction and either does all of its work
or, raising ``ZoneError``, none of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from gateway.core.audit import AuditLog
from gateway.core.control_chars import control_characters
from gateway.core.models import Contact, Group, Zone, contact_groups
from gateway.core.models_panel import ErasedContacts
from gateway.core.translatable import TranslatableError

NAME_LENGTH = 120  # the column's length in gateway/core/models.py


class Kind(StrEnum):
    ZONE = "zone"
    GROUP = "group"

    @property
    def model(self) -> type[Zone] | type[Group]:
        return Zone if self is Kind.ZONE else Group


class ZoneError(TranslatableError):
    """A rename, merge or delete refused; nothing was changed."""


class NotFound(ZoneError):
    """No zone or group with that id or name."""


@dataclass(frozen=True)
class Renamed:
    id: int
    old: str
    new: str


@dataclass(frozen=True)
class Merged:
    source_id: int
    source_name: str
    target_id: int
    target_name: str
    contacts_moved: int


# Ids come from the panel's forms, names from the command line.
Ref = int | str


def rename(audit: AuditLog, kind: Kind, item: Ref, new_name: str, *, actor: str) -> Renamed:
    with audit.transaction() as s:
        row = _find(s, kind, item)
        old, new = row.name, _valid_name(s, kind, new_name, row.id)
        row.name = new
        if kind is Kind.ZONE:
            # The anonymous counts of erased people name their zone as text.
            s.execute(update(ErasedContacts).where(ErasedContacts.zone == old).values(zone=new))
        renamed = Renamed(row.id, old, new)
        audit.record(s, actor, f"{kind}.rename", renamed.id, old=old, new=new)
    return renamed


def merge(audit: AuditLog, kind: Kind, source: Ref, into: Ref, *, actor: str) -> Merged:
    """Move everyone of ``source`` into ``into`` and remove ``source``."""
    with audit.transaction() as s:
        source_row, target_row = _find(s, kind, source), _find(s, kind, into)
        if source_row.id == target_row.id:
            raise ZoneError("%(name)s cannot be merged into itself", name=source_row.name)
        merged = Merged(source_row.id, source_row.name, target_row.id, target_row.name,
                        _move_members(s, kind, source_row.id, target_row.id))
        if kind is Kind.ZONE:
            s.execute(update(ErasedContacts).where(ErasedContacts.zone == merged.source_name)
                      .values(zone=merged.target_name))
        s.delete(source_row)
        audit.record(s, actor, f"{kind}.merge", merged.source_id, name=merged.source_name, into=merged.target_id,
                     into_name=merged.target_name, contacts=merged.contacts_moved)
    return merged


def delete_empty(audit: AuditLog, kind: Kind, item: Ref, *, actor: str) -> str:
    """Delete one nobody is in and return its name.

    Only an empty one: deleting a zone with people in it would silently drop them from zone alerts.
    """
    with audit.transaction() as s:
        row = _find(s, kind, item)
        name = row.name
        item_id, members = row.id, _member_count(s, kind, row.id)
        if members:
            raise ZoneError("%(name)s still has %(num)s contact: merge it into another instead.",
                            plural="%(name)s still has %(num)s contacts: merge it into another instead.",
                            name=name, num=members)
        s.delete(row)
        audit.record(s, actor, f"{kind}.delete", item_id, name=name)
    return name


def _member_count(s: Session, kind: Kind, item_id: int) -> int:
    if kind is Kind.ZONE:
        return s.scalar(select(func.count()).select_from(Contact).where(Contact.zone_id == item_id))
    return s.scalar(select(func.count()).select_from(contact_groups).where(contact_groups.c.group_id == item_id))


def _move_members(s: Session, kind: Kind, source_id: int, target_id: int) -> int:
    """Move the contacts of one into the other; how many there were."""
    if kind is Kind.ZONE:
        return s.execute(update(Contact).where(Contact.zone_id == source_id).values(zone_id=target_id)).rowcount
    members = select(contact_groups.c.contact_id).where(contact_groups.c.group_id == source_id)
    already = select(contact_groups.c.contact_id).where(contact_groups.c.group_id == target_id)
    moved = s.scalar(select(func.count()).select_from(members.subquery()))
    # People in both groups keep one membership, not two rows for the same pair.
    s.execute(insert(contact_groups).from_select(
        ["contact_id", "group_id"],
        select(contact_groups.c.contact_id, literal(target_id))
        .where(contact_groups.c.group_id == source_id, contact_groups.c.contact_id.not_in(already))))
    s.execute(delete(contact_groups).where(contact_groups.c.group_id == source_id))
    return moved


def _find(s: Session, kind: Kind, ref: Ref) -> Zone | Group:
    """By id, or by name: the exact spelling first, else the one name equal but for case."""
    model = kind.model
    if isinstance(ref, int):
        row = s.get(model, ref)
        if row is None:
            raise NotFound("no %(kind)s with id %(id)s", kind=str(kind), id=ref)
        return row
    name = " ".join(ref.split())
    row = s.scalar(select(model).where(model.name == name))
    if row is not None:
        return row
    rows = list(s.scalars(select(model).where(func.lower(model.name) == name.lower()).order_by(model.name)))
    if len(rows) == 1:
        return rows[0]
    if rows:
        raise ZoneError("%(name)s matches %(names)s: give the exact spelling", name=name,
                        names=", ".join(r.name for r in rows))
    raise NotFound("no %(kind)s called %(name)s", kind=str(kind), name=name)


def _valid_name(s: Session, kind: Kind, raw: str, item_id: int) -> str:
    controls = control_characters(raw)
    if controls:
        raise ZoneError("The name contains control characters (%(characters)s): remove them.", characters=controls)
    name = " ".join(raw.split())
    if not name:
        raise ZoneError("Give a name.")
    if len(name) > NAME_LENGTH:
        raise ZoneError("The name is too long: at most %(count)s characters.", count=NAME_LENGTH)
    model = kind.model
    # Contacts and alerts look names up without regard to case, so "fregene" would be the same zone.
    clash = s.scalar(select(model.name).where(func.lower(model.name) == name.lower(), model.id != item_id))
    if clash is not None:
        raise ZoneError("%(name)s already exists: merge into it instead.", name=clash)
    return name
