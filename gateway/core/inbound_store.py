"""Received parts into the database, and whole messages out of them (see inbound.py for the rules).

Each call is one transaction on the engine's database thread (store_worker.py): a part
is committed before the modem deletes its copy, and the message it completes is
created in the same transaction, so a crash leaves either nothing (the modem still
has the part, it is read again) or both.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.channels import ReceivedPart
from gateway.core.db import utcnow
from gateway.core.inbound import Assembled, assemble, complete, fingerprint, overdue, storable, usable
from gateway.core.models import InboundSms
from gateway.core.models_citizens import InboundPart


def _message(s: Session, made: Assembled, parts: list[InboundPart]) -> InboundSms:
    # alert_id, contact_id, kind and outcome are the citizens' service's to fill (handled=False).
    row = InboundSms(line=made.line, sender=made.sender, text=made.text, received_at=made.received_at,
                     sent_at=made.sent_at, parts=made.parts, incomplete=made.incomplete, handled=False)
    s.add(row)
    s.flush()
    for part in parts:
        part.message_id = row.id
    return row


def _waiting(s: Session, sender: str, reference: int, parts: int) -> list[InboundPart]:
    return list(s.scalars(select(InboundPart).where(
        InboundPart.sender == sender, InboundPart.reference == reference, InboundPart.parts == parts,
        InboundPart.message_id.is_(None)).order_by(InboundPart.id)))


def record_part(sessions: sessionmaker, part: ReceivedPart, now: dt.datetime | None = None) -> int:
    """Store one part (once: a part read again is recognised by its fingerprint); when it completes
    its message, create the inbound_sms row too. Returns the number of messages created (0 or 1)."""
    mark = fingerprint(part)
    try:
        with sessions.begin() as s:
            if s.scalar(select(InboundPart.id).where(InboundPart.fingerprint == mark)) is not None:
                return 0
            row = InboundPart(line=part.line, sender=part.sender, sent_at=part.sent_at,
                              received_at=part.received_at or now or utcnow(), reference=part.reference,
                              parts=max(1, part.parts), seq=part.seq, text=storable(part.text), fingerprint=mark)
            s.add(row)
            s.flush()
            group = [row] if row.parts == 1 else _waiting(s, row.sender, row.reference, row.parts)
            if not complete(group):
                return 0
            _message(s, assemble(group), usable(group))
            return 1
    except IntegrityError:
        # Another engine sharing the database stored the same part between our look and our insert.
        return 0


def assemble_overdue(sessions: sessionmaker, now: dt.datetime, timeout: dt.timedelta) -> int:
    """Messages still missing parts ``timeout`` after their first part arrived are kept with what came,
    marked incomplete. Returns how many were created."""
    created = 0
    with sessions.begin() as s:
        waiting = s.scalars(select(InboundPart).where(InboundPart.message_id.is_(None))
                            .order_by(InboundPart.id)).all()
        groups: dict[tuple[str, int, int], list[InboundPart]] = defaultdict(list)
        for part in waiting:
            groups[(part.sender, part.reference, part.parts)].append(part)
        for group in groups.values():
            if overdue(group, now, timeout):
                _message(s, assemble(group), usable(group))
                created += 1
                # Parts left over (a seq stored twice) wait for a message of their own.
    return created
