"""Saving and erasing people and numbers (the right to be forgotten), for the panel and the CLI alike.

A number nobody uses any more is forgotten: alerts still waiting for it are
cancelled, and past deliveries keep their counts but not the number. Each
service runs in one audited transaction and either does all of its work or,
raising ``ContactError``, none of it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from gateway.core.audit import AuditLog
from gateway.core.control_chars import control_characters
from gateway.core.db import utcnow
from gateway.core.models import Contact, Delivery, Group, PhoneNumberRow, Zone, contact_numbers
from gateway.core.models_panel import ErasedContacts
from gateway.core.phone import InvalidNumber, PhoneNumber, normalise_number
from gateway.core.states import DeliveryState
from gateway.core.translatable import TranslatableError

# What a pending delivery of an erased number becomes. The engine sends to Delivery.e164, so a pending
# delivery must never hold "erased": it is cancelled, and only then loses its number.
ERASED_REASON = "not sent: the contact was deleted or the number removed"
# Being sent right now: the engine holds the number in memory and, after a crash, puts the delivery
# back to pending with the e164 it reads from the row; erasing it there would send to "erased".
IN_FLIGHT = (DeliveryState.SUBMITTING,)


class ContactError(TranslatableError):
    """An erasure refused; nothing was changed."""


class NotFound(ContactError):
    """No such contact or number."""


@dataclass(frozen=True)
class ContactFields:
    """A contact as a form or a command gives it: numbers already normalised, names as typed."""
    name: str
    numbers: tuple[PhoneNumber, ...]
    language: str = "it"
    needs: str | None = None
    vulnerable: bool = False
    address: str | None = None
    zone: str = ""                        # empty: no zone
    groups: tuple[str, ...] = ()
    consent_date: dt.date | None = None
    consent_source: str | None = None


@dataclass(frozen=True)
class DeletedContact:
    zone: str | None
    numbers_erased: int


@dataclass(frozen=True)
class ErasedNumber:
    number_id: int
    e164: str
    contacts: tuple[tuple[int, str], ...]        # (id, name) of everyone who had it
    left_without_number: tuple[tuple[int, str], ...]
    deliveries_cancelled: int


def save_contact(audit: AuditLog, contact_id: int | None, fields: ContactFields, *, actor: str) -> int:
    """Create (``contact_id`` None) or update a contact; return its id.

    Zones and groups are found without regard to case, or created; numbers the
    contact no longer has are forgotten unless someone else has them.
    """
    _refuse_control_characters(fields)
    with audit.transaction() as s:
        if contact_id is None:
            contact = Contact(name=fields.name)
            s.add(contact)
        else:
            contact = s.get(Contact, contact_id)
            if contact is None:
                raise NotFound("no contact with id %(id)s", id=contact_id)
        _apply(s, contact, fields)
        s.flush()
        audit.record(s, actor, "contact.create" if contact_id is None else "contact.update", contact.id)
        return contact.id


def _refuse_control_characters(fields: ContactFields) -> None:
    """A NUL or another control character in a name, a zone, a group or an address: refused
    (gateway/core/control_chars.py says why), as the CSV import rejects such a row."""
    for field_name, value in (("name", fields.name), ("zone", fields.zone), ("address", fields.address or ""),
                              ("consent source", fields.consent_source or ""), *(("group", g) for g in fields.groups)):
        controls = control_characters(value)
        if controls:
            raise ContactError("the %(field)s contains control characters (%(characters)s): remove them",
                               field=field_name, characters=controls)


def _apply(s: Session, contact: Contact, fields: ContactFields) -> None:
    for key in ("name", "language", "needs", "vulnerable", "address", "consent_date", "consent_source"):
        setattr(contact, key, getattr(fields, key))
    if fields.zone:
        zone = s.scalar(select(Zone).where(func.lower(Zone.name) == fields.zone.lower()))
        contact.zone = zone or Zone(name=fields.zone)
    else:
        contact.zone = None
    groups = []
    for name in fields.groups:
        group = s.scalar(select(Group).where(func.lower(Group.name) == name.lower()))
        groups.append(group or Group(name=name))
    contact.groups = groups
    rows = []
    for number in fields.numbers:
        row = s.scalar(select(PhoneNumberRow).where(PhoneNumberRow.e164 == number.e164))
        rows.append(row or PhoneNumberRow(e164=number.e164, kind=number.kind))
    removed = [row for row in contact.numbers if row not in rows]
    contact.numbers = rows
    s.flush()
    _forget_unused_numbers(s, removed)


def delete_contact(audit: AuditLog, contact_id: int, *, actor: str) -> DeletedContact:
    """Erase a person: name, address, numbers no one else shares; keep only anonymous counts."""
    with audit.transaction() as s:
        contact = s.get(Contact, contact_id)
        if contact is None:
            raise NotFound("no contact with id %(id)s", id=contact_id)
        zone = contact.zone.name if contact.zone else None
        s.add(ErasedContacts(zone=zone, vulnerable=contact.vulnerable, numbers=len(contact.numbers)))
        numbers = list(contact.numbers)
        contact.numbers = []
        s.flush()
        # A household number stays: the others still need it.
        erased = _forget_unused_numbers(s, numbers)
        s.delete(contact)
        audit.record(s, actor, "contact.delete", contact_id, zone=zone, numbers_erased=len(erased))
    return DeletedContact(zone, len(erased))


def erase_number(audit: AuditLog, number: str, *, region: str, actor: str) -> ErasedNumber:
    """Take ``number`` from every contact who has it and forget it.

    The contacts stay, even one left with no number: whether the person goes too is the
    operator's decision (``delete_contact``), so they are named in the result.
    """
    try:
        e164 = normalise_number(number, region).e164
    except InvalidNumber as exc:
        raise ContactError("%(number)s: %(reason)s", number=number, reason=str(exc)) from None
    with audit.transaction() as s:
        row = s.scalar(select(PhoneNumberRow).where(PhoneNumberRow.e164 == e164))
        if row is None:
            raise NotFound("no contact has the number %(number)s", number=e164)
        holders = list(s.scalars(select(Contact).join(contact_numbers, contact_numbers.c.contact_id == Contact.id)
                                 .where(contact_numbers.c.number_id == row.id).order_by(Contact.id)))
        for contact in holders:
            contact.numbers.remove(row)
        s.flush()
        number_id = row.id
        cancelled = _forget(s, row)
        erased = ErasedNumber(number_id, e164, tuple((c.id, c.name) for c in holders),
                              tuple((c.id, c.name) for c in holders if not c.numbers), cancelled)
        # The audit log is append-only: it names the row and the contacts, never the number itself.
        audit.record(s, actor, "number.erase", number_id, contacts=[c.id for c in holders],
                     deliveries_cancelled=cancelled)
    return erased


def _forget_unused_numbers(s: Session, numbers: list[PhoneNumberRow]) -> list[PhoneNumberRow]:
    """Forget those of ``numbers`` no contact has any more (in the caller's transaction); return them."""
    unused = [number for number in numbers if not _used_by_anyone(s, number)]
    for number in unused:
        _forget(s, number)  # nobody's number any more: no alert may still reach it
    return unused


def _used_by_anyone(s: Session, number: PhoneNumberRow) -> bool:
    return bool(s.scalar(select(exists().where(contact_numbers.c.number_id == number.id))))


def _forget(s: Session, number: PhoneNumberRow) -> int:
    """Forget a number no contact uses any more; past deliveries keep their counts, not the number.

    Returns how many pending deliveries were cancelled.
    """
    cancelled = s.execute(update(Delivery)
                          .where(Delivery.number_id == number.id, Delivery.state == DeliveryState.PENDING)
                          .values(state=DeliveryState.CANCELLED, last_error=ERASED_REASON, updated_at=utcnow())
                          ).rowcount
    if s.scalar(select(exists().where(Delivery.number_id == number.id))):
        s.execute(update(Delivery).where(Delivery.number_id == number.id, Delivery.state.not_in(IN_FLIGHT))
                  .values(e164="erased"))
        number.e164, number.opted_out = f"erased:{number.id}", True
    else:
        s.delete(number)
    return cancelled
