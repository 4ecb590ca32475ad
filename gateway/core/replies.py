"""Queue an SMS answer to a citizen: the one way automatic replies and an operator's replies are written.

A reply is a row in ``sms_replies`` written in the caller's transaction (with the
incoming message it answers, its effects and, for an operator, the audit entry), so
a crash either keeps all of it or none. The SMS dispatcher sends pending replies when
no alert SMS is waiting: alerts always go first.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from gateway.core.control_chars import control_characters
from gateway.core.db import utcnow
from gateway.core.models_citizens import SmsReply
from gateway.core.sms_text import SmsTextError, plan_sms
from gateway.core.states import ReplyReason, ReplyState

# A reply is short by design; an operator's one-to-one answer may take a few segments.
MAX_REPLY_SEGMENTS = 3


class ReplyError(ValueError):
    """The reply cannot be sent as written: says why, nothing was queued."""


def check_reply_text(text: str, *, max_segments: int = MAX_REPLY_SEGMENTS) -> str:
    """The text as it will be sent (stripped), or ReplyError saying what is wrong with it."""
    text = (text or "").strip()
    if not text:
        raise ReplyError("the reply is empty")
    bad = control_characters(text)
    if bad:
        raise ReplyError(f"the reply contains control characters ({bad})")
    try:
        plan = plan_sms(text)
    except SmsTextError as exc:
        raise ReplyError(f"the reply cannot be sent by SMS: {exc}") from exc
    if plan.segments > max_segments:
        raise ReplyError(f"the reply needs {plan.segments} SMS, at most {max_segments}")
    return text


def queue_reply(session: Session, e164: str, text: str, reason: ReplyReason, *,
                inbound_id: int | None = None, created_by: str = "engine",
                now: dt.datetime | None = None) -> SmsReply:
    """Add a pending reply to ``session`` (the caller commits). Raises ReplyError for a bad text."""
    reply = SmsReply(e164=e164, text=check_reply_text(text), reason=reason, inbound_id=inbound_id,
                     created_by=created_by, created_at=now or utcnow(), state=ReplyState.PENDING)
    session.add(reply)
    return reply
