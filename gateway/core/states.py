"""The names the engine, the CLI and the panel share: channels, states and outcomes.

Each is a ``StrEnum``: a member *is* its string ("pending" == DeliveryState.PENDING,
json.dumps gives "pending", SQLAlchemy stores "pending"), so the database rows and
the JSON API read exactly as before; the code compares members, and a typo is an
AttributeError at import instead of a state nobody ever sets.
"""
from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Channel(StrEnum):
    SMS = "sms"
    VOICE = "voice"


class AlertState(StrEnum):
    DRAFT = "draft"
    AWAITING_APPROVAL = "awaiting_approval"
    ACTIVE = "active"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    COMPLETED = "completed"   # nothing left to do: every delivery final (Store.complete_finished_alerts)


class DeliveryState(StrEnum):
    PENDING = "pending"            # waiting to be claimed (now or at next_attempt_at)
    SUBMITTING = "submitting"      # claimed: on its way to a modem or a trunk
    SENT = "sent"                  # SMS accepted by the network, awaiting status reports
    DELIVERED = "delivered"        # SMS: every part reported delivered
    CONFIRMED = "confirmed"        # voice: the callee pressed 1
    ANSWERED = "answered"          # voice: answered, not confirmed
    VOICEMAIL = "voicemail"        # voice: left on an answering machine
    FAILED = "failed"
    CANCELLED = "cancelled"


# Nothing has happened to these yet that cannot still change.
OPEN_DELIVERY_STATES = (DeliveryState.PENDING, DeliveryState.SUBMITTING)
# The message got to someone: the panel's "reached" (a person is reached when any of their numbers is).
REACHED_DELIVERY_STATES = (DeliveryState.DELIVERED, DeliveryState.CONFIRMED, DeliveryState.ANSWERED,
                           DeliveryState.VOICEMAIL)

# Delivery states grouped as an operator reads them (a state not listed counts as in progress): the
# alert page, the API and the after-action report count with this one table, so their figures agree.
DELIVERY_BUCKETS = {
    DeliveryState.PENDING: "queued",
    DeliveryState.SUBMITTING: "in_progress",
    DeliveryState.SENT: "sent",
    **{state: "reached" for state in REACHED_DELIVERY_STATES},
    DeliveryState.FAILED: "failed",
    DeliveryState.CANCELLED: "cancelled",
}
BUCKET_ORDER = ("queued", "in_progress", "sent", "reached", "failed", "cancelled")


class AttemptOutcome(StrEnum):
    """What one try achieved (attempts.outcome); a call's outcomes are also the voice
    delivery's final states (confirmed, answered, voicemail)."""
    # Claimed ahead, not handed to a line yet (voice: Store.mark_placing turns it into
    # in_flight just before the call is placed), so a restart knows it never left.
    CLAIMED = "claimed"
    IN_FLIGHT = "in_flight"
    INTERRUPTED = "interrupted"    # the engine stopped while it was in flight
    SENT = "sent"                  # SMS accepted by the network
    CONFIRMED = "confirmed"
    ANSWERED = "answered"
    VOICEMAIL = "voicemail"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    INVALID_NUMBER = "invalid_number"
    NO_LINE = "no_line"            # no trunk free or up: no call was placed
    NO_ROUTE = "no_route"          # no trunk may dial the number: no call was placed
    FAILED = "failed"


class PartStatus(StrEnum):
    """One SMS segment (sms_parts.status), as its status report left it."""
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class ApprovalDecision(StrEnum):
    """The two-person rule's word on one alert (alert_approvals.decision)."""
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    BYPASSED = "bypassed"          # sent at once by an approver, with a reason


class LineState(StrEnum):
    STARTING = "starting"
    UP = "up"
    DOWN = "down"
    SUSPENDED = "suspended"        # out of rotation for a while (not registered, repeated faults)
    STOPPED = "stopped"            # the engine exited


def parse_channels(stored: str) -> tuple[Channel, ...]:
    """An alert's channels as stored ('sms', 'voice', 'sms,voice'), in that order."""
    return tuple(Channel(name) for name in stored.split(",") if name)


