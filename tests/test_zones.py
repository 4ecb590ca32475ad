"""Merging, renaming and deleting zones and groups (gateway/core/zones.py): by id or by name, all or nothing."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from gateway.core.audit import AuditLog, audit_log_for
from gateway.core.models import Contact, Group, Zone, contact_groups
from gateway.core.models_panel import AuditEntry, ErasedContacts
from gateway.core.zones import Kind, NotFound, ZoneError, delete_empty, merge, rename


@pytest.fixture
def audit(contacts) -> AuditLog:
    return audit_log_for(contacts.config, contacts.sessions)


def _snapshot(services) -> tuple:
    with services.sessions() as s:
        return (sorted(s.execute(select(Zone.id, Zone.name)).all()),
                sorted(s.execute(select(Group.id, Group.name)).all()),
                sorted(s.execute(select(Contact.id, Contact.zone_id)).all()),
                sorted(s.execute(select(contact_groups.c.contact_id, contact_groups.c.group_id)).all()),
                sorted(s.execute(select(ErasedContacts.zone)).all()),
                s.scalar(select(func.count()).select_from(AuditEntry)))


def _last_audit(services) -> AuditEntry:
    with services.sessions() as s:
        return s.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))


def test_merging_zones_by_name_moves_everyone_and_the_erased_counts(contacts, audit):
    with contacts.sessions.begin() as s:
        s.add(ErasedContacts(zone="Fregene", numbers=1))
        isola = s.scalar(select(Zone.id).where(Zone.name == "Isola Sacra"))
    merged = merge(audit, Kind.ZONE, " fregene ", "ISOLA SACRA", actor="cli:ops")
    assert (merged.source_name, merged.target_name, merged.target_id, merged.contacts_moved) == (
        "Fregene", "Isola Sacra", isola, 2)
    with contacts.sessions() as s:
        assert list(s.scalars(select(Zone.name))) == ["Isola Sacra"]
        assert set(s.scalars(select(Contact.zone_id))) == {isola}
        assert s.scalar(select(ErasedContacts.zone)) == "Isola Sacra"
    entry = _last_audit(contacts)
    assert (entry.actor, entry.action, entry.target) == ("cli:ops", "zone.merge", str(merged.source_id))
    assert json.loads(entry.details) == {"name": "Fregene", "into": isola, "into_name": "Isola Sacra", "contacts": 2}


def test_merging_groups_keeps_one_membership_per_person(contacts, audit):
    with contacts.sessions.begin() as s:
        mario, anna = (s.scalar(select(Contact).where(Contact.name == name))
                       for name in ("Mario Rossi", "Anna Rossi"))
        pc = Group(name="Volontari PC")
        mario.groups.append(pc)
        anna.groups.append(pc)
        s.flush()
        pc_id = pc.id
    merged = merge(audit, Kind.GROUP, pc_id, "volontari", actor="cli:ops")
    assert merged.contacts_moved == 2
    with contacts.sessions() as s:
        assert s.get(Group, pc_id) is None
        members = {c.name: [g.name for g in c.groups] for c in s.scalars(select(Contact))}
    assert members == {"Mario Rossi": ["volontari"], "Anna Rossi": ["volontari"], "Ion Popescu": [],
                       "Giulia Verdi": ["volontari"]}


@pytest.mark.parametrize("source, into, error, message", [
    ("Atlantide", "Fregene", NotFound, "no zone called Atlantide"),
    ("Fregene", "Atlantide", NotFound, "no zone called Atlantide"),
    (999999, "Fregene", NotFound, "no zone with id 999999"),
    ("Fregene", "fregene", ZoneError, "Fregene cannot be merged into itself"),
    ("centro", "Fregene", ZoneError, "centro matches CENTRO, Centro: give the exact spelling"),
])
def test_a_refused_merge_changes_nothing(contacts, audit, source, into, error, message):
    with contacts.sessions.begin() as s:
        s.add_all([Zone(name="Centro"), Zone(name="CENTRO")])   # spellings a direct import could leave
    before = _snapshot(contacts)
    with pytest.raises(error, match=message):
        merge(audit, Kind.ZONE, source, into, actor="cli:ops")
    assert _snapshot(contacts) == before


def test_rename_and_delete_refuse_without_changing_anything(contacts, audit):
    before = _snapshot(contacts)
    for new_name, message in ((" ", "Give a name."), ("x" * 121, "at most 120"),
                              ("isola sacra", "Isola Sacra already exists: merge into it instead.")):
        with pytest.raises(ZoneError, match=message):
            rename(audit, Kind.ZONE, "Fregene", new_name, actor="otto")
    with pytest.raises(ZoneError, match="Fregene still has 2 contacts"):
        delete_empty(audit, Kind.ZONE, "Fregene", actor="otto")
    assert _snapshot(contacts) == before
    renamed = rename(audit, Kind.GROUP, "volontari", "  Volontari   PC ", actor="otto")
    assert (renamed.old, renamed.new) == ("volontari", "Volontari PC")
    with contacts.sessions.begin() as s:
        s.add(Zone(name="Vuota"))
    assert delete_empty(audit, Kind.ZONE, "vuota", actor="otto") == "Vuota"
    assert _last_audit(contacts).action == "zone.delete"
