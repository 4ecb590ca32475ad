"""The queue of SMS answers to citizens (sms_replies): below alerts, through the same modems.

The dispatcher claims answers only when no alert SMS is waiting (the claim's own
query says so, store.alert_work_waiting) and sends them as it sends an alert's
SMS, through the channel (rate limits, daily caps, failover). An answer is
'submitting' on disk before it goes out; one found so at start-up went back to
pending flagged ``possible_duplicate``: sent twice rather than never.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.config import default_node_name
from gateway.core.db import utcnow
from gateway.core.models_citizens import SmsReply
from gateway.core.states import Channel, ReplyState
from gateway.core.quiet_hours import QuietHours
from gateway.core.store import alert_work_waiting

# A transient failure (CMS 38, a modem timeout) is tried again this many times in all,
# after RETRY_SECONDS times the attempts made: an answer matters less than the next alert.
MAX_ATTEMPTS = 3
RETRY_SECONDS = 30.0
# No modem could take it (all busy with a cap, down): not the answer's fault, not counted.
NO_LINE_RETRY_SECONDS = 10.0

_DUE = (select(SmsReply.id).where(SmsReply.state == ReplyState.PENDING,
                                  (SmsReply.next_attempt_at.is_(None)) | (SmsReply.next_attempt_at <= bindparam("now")))
        .order_by(SmsReply.id).limit(bindparam("limit")))
_TAKE = (update(SmsReply).where(SmsReply.id.in_(_DUE), SmsReply.state == ReplyState.PENDING)
         .values(state=ReplyState.SUBMITTING, claimed_at=bindparam("now"), attempts=SmsReply.attempts + 1,
                 node=bindparam("claimer"))
         .returning(SmsReply.id, SmsReply.e164, SmsReply.text, SmsReply.attempts, SmsReply.possible_duplicate))


@dataclass(frozen=True)
class ClaimedReply:
    reply_id: int
    e164: str
    text: str
    attempts: int             # including this one
    possible_duplicate: bool


class ReplyQueue:
    def __init__(self, sessions: sessionmaker[Session], quiet_hours: QuietHours | None = None, *,
                 node: str | None = None) -> None:
        self.sessions = sessions
        # The engine claiming ([engine] node): as for deliveries (store.Store), a restart recovers
        # this node's answers in flight, and another node's are taken over when it goes silent.
        self.node = node or default_node_name()
        # Information held by quiet hours is not "an alert SMS waiting": answers go meanwhile.
        self.quiet_hours = quiet_hours

    def recover_interrupted(self, now: dt.datetime | None = None) -> int:
        """Answers this node left 'submitting' by a stop or a crash go out again, flagged as possible duplicates."""
        with self.sessions.begin() as s:
            return self._recover(s, (SmsReply.node == self.node) | SmsReply.node.is_(None), "an engine stop")

    def take_over(self, s: Session, node: str) -> int:
        """In the caller's transaction (gateway.core.nodes): the answers ``node`` had in flight."""
        return self._recover(s, SmsReply.node == node, f"node {node} stopping (taken over by {self.node})")

    @staticmethod
    def _recover(s: Session, owned, stopped_by: str) -> int:  # noqa: ANN001 - a condition on SmsReply
        return s.execute(update(SmsReply).where(SmsReply.state == ReplyState.SUBMITTING, owned).values(
            state=ReplyState.PENDING, possible_duplicate=True, next_attempt_at=None,
            last_error=f"interrupted by {stopped_by}; sent again as a possible duplicate")).rowcount

    def claim(self, limit: int, now: dt.datetime | None = None) -> list[ClaimedReply]:
        """Up to ``limit`` due answers, none while an alert SMS waits to be claimed."""
        if limit <= 0:
            return []
        now = now or utcnow()
        with self.sessions.begin() as s:
            quiet = self.quiet_hours is not None and self.quiet_hours.period(now) is not None
            if alert_work_waiting(s.connection(), Channel.SMS, now, information_allowed=not quiet):
                return []
            rows = s.connection().execute(_TAKE, {"now": now, "limit": limit, "claimer": self.node}).all()
        return sorted((ClaimedReply(r.id, r.e164, r.text, r.attempts, r.possible_duplicate) for r in rows),
                      key=lambda r: r.reply_id)

    def release(self, claims: list[ClaimedReply]) -> None:
        """Claimed, never tried (no line took them, the engine stopped): back to the queue as they were."""
        if not claims:
            return
        with self.sessions.begin() as s:
            s.execute(update(SmsReply).where(SmsReply.id.in_([c.reply_id for c in claims]),
                                             SmsReply.state == ReplyState.SUBMITTING, SmsReply.node == self.node)
                      .values(state=ReplyState.PENDING, attempts=SmsReply.attempts - 1))

    def record_sent(self, reply_id: int, line: str, now: dt.datetime | None = None) -> None:
        now = now or utcnow()
        with self.sessions.begin() as s:
            s.execute(update(SmsReply).where(SmsReply.id == reply_id).values(
                state=ReplyState.SENT, sent_at=now, line=line, last_error=None, next_attempt_at=None))

    def record_failed(self, reply: ClaimedReply, reason: str, *, permanent: bool, charged: bool,
                      line: str | None = None, now: dt.datetime | None = None) -> ReplyState:
        """Failed for good (permanent, or the attempts used up), or pending again a little later."""
        now = now or utcnow()
        values: dict = {"last_error": reason, "line": line}
        if not charged:
            values.update(state=ReplyState.PENDING, attempts=SmsReply.attempts - 1,
                          next_attempt_at=now + dt.timedelta(seconds=NO_LINE_RETRY_SECONDS))
        elif permanent or reply.attempts >= MAX_ATTEMPTS:
            values.update(state=ReplyState.FAILED, next_attempt_at=None)
        else:
            values.update(state=ReplyState.PENDING,
                          next_attempt_at=now + dt.timedelta(seconds=RETRY_SECONDS * reply.attempts))
        with self.sessions.begin() as s:
            s.execute(update(SmsReply).where(SmsReply.id == reply.reply_id).values(**values))
        return values["state"]