def join_channels(channels: Iterable[str]) -> str:
    """The stored form of ``parse_channels``; refuses a name that is no channel."""
    return ",".join(Channel(name) for name in channels)


class NodeState(StrEnum):
    """An engine sharing the database (gateway.core.nodes)."""
    UP = "up"             # heartbeating (or late, until someone takes its work over)
    STOPPED = "stopped"   # stopped cleanly
    DOWN = "down"         # stopped heartbeating; its work in flight was taken back by another node


class DuplicateCause(StrEnum):
    """Why a delivery is flagged 'possibly sent twice': what the operator reads in
    'alert status' must name the real cause, not always an engine restart."""
    ENGINE_RESTART = "engine_restart"     # the engine died or stopped mid-attempt and resent it
    ENGINE_STOPPED = "engine_stopped"     # stopped with a call still up; it may have gone on
    AMI_LINK_LOST = "ami_link_lost"       # the AMI link dropped and the call's fate was not recovered
    NO_END_SEEN = "no_end_seen"           # an answered call whose end event never came
    NODE_DOWN = "node_down"               # its engine stopped heartbeating; another node sent it again


DUPLICATE_CAUSE_LABELS = {
    DuplicateCause.ENGINE_RESTART: "engine restart",
    DuplicateCause.ENGINE_STOPPED: "engine stopped during the call",
    DuplicateCause.AMI_LINK_LOST: "AMI link lost",
    DuplicateCause.NO_END_SEEN: "end of the call not seen",
    DuplicateCause.NODE_DOWN: "its engine stopped (node down), taken over by another",
}


class InboundKind(StrEnum):
    """What an incoming SMS was made of (inbound_sms.kind), the Inbox's filters."""
    COMMAND = "command"              # STOP, STOP INFO, ISCRIVI, ZONA, LINGUA, INFO, a zone chosen by number
    CONFIRMATION = "confirmation"    # OK / RICEVUTO / 1 answering an alert that asks for it
    HELP_REQUEST = "help_request"    # AIUTO, SOS, "siamo bloccati"... after an alert
    POLL_ANSWER = "poll_answer"      # a number answering an alert's poll
    UNRECOGNISED = "unrecognised"    # nothing we understood: help reply (once a day)
    IGNORED = "ignored"              # alphanumeric sender, short code, our own modems, flood: no reply


class ReplyReason(StrEnum):
    """Why an SMS reply (sms_replies.reason) was written."""
    STOPPED = "stopped"              # STOP confirmed, with how to come back
    STOPPED_INFO = "stopped_info"
    REGISTERED = "registered"
    ZONE_MENU = "zone_menu"          # the numbered list of zones
    ZONE_CHANGED = "zone_changed"
    LANGUAGE_CHANGED = "language_changed"
    CONFIRMED = "confirmed"
    HELP_REQUEST = "help_request"    # always says: call 112 if life is in danger
    POLL_VOTE = "poll_vote"
    COMMANDS = "commands"            # INFO or unrecognised: the list of commands
    OPERATOR = "operator"            # written by an operator from the Inbox (audited)


class ReplyState(StrEnum):
    PENDING = "pending"
    SUBMITTING = "submitting"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AlertCategory(StrEnum):
    """The law treats them differently (issue 14): information respects STOP INFO, quiet hours and the
    election lock; an emergency ignores all three."""
    EMERGENCY = "emergency"
    INFORMATION = "information"


class CapCategory(StrEnum):
    """CAP 1.2 <category> values (OASIS CAP 1.2, 3.2.2): what an emergency is about."""
    GEO = "Geo"
    MET = "Met"
    SAFETY = "Safety"
    SECURITY = "Security"
    RESCUE = "Rescue"
    FIRE = "Fire"
    HEALTH = "Health"
    ENV = "Env"
    TRANSPORT = "Transport"
    INFRA = "Infra"
    CBRNE = "CBRNE"
    OTHER = "Other"
