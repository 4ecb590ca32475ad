"""The contract every delivery channel (SMS modems, Asterisk voice) implements.

The dispatcher only knows this module. A channel never touches the database:
it reports what happened through the return value of ``submit``, through
``DeliveryFailed``, and through the ``ChannelEvents`` callbacks for things
that arrive later (status reports, inbound SMS, line health).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Awaitable, Protocol

from gateway.core.failures import Failure, FailureKind
from gateway.core.states import AttemptOutcome, Channel as ChannelName, LineState


class DeliveryFailed(Exception):
    """A submit that did not work, and why (``failure``).

    ``permanent`` failures (invalid number, CMS 1/21/28/96, Q.850 1/28) are
    never retried. Transient ones are retried later, on another line when one
    is free. ``charge_attempt`` is False for failures on our side of the line
    (trunk congestion, modem gone) that must not use up the recipient's
    attempts.

    ``outcome`` is what the attempt row records (voice: busy, no_answer, ...;
    ``no_line`` and ``no_route`` when nothing was placed at all; otherwise
    failed). ``cause`` is the Q.850 hangup cause of the call, whatever ended it,
    and ``started_at``/``answered_at`` the times the line reported: the attempt
    row stores them, and the voice policy rebuilds its decision from ``cause``
    (21 is retried once at most).
    """

    def __init__(self, failure: Failure, *, outcome: AttemptOutcome = AttemptOutcome.FAILED,
                 line: str | None = None, charge_attempt: bool = True, possible_duplicate: bool = False,
                 cause: int | None = None, started_at: dt.datetime | None = None,
                 answered_at: dt.datetime | None = None, duplicate_cause: str | None = None) -> None:
        super().__init__(str(failure))
        self.failure = failure
        self.outcome = outcome
        self.line = line
        self.charge_attempt = charge_attempt
        # The message may have reached the recipient anyway (fate unknown after a lost link).
        self.possible_duplicate = possible_duplicate
        # Why (a gateway.core.states.DuplicateCause), shown by 'alert status'.
        self.duplicate_cause = duplicate_cause if possible_duplicate else None
        if cause is None and failure.kind is FailureKind.CALL:
            cause = failure.code
        self.cause = cause
        self.started_at = started_at
        self.answered_at = answered_at

    @property
    def reason(self) -> str:
        """The failure as people read it (stored as the attempt's error and the delivery's last_error)."""
        return str(self.failure)

    @property
    def permanent(self) -> bool:
        return self.failure.permanent


class ChannelUnusable(Exception):
    """A channel cannot work until the operator fixes its configuration (e.g. a wrong
    AMI password). Channels normally report it on their lines and keep retrying, so
    the other channels go on; it is raised only where nothing else could make
    progress ('allerta run --once' with that channel alone), to stop with the message."""


@dataclass(frozen=True)
class OutboundMessage:
    delivery_id: int
    alert_id: int
    number: str                      # E.164, with the leading '+'
    text: str
    language: str = "it"
    audio_path: str | None = None    # voice: rendered 8 kHz WAV, without extension for Playback
    possible_duplicate: bool = False
    avoid_lines: frozenset[str] = frozenset()  # lines that just failed for this delivery
    attempt_id: int | None = None    # the attempt row: voice names its call after it (ChannelId)
    poll_options: int = 0            # voice: the call asks the alert's open poll with this many options


@dataclass
class SubmitReceipt:
    line: str                        # modem label or trunk name
    references: list[int] = field(default_factory=list)  # SMS: one TP-MR per part, in order
    outcome: AttemptOutcome = AttemptOutcome.SENT  # sms: sent; voice: confirmed | answered | voicemail
    started_at: dt.datetime | None = None
    answered_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    cause: int | None = None         # voice: the Q.850 cause the call ended with


@dataclass(frozen=True)
class StatusReport:
    """The network's word on one SMS part: TP-MR (the +CMGS reference) and whether it arrived."""
    reference: int
    delivered: bool
    detail: str                      # e.g. "TP-ST 0x00"


