"""Put parsed contacts into the database: one transaction, idempotent, households merged."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.contacts_csv import ParsedContact, RowError, parse_contacts_csv
from gateway.core.db import transaction
from gateway.core.models import Contact, Group, PhoneNumberRow, Zone

_FIELDS = ("language", "vulnerable", "needs", "address", "consent_date", "consent_source")


@dataclass
class ImportReport:
    rows: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0
    contacts_unchanged: int = 0
    numbers_created: int = 0
    zones_created: int = 0
    groups_created: int = 0
    rejected: list[RowError] = field(default_factory=list)
    fatal: str | None = None
    ignored_columns: list[str] = field(default_factory=list)
    imported: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.contacts_created or self.contacts_updated or self.numbers_created
                    or self.zones_created or self.groups_created)


class _Catalogue:
    """Existing zones, groups, numbers and contacts, loaded once per import."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.zones = {z.name.casefold(): z for z in session.scalars(select(Zone))}
        self.groups = {g.name.casefold(): g for g in session.scalars(select(Group))}
        self.numbers = {n.e164: n for n in session.scalars(select(PhoneNumberRow))}
        self.by_external = {c.external_id: c for c in session.scalars(
            select(Contact).where(Contact.external_id.is_not(None)))}

    def zone(self, name: str, report: ImportReport) -> Zone:
        key = name.casefold()
        if key not in self.zones:
            self.zones[key] = Zone(name=name)
            self.session.add(self.zones[key])
            report.zones_created += 1
        return self.zones[key]

    def group(self, name: str, report: ImportReport) -> Group:
        key = name.casefold()
        if key not in self.groups:
            self.groups[key] = Group(name=name)
            self.session.add(self.groups[key])
            report.groups_created += 1
        return self.groups[key]

    def number(self, e164: str, kind: str, report: ImportReport) -> PhoneNumberRow:
        if e164 not in self.numbers:
            self.numbers[e164] = PhoneNumberRow(e164=e164, kind=kind)
            self.session.add(self.numbers[e164])
            report.numbers_created += 1
        return self.numbers[e164]

    def find_contact(self, parsed: ParsedContact) -> Contact | None:
        if parsed.external_id:
            return self.by_external.get(parsed.external_id)
        # Without an id, the same name on a number we know is the same person.
        for number in parsed.numbers:
            row = self.numbers.get(number.e164)
            if row is None:
                continue
            for contact in row.contacts:
                if contact.name.casefold() == parsed.name.casefold():
                    return contact
        return None


PROGRESS_EVERY = 1000  # rows between two calls of an import's ``progress``


def import_contacts(sessions: sessionmaker[Session], data: bytes, *, region: str = "IT",
                    strict: bool = False, session: Session | None = None,
                    progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Import a CSV export. Rejected rows are reported and skipped; with ``strict``
    any rejected row (and always a fatal file error) imports nothing. ``session``: work in the
    caller's transaction (with the audit entry of the import), which the caller commits.
    ``progress(done, total)``: called as the valid rows are stored (the CLI's bar on a terminal)."""
    parsed = parse_contacts_csv(data, default_region=region)
    report = ImportReport(rows=len(parsed.contacts) + len({e.line for e in parsed.errors}),
                          rejected=list(parsed.errors), fatal=parsed.fatal,
                          ignored_columns=list(parsed.ignored_columns))
    if parsed.fatal or (strict and parsed.errors) or not parsed.contacts:
        return report
    with transaction(sessions, session) as session:
        catalogue = _Catalogue(session)
        total = len(parsed.contacts)
        for done, item in enumerate(parsed.contacts, 1):
            _upsert(catalogue, item, report)
            if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
                progress(done, total)
    report.imported = True
    return report


def _upsert(catalogue: _Catalogue, item: ParsedContact, report: ImportReport) -> None:
    contact = catalogue.find_contact(item)
    created = contact is None
    changed = False
    if contact is None:
        contact = Contact(name=item.name, external_id=item.external_id)
        catalogue.session.add(contact)
        if item.external_id:
            catalogue.by_external[item.external_id] = contact
    elif contact.name != item.name:
        contact.name, changed = item.name, True
    for name in _FIELDS:
        value = getattr(item, name)
        if getattr(contact, name) != value:
            setattr(contact, name, value)
            changed = True
    zone = catalogue.zone(item.zone, report) if item.zone else None
    if contact.zone is not zone and zone is not None:
        contact.zone, changed = zone, True
    for group_name in item.groups:
        group = catalogue.group(group_name, report)
        if group not in contact.groups:
            contact.groups.append(group)
            changed = True
    for number in item.numbers:
        row = catalogue.number(number.e164, number.kind, report)
        if row not in contact.numbers:
            contact.numbers.append(row)
            changed = True
    if created:
        report.contacts_created += 1
    elif changed:
        report.contacts_updated += 1
    else:
        report.contacts_unchanged += 1
