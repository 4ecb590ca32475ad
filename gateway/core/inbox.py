"""The operators' side of citizens' SMS: the Inbox, one-to-one replies, help requests to handle.

The panel and the command line both call these, so a reply written at the
console and one written in the browser are checked, queued and audited alike.
The citizens' service fills ``inbound_sms`` (kind, outcome, alert, contact) and
``help_requests``; nothing here decides what a message means.

Every change is written with its audit entry in one transaction: a queued reply
without its "inbox.reply" entry, or the reverse, cannot exist.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway.core.audit import AuditLog
from gateway.core.db import utcnow
from gateway.core.models import Contact, InboundSms, PhoneNumberRow, Zone, contact_numbers
from gateway.core.models_citizens import HelpRequest, SmsReply
from gateway.core.phone import InvalidNumber, normalise_number
from gateway.core.replies import queue_reply
from gateway.core.states import InboundKind, ReplyReason

# The Inbox's filters: what an operator looks for (InboundKind, "ignored" and "confirmation" included).
KINDS = tuple(kind.value for kind in InboundKind)
MAX_NOTE = 2000


class InboxError(Exception):
    """What was asked cannot be done; nothing changed. ``msgid``/``params`` as AlertError."""

    def __init__(self, msgid: str, **params: object) -> None:
        self.msgid = msgid
        self.params = params
        super().__init__(msgid % params if params else msgid)


class NotFound(InboxError):
    """The message or help request asked for does not exist."""


def iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None


@dataclass(frozen=True)
class InboxQuery:
    kind: str | None = None        # an InboundKind
    sender: str | None = None      # part of the number, as typed
    alert_id: int | None = None

    def conditions(self) -> list:
        if self.kind is not None and self.kind not in KINDS:
            raise InboxError("unknown kind %(kind)s (known: %(known)s)", kind=self.kind, known=", ".join(KINDS))
        conditions = []
        if self.kind:
            conditions.append(InboundSms.kind == self.kind)
        if self.sender:
            digits = self.sender.replace(" ", "")
            conditions.append(InboundSms.sender.contains(digits, autoescape=True))
        if self.alert_id is not None:
            conditions.append(InboundSms.alert_id == self.alert_id)
        return conditions


def names_by_number(session: Session, numbers: set[str]) -> dict[str, str]:
    """e164 -> the names of the contacts that have that number ("Mario Rossi, Anna Rossi")."""
    if not numbers:
        return {}
    rows = session.execute(select(PhoneNumberRow.e164, Contact.name)
                           .join(contact_numbers, contact_numbers.c.number_id == PhoneNumberRow.id)
                           .join(Contact, Contact.id == contact_numbers.c.contact_id)
                           .where(PhoneNumberRow.e164.in_(numbers)).order_by(Contact.name)).all()
    names: dict[str, list[str]] = {}
    for e164, name in rows:
        if name:
            names.setdefault(e164, []).append(name)
    return {e164: ", ".join(found) for e164, found in names.items()}


def _message(row: InboundSms, contact_name: str | None, help_id: int | None) -> dict:
    return {"id": row.id, "line": row.line, "sender": row.sender, "name": contact_name or "",
            "received_at": iso(row.received_at), "text": row.text, "kind": row.kind, "outcome": row.outcome,
            "alert_id": row.alert_id, "incomplete": bool(row.incomplete), "parts": row.parts,
            "handled": bool(row.handled), "help_request_id": help_id}


def list_messages(session: Session, query: InboxQuery = InboxQuery(), *, limit: int = 50,
                  offset: int = 0) -> tuple[list[dict], int]:
    """One page of incoming messages, newest first, and how many match in all."""
    where = query.conditions()
    total = session.scalar(select(func.count()).select_from(InboundSms).where(*where)) or 0
    rows = session.execute(select(InboundSms, Contact.name, HelpRequest.id)
                           .outerjoin(Contact, Contact.id == InboundSms.contact_id)
                           .outerjoin(HelpRequest, HelpRequest.inbound_id == InboundSms.id)
                           .where(*where).order_by(InboundSms.received_at.desc(), InboundSms.id.desc())
                           .limit(limit).offset(offset)).all()
    # A message the citizens' service has not linked to a contact yet still shows whose number it is.
    unnamed = names_by_number(session, {row.sender for row, name, _help in rows if not name})
    return [_message(row, name or unnamed.get(row.sender), help_id) for row, name, help_id in rows], total


def get_message(session: Session, inbound_id: int) -> InboundSms:
    row = session.get(InboundSms, inbound_id)
    if row is None:
        raise NotFound("no incoming message with id %(id)s", id=inbound_id)
    return row


def conversation(session: Session, e164: str, *, limit: int = 100) -> list[dict]:
    """What a number wrote to us and what we answered (with each reply's state), oldest first."""
    received = session.execute(select(InboundSms.id, InboundSms.received_at, InboundSms.text, InboundSms.kind)
                               .where(InboundSms.sender == e164)
                               .order_by(InboundSms.received_at.desc()).limit(limit)).all()
    replies = session.scalars(select(SmsReply).where(SmsReply.e164 == e164)
                              .order_by(SmsReply.created_at.desc()).limit(limit)).all()
    items = [{"direction": "in", "id": r.id, "at": r.received_at, "text": r.text, "kind": r.kind}
             for r in received]
    items += [{"direction": "out", "id": r.id, "at": r.created_at, "text": r.text, "reason": r.reason,
               "state": r.state, "by": r.created_by, "sent_at": iso(r.sent_at), "error": r.last_error}
              for r in replies]
    items.sort(key=lambda item: (item["at"], item["direction"] == "out", item["id"]))
    for item in items:
        item["at"] = iso(item["at"])
    return items[-limit:]


def reply(audit: AuditLog, inbound_id: int, text: str, *, actor: str, region: str = "IT") -> SmsReply:
    """An operator's one-to-one answer to an incoming message: checked, queued, audited, or nothing.

    Raises InboxError (unknown message, a sender that cannot receive SMS) or ReplyError (the text).
    """
    with audit.transaction() as s:
        message = get_message(s, inbound_id)
        try:
            number = normalise_number(message.sender, region)
        except InvalidNumber:
            # Alphanumeric senders (a bank, the operator's service texts) and short codes.
            raise InboxError("%(sender)s is not a phone number: it cannot receive a reply",
                             sender=message.sender) from None
        if number.kind != "mobile":
            raise InboxError("%(sender)s is not a mobile number: it cannot receive an SMS",
                             sender=message.sender)
        queued = queue_reply(s, number.e164, text, ReplyReason.OPERATOR, inbound_id=message.id,
                             created_by=actor)
        s.flush()
        audit.record(s, actor, "inbox.reply", message.id, reply=queued.id, to=number.e164, text=queued.text)
        s.expunge(queued)
    return queued


# --- help requests -------------------------------------------------------------------
def help_requests(session: Session, *, open_only: bool = True, alert_id: int | None = None,
                  inbound_id: int | None = None, limit: int = 200) -> list[dict]:
    """Help requests, newest first, with what a rescuer needs: who, where, how vulnerable."""
    conditions = []
    if open_only:
        conditions.append(HelpRequest.handled_at.is_(None))
    if alert_id is not None:
        conditions.append(HelpRequest.alert_id == alert_id)
    if inbound_id is not None:
        conditions.append(HelpRequest.inbound_id == inbound_id)
    rows = session.execute(select(HelpRequest, Contact, Zone.name)
                           .outerjoin(Contact, Contact.id == HelpRequest.contact_id)
                           .outerjoin(Zone, Zone.id == Contact.zone_id)
                           .where(*conditions)
                           .order_by(HelpRequest.received_at.desc(), HelpRequest.id.desc()).limit(limit)).all()
    people = _people(session, {h.e164 for h, contact, _zone in rows if contact is None})
    result = []
    for request, contact, zone in rows:
        person = _person(contact, zone) if contact is not None else people.get(request.e164, _person(None, None))
        result.append({"id": request.id, "e164": request.e164, "text": request.text, "channel": request.channel,
                       "received_at": iso(request.received_at), "alert_id": request.alert_id,
                       "inbound_id": request.inbound_id, "handled_at": iso(request.handled_at),
                       "handled_by": request.handled_by, "note": request.note, **person})
    return result


def _person(contact: Contact | None, zone: str | None) -> dict:
    if contact is None:
        return {"name": "", "address": None, "zone": None, "vulnerable": False, "needs": None}
    return {"name": contact.name, "address": contact.address, "zone": zone, "vulnerable": bool(contact.vulnerable),
            "needs": contact.needs}


def _people(session: Session, numbers: set[str]) -> dict[str, dict]:
    """e164 -> the details of the contact with that number (the vulnerable one first, when several)."""
    if not numbers:
        return {}
    rows = session.execute(select(PhoneNumberRow.e164, Contact, Zone.name)
                           .join(contact_numbers, contact_numbers.c.number_id == PhoneNumberRow.id)
                           .join(Contact, Contact.id == contact_numbers.c.contact_id)
                           .outerjoin(Zone, Zone.id == Contact.zone_id)
                           .where(PhoneNumberRow.e164.in_(numbers))
                           .order_by(Contact.vulnerable.desc(), Contact.id)).all()
    people: dict[str, dict] = {}
    for e164, contact, zone in rows:
        people.setdefault(e164, _person(contact, zone))
    return people


def mark_handled(audit: AuditLog, help_id: int, *, actor: str, note: str = "",
                 now: dt.datetime | None = None) -> HelpRequest:
    """The alarm ends: who handled the request, when, and what they noted; audited."""
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InboxError("the note is longer than %(maximum)s characters", maximum=MAX_NOTE)
    with audit.transaction() as s:
        # Conditional: two operators pressing the button at once handle it once.
        taken = s.execute(update(HelpRequest).where(HelpRequest.id == help_id, HelpRequest.handled_at.is_(None))
                          .values(handled_at=now or utcnow(), handled_by=actor, note=note or None)).rowcount
        request = s.get(HelpRequest, help_id)
        if request is None:
            raise NotFound("no help request with id %(id)s", id=help_id)
        if not taken:
            raise InboxError("help request %(id)s was already handled by %(by)s", id=help_id,
                             by=request.handled_by)
        audit.record(s, actor, "help.handled", help_id, e164=request.e164, alert=request.alert_id,
                     note=note or None)
        s.flush()
        s.refresh(request)
        s.expunge(request)
    return request
