"""What a +CMS ERROR / +CME ERROR code means for a delivery and for the modem (pure).

Codes from 3GPP TS 27.005 §3.2.5 (which imports the RP causes of 24.011 and
the TP causes of 23.040) and the vendor range 512+; see
shared/reference/gsm-modems.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.core.failures import Failure, FailureKind

CMS_NAMES: dict[int, str] = {
    1: "unassigned number", 8: "operator barring", 10: "call barred", 21: "SM transfer rejected",
    27: "destination out of order", 28: "unidentified subscriber", 29: "facility rejected",
    30: "unknown subscriber", 38: "network out of order", 41: "temporary failure", 42: "congestion",
    47: "resources unavailable", 50: "requested facility not subscribed", 69: "facility not implemented",
    95: "semantically incorrect message", 96: "invalid mandatory information", 111: "protocol error",
    127: "interworking unspecified", 192: "SC busy", 193: "no SC subscription", 194: "SC system failure",
    195: "invalid SME address", 196: "SME barred", 197: "duplicate message rejected",
    300: "ME failure", 301: "SMS service of ME reserved", 302: "operation not allowed",
    303: "operation not supported", 304: "invalid PDU mode parameter", 305: "invalid text mode parameter",
    310: "SIM not inserted", 311: "SIM PIN required", 312: "PH-SIM PIN required", 313: "SIM failure",
    314: "SIM busy", 315: "SIM wrong", 316: "SIM PUK required", 320: "memory failure",
    321: "invalid memory index", 322: "memory full", 330: "SMSC address unknown",
    331: "no network service", 332: "network timeout", 340: "no +CNMA acknowledgement expected",
    500: "unknown error", 512: "MM establishment failure", 513: "lower layer failure",
    514: "congestion", 515: "device busy or initialising",
}

# The recipient's number is the problem: retrying changes nothing.
PERMANENT_FOR_RECIPIENT = frozenset({1, 8, 10, 21, 28, 30, 96, 195, 196})
# The line (SIM, modem, radio, SMSC) is the problem: another modem may well succeed,
# and repeated ones take this modem out of rotation.
LINE_FAULTS = frozenset({38, 41, 42, 47, 192, 193, 194, 300, 301, 302, 310, 311, 312, 313, 314, 315, 316,
                         320, 322, 330, 331, 332, 500})


@dataclass(frozen=True)
class ErrorVerdict:
    failure: Failure     # what the delivery records; failure.permanent: never retry this recipient
    line_fault: bool     # counts against the modem's health


def line_failure(text: str) -> ErrorVerdict:
    """The modem, its port or its link failed without an error code: another line may succeed."""
    return ErrorVerdict(Failure(FailureKind.LINE, text), line_fault=True)


def classify_cms(code: int) -> ErrorVerdict:
    name = CMS_NAMES.get(code, "vendor-specific error" if code >= 512 else "unknown cause")
    if code in PERMANENT_FOR_RECIPIENT:
        return ErrorVerdict(Failure(FailureKind.CMS, name, code, permanent=True), line_fault=False)
    return ErrorVerdict(Failure(FailureKind.CMS, name, code), line_fault=code in LINE_FAULTS or code >= 512)


def classify_cme(code: int) -> ErrorVerdict:
    names = {3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted", 11: "SIM PIN required",
             12: "SIM PUK required", 13: "SIM failure", 14: "SIM busy", 16: "incorrect password",
             30: "no network service", 100: "unknown"}
    return ErrorVerdict(Failure(FailureKind.CME, names.get(code, "unknown cause"), code), line_fault=True)


class ReportVerdict(StrEnum):
    DELIVERED = "delivered"
    PENDING = "pending"      # an interim report: the SMSC is still trying
    FAILED = "failed"


def classify_tp_status(status: int) -> ReportVerdict:
    """What a status report's TP-Status says (3GPP TS 23.040, 9.2.3.15).

    0x00-0x1F: the transaction completed ('delivered': received, forwarded
    without confirmation, or replaced by the SMSC). 0x20-0x3F: a temporary
    error while the SMSC keeps trying ('pending': not an outcome, the final
    report follows). 0x40 and above: a permanent error, or a temporary one the
    SMSC gave up on ('failed').
    """
    if status < 0x20:
        return ReportVerdict.DELIVERED
    if status < 0x40:
        return ReportVerdict.PENDING
    return ReportVerdict.FAILED