@dataclass(frozen=True)
class ReceivedPart:
    """One received SMS segment as a modem delivered it (a message without a concatenation header
    is one part: reference 0, parts 1, seq 1). The modem deletes its copy only once the engine has
    committed it; the engine assembles the parts of one message (gateway/core/inbound.py).

    ``text`` is the part's own text: UTF-16 surrogate pairs joined, but a half pair left as it is
    (a phone may split an emoji across two parts; assembling joins the halves again)."""
    line: str
    sender: str                      # E.164 with '+', national digits, or an alphanumeric name
    text: str
    sent_at: dt.datetime | None      # the SMSC time stamp, UTC (naive)
    alphanumeric: bool = False       # TON 101: a name ("TIM", "Comune"), nobody to answer
    reference: int = 0               # UDH concatenation reference (IE 0x00: 8 bit, IE 0x08: 16 bit)
    parts: int = 1
    seq: int = 1
    received_at: dt.datetime | None = None   # when the modem read it (UTC, naive); None: at the commit


@dataclass
class LineStatus:
    """Health of one modem or trunk, written to the database by the engine."""
    channel: ChannelName
    label: str
    state: LineState
    port: str | None = None
    imei: str | None = None
    signal: int | None = None        # CSQ 0..31, 99 unknown
    registration: str | None = None  # home | roaming | searching | denied | unregistered
    operator: str | None = None
    sim_state: str | None = None
    smsc: str | None = None          # SMS centre number on the SIM ("" none), for the doctor
    last_error: str | None = None
    sent_today: int = 0
    daily_cap: int | None = None
    sent_total: int = 0
    failed_total: int = 0
    in_use: int = 0                  # voice: calls up now
    limit: int | None = None         # voice: channel limit
    rate_per_minute: float | None = None  # what this line can do now (segments or calls), for ETAs


class ChannelEvents(Protocol):
    """Callbacks a channel uses for what happens after ``submit`` returned.

    They are always called on the event loop thread.
    """

    def status_reports(self, line: str, reports: list[StatusReport]) -> Awaitable[None] | None:
        """Record these reports. The modem deletes its stored copies once they are safe: when the
        returned future ended (the engine records off its event loop), or at once for None."""

    def inbound_part(self, part: ReceivedPart) -> Awaitable[None] | None:
        """Record one received part. The modem deletes (or acknowledges, +CNMA) its copy once the
        returned future ended: the part is committed."""

    def line_status(self, status: LineStatus) -> None: ...

    def capacity_available(self) -> None:
        """A line became free (rate limit elapsed, modem back): look for work now."""

    def late_call_outcome(self, delivery_id: int, attempt_id: int, outcome: AttemptOutcome, *,
                          line: str | None, answered_at: dt.datetime | None,
                          cause: int | None) -> Awaitable[None] | None:
        """What a call no submit waits for came to: one still up when the engine restarted,
        followed to its end. It may only make the delivery better (Store.record_late_call_outcome)."""

    def poll_vote(self, delivery_id: int, option: int, voted_at: dt.datetime) -> Awaitable[None] | None:
        """A key pressed for the poll asked after the message in the call of ``delivery_id``
        (gateway.core.call_votes); as soon as it is pressed, or read back from AstDB."""


class Channel(Protocol):
    name: str

    async def start(self, events: ChannelEvents) -> None:
        """Open lines. Lines that cannot be opened are reported down, not raised."""

    async def stop(self) -> None:
        """Finish what is in flight and close every line."""

    def free_slots(self) -> int:
        """How many submits could start right now without waiting."""

    def rate_per_minute(self) -> float:
        """Messages (SMS parts or calls) per minute the lines that are up can do; for ETAs."""

    async def submit(self, message: OutboundMessage) -> SubmitReceipt:
        """Send one message; raise DeliveryFailed on failure."""
