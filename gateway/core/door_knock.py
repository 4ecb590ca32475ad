"""The door-knock list of an alert: vulnerable people no message of it reached, for volunteers.

Two kinds of people are on it: those the alert was sent to and no number reached
(a person is reached when any of their numbers was: the mobile answered, the
landline did not), and those who wrote STOP: the alert could not be sent to them
at all, yet in their zone they are as much at risk. They are listed for every
alert for their zone (an alert to everyone, or naming their zone; a correction
or all-clear follows its original's target), marked as opted out.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import and_, exists, false, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from gateway.core.models import Alert, Contact, Delivery, PhoneNumberRow, Zone, contact_numbers


def _alert_zones(s: Session, alert: Alert) -> tuple[bool, list[str]]:
    """(the alert went to everyone, the zones it named), through a follow-up to its original."""
    seen: set[int] = set()
    while alert.follows_alert_id is not None and alert.id not in seen:
        seen.add(alert.id)
        original = s.get(Alert, alert.follows_alert_id)
        if original is None:
            break
        alert = original
    target = json.loads(alert.target or "{}")
    return bool(target.get("all")), [name.casefold() for name in target.get("zones", ())]


def door_knock_list(s: Session, alert_id: int, reached_states: Sequence[str]) -> list[dict]:
    """One entry per person (name, address, zone, needs, numbers, opted_out), by zone and address."""
    alert = s.get(Alert, alert_id)
    if alert is None:
        return []
    # Nested, so each of the person's numbers is one probe of the (alert, number, channel) unique index:
    # as an IN over the alert's reached numbers, or one flat EXISTS, SQLite scanned the alert's deliveries
    # again for every vulnerable person (minutes at 100,000 recipients).
    theirs = contact_numbers.alias("theirs")
    reached_delivery = aliased(Delivery, name="reached_delivery")
    number_reached = exists().where(reached_delivery.alert_id == alert_id,
                                    reached_delivery.number_id == theirs.c.number_id,
                                    reached_delivery.state.in_(reached_states))
    reached_person = exists().where(theirs.c.contact_id == Contact.id, number_reached)
    sent_to = exists().where(Delivery.alert_id == alert_id, Delivery.number_id == contact_numbers.c.number_id)
    everyone, zones = _alert_zones(s, alert)
    in_its_zones = true() if everyone else func.lower(Zone.name).in_(zones)
    stopped = and_(PhoneNumberRow.opted_out.is_(True), in_its_zones) if (everyone or zones) else false()
    found = s.execute(
        select(Contact.id, Contact.name, Contact.address, Zone.name.label("zone"), Contact.needs,
               PhoneNumberRow.e164, PhoneNumberRow.opted_out)
        .join(contact_numbers, contact_numbers.c.contact_id == Contact.id)
        .join(PhoneNumberRow, PhoneNumberRow.id == contact_numbers.c.number_id)
        .outerjoin(Zone, Zone.id == Contact.zone_id)
        .where(Contact.vulnerable.is_(True), ~reached_person, or_(sent_to, stopped))
        .order_by(Zone.name, Contact.address, Contact.name, Contact.id)).all()
    people: dict[int, dict] = {}
    for row in found:
        person = people.setdefault(row.id, {"name": row.name, "address": row.address, "zone": row.zone,
                                            "needs": row.needs, "numbers": [], "opted_out": False})
        if row.e164 not in person["numbers"]:
            person["numbers"].append(row.e164)
        person["opted_out"] = person["opted_out"] or bool(row.opted_out)
    return list(people.values())
