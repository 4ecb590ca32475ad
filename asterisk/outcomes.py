"""What one voice call achieved, and whether it is worth calling again.

Pure code. The client adapter collects, for the call it originated, the
OriginateResponse ``Reason``, the ``Cause`` of the Hangup event, our
dialplan's ``AllertaResult`` UserEvent and whether the channel went Up; this
module turns them into one ``CallOutcome`` following the policy table in
shared/reference/asterisk-ami.md.

The Hangup cause wins over Reason: on PJSIP trunks a busy callee shows up as
Reason 0 with Cause 17, so Reason alone would call it a generic failure.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from asterisk.q850 import REASON_NAMES, cause_text
from gateway.core.failures import Failure, FailureKind
from gateway.core.retry import RETRY_AT_MOST_ONCE_CAUSES
from gateway.core.states import AttemptOutcome

# What a call that was placed can come to (no_line and no_route: none was).
OUTCOMES = frozenset({AttemptOutcome.CONFIRMED, AttemptOutcome.ANSWERED, AttemptOutcome.VOICEMAIL,
                      AttemptOutcome.BUSY, AttemptOutcome.NO_ANSWER, AttemptOutcome.CONGESTION,
                      AttemptOutcome.INVALID_NUMBER, AttemptOutcome.FAILED})
# Outcomes in which a person or a mailbox heard the message.
DELIVERED = frozenset({AttemptOutcome.CONFIRMED, AttemptOutcome.ANSWERED, AttemptOutcome.VOICEMAIL})

# Causes raised by our trunk or the network rather than by the callee. They say
# nothing about the recipient, so they must not use up the recipient's
# attempts; the trunk should lower its concurrency instead.
TRUNK_SIDE_CAUSES = frozenset({34, 38, 41, 42})
# The number itself is wrong: calling again cannot help.
PERMANENT_CAUSES = frozenset({1, 22, 28})


@dataclass(frozen=True)
class CallOutcome:
    outcome: AttemptOutcome           # one of OUTCOMES
    reason: str                       # for people: "busy (Q.850 17 user busy)"
    permanent: bool = False           # never call this number again for this alert
    charge_attempt: bool = True       # counts against the recipient's attempts
    retry_at_most_once: bool = False  # cause 21: the callee rejected the call
    trunk_side: bool = False          # the trunk or network failed, not the callee
    line_fault: bool = False          # our side failed (dialplan, audio file): shown on the line
    cause: int | None = None

    @property
    def delivered(self) -> bool:
        return self.outcome in DELIVERED

    @property
    def failure(self) -> Failure:
        """A call that delivered nothing, as the channel contract carries it: our own
        fault (dialplan, audio) is the line's; anything else the call's, with its cause."""
        if self.line_fault:
            return Failure(FailureKind.LINE, self.reason, permanent=self.permanent)
        return Failure(FailureKind.CALL, self.reason, code=self.cause, permanent=self.permanent)


def _with_cause(label: str, cause: int) -> str:
    return f"{label} (Q.850 {cause} {cause_text(cause).lower()})"


def _from_user_event(user_event: Mapping[str, str], cause: int | None) -> CallOutcome | None:
    result = (user_event.get("Result") or "").strip().lower()
    digit = (user_event.get("Digit") or "").strip()
    if result == "confirmed":
        return CallOutcome(AttemptOutcome.CONFIRMED, f"confirmed by pressing {digit or '1'}", cause=cause)
    if result == "voicemail":
        return CallOutcome(AttemptOutcome.VOICEMAIL, "answering machine: message left", cause=cause)
    if result == "listened":
        return CallOutcome(AttemptOutcome.ANSWERED, "answered and listened, not confirmed", cause=cause)
    if result == "error":
        # Our dialplan could not play the message (a missing file, a wrong sounds
        # path): the callee heard silence, so nothing was delivered. Our fault, not
        # the recipient's: try again without charging, and show it on the line.
        return CallOutcome(AttemptOutcome.FAILED, "answered, but the message could not be played "
                           "(check the audio file and [asterisk] sounds_dir)",
                           charge_attempt=False, line_fault=True, cause=cause)
    return None


def _from_cause(cause: int) -> CallOutcome | None:
    if cause in PERMANENT_CAUSES:
        return CallOutcome(AttemptOutcome.INVALID_NUMBER, _with_cause("invalid number", cause),
                           permanent=True, cause=cause)
    if cause == 17:
        return CallOutcome(AttemptOutcome.BUSY, _with_cause("busy", cause), cause=cause)
    if cause in (18, 19, 20):
        return CallOutcome(AttemptOutcome.NO_ANSWER, _with_cause("no answer", cause), cause=cause)
    if cause in RETRY_AT_MOST_ONCE_CAUSES:
        return CallOutcome(AttemptOutcome.FAILED, _with_cause("call rejected", cause),
                           retry_at_most_once=True, cause=cause)
    if cause in (34, 41, 42):
        return CallOutcome(AttemptOutcome.CONGESTION, _with_cause("trunk congestion", cause),
                           charge_attempt=False, trunk_side=True, cause=cause)
    if cause == 38:
        return CallOutcome(AttemptOutcome.FAILED, _with_cause("network out of order", cause),
                           charge_attempt=False, trunk_side=True, cause=cause)
    if cause == 27:
        return CallOutcome(AttemptOutcome.FAILED, _with_cause("destination out of order", cause), cause=cause)
    if cause in (0, 16):
        return None  # says nothing without an answer: let Reason decide
    return CallOutcome(AttemptOutcome.FAILED, _with_cause("failed", cause), cause=cause)


def _from_reason(reason: int | None, cause: int | None) -> CallOutcome:
    name = REASON_NAMES.get(reason, "unknown") if reason is not None else "no result"
    label = f"Reason {reason} {name}" if reason is not None else name
    if reason == 5:
        return CallOutcome(AttemptOutcome.BUSY, f"busy ({label})", cause=cause)
    if reason == 3:
        return CallOutcome(AttemptOutcome.NO_ANSWER, f"no answer ({label})", cause=cause)
    if reason == 8:
        # Without a cause we cannot tell 21/27 from trunk congestion; the
        # trunk is the common case and not charging errs toward calling again.
        return CallOutcome(AttemptOutcome.CONGESTION, f"congestion ({label})",
                           charge_attempt=False, trunk_side=True, cause=cause)
    if reason == 0 and not cause:
        # The channel could not even be requested: the call never left us.
        return CallOutcome(AttemptOutcome.FAILED, f"channel request failed ({label})",
                           charge_attempt=False, trunk_side=True, cause=cause)
    if cause == 16:
        # Table: normal clearing without an answer is treated as 31.
        return CallOutcome(AttemptOutcome.FAILED, _with_cause("not answered", 16), cause=cause)
    return CallOutcome(AttemptOutcome.FAILED, f"failed ({label})", cause=cause)


PBX_GONE = ("cut by our own PBX (restart or crash, Q.850 0) before the end of the message: "
            "called again, not charged")


def classify_call(reason: int | None, hangup_cause: int | None,
                  user_event: Mapping[str, str] | None, answered: bool,
                  played: bool | None = None, pbx_gone: bool = False) -> CallOutcome:
    """Turn what AMI said about one call into a ``CallOutcome``.

    ``user_event`` is the AllertaResult UserEvent's pairs (``Result``,
    ``Digit``), ``answered`` whether the channel reached state Up (or Reason 4),
    ``played`` whether the dialplan said the message started (AllertaPlaying);
    None when we cannot know (a call we did not follow from its start).
    ``pbx_gone`` whether our own PBX ended it (see ``CallTracker.pbx_gone``).
    """
    cause = hangup_cause if hangup_cause else None
    if user_event:
        outcome = _from_user_event(user_event, cause)
        if outcome is not None:
            return outcome
    if pbx_gone:
        # Not the recipient's doing, and the message was not heard to its end: our side failed.
        return CallOutcome(AttemptOutcome.FAILED, PBX_GONE, charge_attempt=False, line_fault=True, cause=0)
    if (answered or reason == 4) and played is False:
        # Answered, then hung up by Asterisk before the message started: a module our
        # dialplan needs is missing (a real Asterisk 22 then hangs up after a second).
        # Nobody heard anything: our failure, never the recipient's attempt.
        return CallOutcome(AttemptOutcome.FAILED, "answered, but the dialplan never played the message "
                           "(no AllertaPlaying: run 'allerta doctor', a module may be missing)",
                           charge_attempt=False, line_fault=True, cause=cause)
    if answered or reason == 4:
        return CallOutcome(AttemptOutcome.ANSWERED, "answered, hung up before the end of the message",
                           cause=cause)
    if cause is not None:
        outcome = _from_cause(cause)
        if outcome is not None:
            return outcome
    return _from_reason(reason, cause)
