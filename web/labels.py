"""What the identifiers stored in the database are called on screen.

States, decisions, roles, channels and needs are stored as English identifiers
(``awaiting_approval``, ``text_only``) that the engine, the CLI and the API rely
on; operators read them in their language. This is the one table that names
them: templates use the ``label`` filter, the page's script gets the names in
the JSON it polls (``labels_for``). The names are lazy, so each request
translates them into its user's language.

The same English word may need different Italian words (an alert is
"Annullata", a message "Annullato"), hence a gettext context per kind.
"""
from __future__ import annotations

from typing import Iterable

from flask_babel import lazy_gettext, lazy_pgettext

LABELS = {
    "alert_state": {
        "draft": lazy_pgettext("alert state", "Draft"),
        "awaiting_approval": lazy_pgettext("alert state", "Awaiting approval"),
        "active": lazy_pgettext("alert state", "Active"),
        "completed": lazy_pgettext("alert state", "Completed"),
        "cancelled": lazy_pgettext("alert state", "Cancelled"),
        "rejected": lazy_pgettext("alert state", "Rejected"),
    },
    # A delivery (one number on one channel) and one attempt at it.
    "delivery_state": {
        "pending": lazy_pgettext("delivery state", "Queued"),
        "submitting": lazy_pgettext("delivery state", "Being sent"),
        "ringing": lazy_pgettext("delivery state", "Ringing"),
        "in_flight": lazy_pgettext("delivery state", "Being sent"),
        "claimed": lazy_pgettext("delivery state", "Being sent"),   # a call claimed ahead (placing_journal.py)
        "sent": lazy_pgettext("delivery state", "Sent"),
        "delivered": lazy_pgettext("delivery state", "Delivered"),
        "confirmed": lazy_pgettext("delivery state", "Confirmed (pressed 1)"),
        "answered": lazy_pgettext("delivery state", "Answered"),
        "voicemail": lazy_pgettext("delivery state", "Voicemail"),
        "busy": lazy_pgettext("delivery state", "Busy"),
        "no_answer": lazy_pgettext("delivery state", "No answer"),
        "congestion": lazy_pgettext("delivery state", "Network congestion"),
        "invalid_number": lazy_pgettext("delivery state", "Invalid number"),
        "interrupted": lazy_pgettext("delivery state", "Interrupted"),
        "failed": lazy_pgettext("delivery state", "Failed"),
        "cancelled": lazy_pgettext("delivery state", "Cancelled"),
        # Tries of a call that placed none (asterisk/voice_channel.py): shown on the attempt, never a final state.
        "no_line": lazy_pgettext("delivery state", "No line free"),
        "no_route": lazy_pgettext("delivery state", "No trunk may dial this number"),
    },
    # Deliveries grouped as the progress table counts them (web/progress.py, BUCKETS).
    "bucket": {
        "queued": lazy_gettext("Queued"), "in_progress": lazy_gettext("In progress"), "sent": lazy_gettext("Sent"),
        "reached": lazy_gettext("Reached"), "failed": lazy_gettext("Failed"), "cancelled": lazy_gettext("Cancelled"),
    },
    "approval": {
        "pending": lazy_pgettext("approval", "Waiting for a decision"),
        "approved": lazy_pgettext("approval", "Approved"),
        "rejected": lazy_pgettext("approval", "Rejected"),
        "bypassed": lazy_pgettext("approval", "Sent without approval"),
    },
    "line_state": {
        "starting": lazy_pgettext("line state", "Starting"),
        "up": lazy_pgettext("line state", "Up"),
        "down": lazy_pgettext("line state", "Down"),
        "suspended": lazy_pgettext("line state", "Out of rotation"),
        "stopped": lazy_pgettext("line state", "Engine stopped"),
    },
    "role": {
        "admin": lazy_pgettext("role", "Administrator"),
        "approver": lazy_pgettext("role", "Approver"),
        "operator": lazy_pgettext("role", "Operator"),
        "viewer": lazy_pgettext("role", "Viewer"),
    },
    "token_state": {
        "active": lazy_pgettext("token state", "Active"),
        "revoked": lazy_pgettext("token state", "Revoked"),
        "expired": lazy_pgettext("token state", "Expired"),
        "owner disabled": lazy_pgettext("token state", "Owner disabled"),
    },
    "channel": {"sms": lazy_pgettext("channel", "SMS"), "voice": lazy_pgettext("channel", "Voice")},
    "needs": {"text_only": lazy_gettext("text only (deaf)"), "voice_only": lazy_gettext("voice only (blind)")},
    # Q.850 cause a call ended with (attempts.cause), in words an operator understands; the
    # panel shows the number too, as the PBX and the carrier name it. Causes not listed show
    # their number only. (The PBX-side table, in Asterisk's own English, is asterisk/q850.py.)
    "call_cause": {
        "1": lazy_pgettext("call cause", "Number does not exist"),
        "3": lazy_pgettext("call cause", "No route to the destination"),
        "16": lazy_pgettext("call cause", "Normal hang-up"),
        "17": lazy_pgettext("call cause", "Line busy"),
        "18": lazy_pgettext("call cause", "No response from the phone"),
        "19": lazy_pgettext("call cause", "Rang, nobody answered"),
        "20": lazy_pgettext("call cause", "Phone off or unreachable"),
        "21": lazy_pgettext("call cause", "Call rejected"),
        "22": lazy_pgettext("call cause", "Number changed"),
        "27": lazy_pgettext("call cause", "Destination out of order"),
        "28": lazy_pgettext("call cause", "Invalid number format"),
        "31": lazy_pgettext("call cause", "Normal, unspecified"),
        "34": lazy_pgettext("call cause", "No circuit free"),
        "38": lazy_pgettext("call cause", "Network out of order"),
        "41": lazy_pgettext("call cause", "Temporary failure"),
        "42": lazy_pgettext("call cause", "Exchange congested"),
        "44": lazy_pgettext("call cause", "Requested channel not available"),
        "47": lazy_pgettext("call cause", "Resources unavailable"),
        "50": lazy_pgettext("call cause", "Service not subscribed"),
        "52": lazy_pgettext("call cause", "Outgoing calls barred"),
        "54": lazy_pgettext("call cause", "Incoming calls barred"),
        "58": lazy_pgettext("call cause", "Bearer capability not available"),
        "88": lazy_pgettext("call cause", "Incompatible destination"),
        "102": lazy_pgettext("call cause", "Timer expired"),
        "127": lazy_pgettext("call cause", "Interworking, unspecified"),
    },
    "category": {"emergency": lazy_pgettext("alert category", "Emergency"),
                 "information": lazy_pgettext("alert category", "Public-utility information")},
    # CAP 1.2 <category> (gateway.core.states.CapCategory): what an emergency is about.
    "cap_category": {
        "Geo": lazy_pgettext("cap category", "Geophysical (earthquake, landslide)"),
        "Met": lazy_pgettext("cap category", "Weather (flood, storm, heat)"),
        "Safety": lazy_pgettext("cap category", "Public safety (general)"),
        "Security": lazy_pgettext("cap category", "Security (law enforcement)"),
        "Rescue": lazy_pgettext("cap category", "Rescue and recovery"),
        "Fire": lazy_pgettext("cap category", "Fire"),
        "Health": lazy_pgettext("cap category", "Health"),
        "Env": lazy_pgettext("cap category", "Environment (pollution)"),
        "Transport": lazy_pgettext("cap category", "Transport"),
        "Infra": lazy_pgettext("cap category", "Utilities and infrastructure"),
        "CBRNE": lazy_pgettext("cap category", "Chemical, biological, nuclear, explosive"),
        "Other": lazy_pgettext("cap category", "Other"),
    },
    # What an incoming SMS was made of (gateway.core.states.InboundKind), the Inbox's filters.
    "inbound_kind": {
        "command": lazy_pgettext("inbound kind", "Command"),
        "confirmation": lazy_pgettext("inbound kind", "Confirmation"),
        "help_request": lazy_pgettext("inbound kind", "Help request"),
        "poll_answer": lazy_pgettext("inbound kind", "Poll answer"),
        "unrecognised": lazy_pgettext("inbound kind", "Unrecognised"),
        "ignored": lazy_pgettext("inbound kind", "Ignored (no reply)"),
    },
    "reply_state": {
        "pending": lazy_pgettext("reply state", "Queued"),
        "submitting": lazy_pgettext("reply state", "Being sent"),
        "sent": lazy_pgettext("reply state", "Sent"),
        "failed": lazy_pgettext("reply state", "Failed"),
        "cancelled": lazy_pgettext("reply state", "Cancelled"),
    },
    "reply_reason": {
        "stopped": lazy_pgettext("reply reason", "STOP confirmed"),
        "stopped_info": lazy_pgettext("reply reason", "STOP INFO confirmed"),
        "registered": lazy_pgettext("reply reason", "Registration"),
        "zone_menu": lazy_pgettext("reply reason", "List of zones"),
        "zone_changed": lazy_pgettext("reply reason", "Zone changed"),
        "language_changed": lazy_pgettext("reply reason", "Language changed"),
        "confirmed": lazy_pgettext("reply reason", "Confirmation received"),
        "help_request": lazy_pgettext("reply reason", "Help request received"),
        "poll_vote": lazy_pgettext("reply reason", "Vote received"),
        "commands": lazy_pgettext("reply reason", "List of commands"),
        "operator": lazy_pgettext("reply reason", "Operator's reply"),
    },
    "audio_source": {"tts": lazy_pgettext("audio source", "Speech from the text"),
                     "recording": lazy_pgettext("audio source", "Recording")},
}


def label(value: str | None, kind: str) -> str:
    """The on-screen name of a stored identifier; an identifier the table does not know is shown as it is
    (a state a newer engine writes must not break the page)."""
    if value is None:
        return ""
    name = LABELS[kind].get(value)
    return str(name) if name is not None else value


def cause(value: str | None) -> str:
    """A call's Q.850 cause as the attempts table shows it: "17 · Utente occupato"."""
    if not value:
        return ""
    name = LABELS["call_cause"].get(value)
    return f"{value} · {name}" if name is not None else value


def labels(values: Iterable[str] | None, kind: str) -> str:
    """Several identifiers, e.g. an alert's channels (Alert.delivery_channels)."""
    if not values:
        return ""
    return ", ".join(label(item, kind) for item in values)


def labels_for(kind: str) -> dict[str, str]:
    """Every name of one kind, translated now: for the JSON the page's script polls."""
    return {value: str(name) for value, name in LABELS[kind].items()}
