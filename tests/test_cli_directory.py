"""`allerta contacts erase`, `allerta zones merge`, `allerta groups merge`: the panel's services from the shell."""
from __future__ import annotations

from sqlalchemy import func, select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.models import Contact, Delivery, Group, PhoneNumberRow, Zone
from gateway.core.models_panel import AuditEntry
from gateway.core.audit import local_actor
from gateway.shell.cli import main


def _cli(config_path, *argv: str) -> int:
    return main(["--config", str(config_path), *argv])


def _last_audit(services) -> AuditEntry:
    with services.sessions() as s:
        return s.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))


def _audit_count(services) -> int:
    with services.sessions() as s:
        return s.scalar(select(func.count()).select_from(AuditEntry))


def test_contacts_erase_cancels_what_waits_and_names_who_is_left_without_a_number(contacts, config_path, capsys):
    alert, _ = contacts.alerts.create(AlertRequest(text="Prova", target=Target(zones=("Fregene",))))
    assert _cli(config_path, "contacts", "erase", "+39 320 765 4321") == 0
    out = capsys.readouterr().out
    assert "+393207654321 erased: taken from 1 contact, 1 delivery waiting for it cancelled" in out
    assert "(Ion Popescu) has no number left" in out
    with contacts.sessions() as s:
        states = {(d.e164, d.state) for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert))}
        assert states == {("erased", "cancelled"), ("+393470000003", "pending")}
        assert s.scalar(select(PhoneNumberRow).where(PhoneNumberRow.e164 == "+393207654321")) is None
    entry = _last_audit(contacts)
    assert (entry.actor, entry.action) == (local_actor(), "number.erase")


def test_contacts_erase_of_an_unknown_or_invalid_number_is_an_error_that_changes_nothing(contacts, config_path,
                                                                                           capsys):
    before = _audit_count(contacts)
    assert _cli(config_path, "contacts", "erase", "333 000 9999") == 2
    assert capsys.readouterr().err == "allerta: no contact has the number +393330009999\n"
    assert _cli(config_path, "contacts", "erase", "12") == 2
    assert capsys.readouterr().err.startswith("allerta: 12: ")
    assert _audit_count(contacts) == before


def test_zones_and_groups_merge_by_name(contacts, config_path, capsys):
    with contacts.sessions.begin() as s:
        s.add(Group(name="Volontari PC"))
    assert _cli(config_path, "zones", "merge", "fregene", "Isola Sacra") == 0
    assert capsys.readouterr().out == "zone Fregene merged into Isola Sacra: 2 contacts moved\n"
    assert _cli(config_path, "groups", "merge", "Volontari PC", "volontari") == 0
    assert capsys.readouterr().out == "group Volontari PC merged into volontari: 0 contacts moved\n"
    with contacts.sessions() as s:
        assert list(s.scalars(select(Zone.name))) == ["Isola Sacra"]
        assert list(s.scalars(select(Group.name))) == ["volontari"]
        assert len(list(s.scalars(select(Contact).where(Contact.zone.has(Zone.name == "Isola Sacra"))))) == 4
    entry = _last_audit(contacts)
    assert (entry.actor, entry.action) == (local_actor(), "group.merge")


def test_a_refused_merge_exits_2_with_the_reason(contacts, config_path, capsys):
    assert _cli(config_path, "zones", "merge", "Atlantide", "Fregene") == 2
    assert capsys.readouterr().err == "allerta: no zone called Atlantide\n"
    assert _cli(config_path, "groups", "merge", "volontari", "VOLONTARI") == 2
    assert capsys.readouterr().err == "allerta: volontari cannot be merged into itself\n"
    with contacts.sessions() as s:
        assert set(s.scalars(select(Zone.name))) == {"Fregene", "Isola Sacra"}
