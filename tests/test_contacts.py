"""Saving and erasing people and numbers (gateway/core/contacts.py): what waits for an erased number is
cancelled, the past keeps its counts, a refused request changes nothing."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, update

from gateway.core.alerts import AlertRequest, Target
from gateway.core.audit import AuditLog, audit_log_for
from gateway.core.contacts import (ERASED_REASON, ContactError, ContactFields, NotFound, delete_contact, erase_number,
                                   save_contact)
from gateway.core.phone import normalise_number
from gateway.core.models import Contact, Delivery, PhoneNumberRow
from gateway.core.models_panel import AuditEntry, ErasedContacts

ION = "+393207654321"
HOUSEHOLD = "+390665211234"   # the Rossi household's landline: Mario's and Anna's


@pytest.fixture
def audit(contacts) -> AuditLog:
    return audit_log_for(contacts.config, contacts.sessions)


def _snapshot(services) -> tuple:
    """Everything an erasure could touch."""
    with services.sessions() as s:
        return (sorted(s.execute(select(PhoneNumberRow.id, PhoneNumberRow.e164, PhoneNumberRow.opted_out)).all()),
                sorted(s.execute(select(Delivery.id, Delivery.state, Delivery.e164)).all()),
                sorted(s.execute(select(Contact.id, Contact.name)).all()),
                s.scalar(select(func.count()).select_from(AuditEntry)),
                s.scalar(select(func.count()).select_from(ErasedContacts)))


def test_erasing_a_number_cancels_what_waits_and_keeps_the_past_without_the_number(contacts, audit):
    earlier, _ = contacts.alerts.create(AlertRequest(text="Prima", target=Target(zones=("Fregene",))))
    pending, _ = contacts.alerts.create(AlertRequest(text="Seconda", target=Target(zones=("Fregene",))))
    with contacts.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == earlier).values(state="delivered"))
        ion_number = s.scalar(select(PhoneNumberRow.id).where(PhoneNumberRow.e164 == ION))
        giulia = s.scalar(select(Delivery.id).where(Delivery.alert_id == pending, Delivery.number_id != ion_number))

    erased = erase_number(audit, "320 765 4321", region="IT", actor="cli:ops")

    assert (erased.e164, erased.number_id, erased.deliveries_cancelled) == (ION, ion_number, 1)
    assert [name for _, name in erased.contacts] == ["Ion Popescu"]
    assert erased.left_without_number == erased.contacts
    with contacts.sessions() as s:
        waiting = s.scalar(select(Delivery).where(Delivery.alert_id == pending, Delivery.number_id == ion_number))
        assert (waiting.state, waiting.e164, waiting.last_error) == ("cancelled", "erased", ERASED_REASON)
        sent = s.scalar(select(Delivery).where(Delivery.alert_id == earlier, Delivery.number_id == ion_number))
        assert (sent.state, sent.e164) == ("delivered", "erased")
        row = s.get(PhoneNumberRow, ion_number)
        assert (row.e164, row.opted_out) == (f"erased:{ion_number}", True)
        ion = s.scalar(select(Contact).where(Contact.name == "Ion Popescu"))
        assert ion is not None and ion.numbers == []   # the person stays: deleting is another decision
        assert s.get(Delivery, giulia).state == "pending"  # someone else's delivery is untouched
        entry = s.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
    assert (entry.actor, entry.action, entry.target) == ("cli:ops", "number.erase", str(ion_number))
    assert json.loads(entry.details) == {"contacts": [ion.id], "deliveries_cancelled": 1}
    assert "765" not in entry.details   # the append-only log never holds the erased number


def test_a_shared_number_is_taken_from_everyone_and_a_number_never_used_disappears(contacts, audit):
    erased = erase_number(audit, "06 6521 1234", region="IT", actor="cli:ops")
    assert sorted(name for _, name in erased.contacts) == ["Anna Rossi", "Mario Rossi"]
    assert erased.left_without_number == () and erased.deliveries_cancelled == 0
    with contacts.sessions() as s:
        assert s.get(PhoneNumberRow, erased.number_id) is None   # no delivery points at it: no row kept
        mario = s.scalar(select(Contact).where(Contact.name == "Mario Rossi"))
        assert [n.e164 for n in mario.numbers] == ["+393331110001"]


def test_a_delivery_being_sent_keeps_its_number(contacts, audit):
    alert, _ = contacts.alerts.create(AlertRequest(text="Ora", target=Target(numbers=(ION,))))
    with contacts.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert).values(state="submitting"))
    assert erase_number(audit, ION, region="IT", actor="cli:ops").deliveries_cancelled == 0
    with contacts.sessions() as s:
        # The engine holds it in memory; after a crash it goes back to pending with the row's e164.
        assert s.scalar(select(Delivery.e164).where(Delivery.alert_id == alert)) == ION


@pytest.mark.parametrize("number, error, message", [
    ("12", ContactError, "12: "),
    ("333 000 9999", NotFound, "no contact has the number +393330009999"),
])
def test_a_refused_erasure_changes_nothing(contacts, audit, number, error, message):
    contacts.alerts.create(AlertRequest(text="Prova", target=Target(everyone=True)))
    before = _snapshot(contacts)
    with pytest.raises(error) as raised:
        erase_number(audit, number, region="IT", actor="cli:ops")
    assert str(raised.value).startswith(message)
    assert _snapshot(contacts) == before


def test_deleting_a_person_keeps_the_household_number_and_anonymous_counts(contacts, audit):
    with contacts.sessions() as s:
        mario = s.scalar(select(Contact.id).where(Contact.name == "Mario Rossi"))
    deleted = delete_contact(audit, mario, actor="otto")
    assert (deleted.zone, deleted.numbers_erased) == ("Isola Sacra", 1)   # the mobile; not the landline
    with contacts.sessions() as s:
        assert s.get(Contact, mario) is None
        assert s.scalar(select(PhoneNumberRow.id).where(PhoneNumberRow.e164 == HOUSEHOLD)) is not None
        assert s.scalar(select(PhoneNumberRow.id).where(PhoneNumberRow.e164 == "+393331110001")) is None
        assert [(e.zone, e.numbers) for e in s.scalars(select(ErasedContacts))] == [("Isola Sacra", 2)]
    before = _snapshot(contacts)
    with pytest.raises(NotFound):
        delete_contact(audit, mario, actor="otto")
    assert _snapshot(contacts) == before


def test_saving_finds_zones_and_groups_in_any_case_and_forgets_numbers_taken_away(contacts, audit):
    fields = ContactFields(name="Nuova Persona", zone="fregene", groups=("VOLONTARI", "scuole"),
                           numbers=(normalise_number("333 999 0000"), normalise_number(HOUSEHOLD)))
    contact_id = save_contact(audit, None, fields, actor="otto")
    with contacts.sessions() as s:
        contact = s.get(Contact, contact_id)
        assert contact.zone.name == "Fregene" and sorted(g.name for g in contact.groups) == ["scuole", "volontari"]
    save_contact(audit, contact_id, ContactFields(name="Nuova Persona", numbers=(normalise_number(HOUSEHOLD),)),
                 actor="otto")
    with contacts.sessions() as s:
        assert s.scalar(select(PhoneNumberRow.id).where(PhoneNumberRow.e164 == "+393339990000")) is None
        assert s.get(Contact, contact_id).zone is None
        actions = list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["contact.create", "contact.update"]
    before = _snapshot(contacts)
    with pytest.raises(NotFound):
        save_contact(audit, 999999, fields, actor="otto")
    assert _snapshot(contacts) == before
