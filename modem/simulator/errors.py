"""+CMS / +CME error codes (3GPP TS 27.005 3.2.5 and 27.007 9.2) as the modem reports them."""
from __future__ import annotations

CMS_TEXT: dict[int, str] = {
    1: "Unassigned (unallocated) number", 8: "Operator determined barring", 10: "Call barred",
    21: "Short message transfer rejected", 27: "Destination out of service",
    28: "Unidentified subscriber", 29: "Facility rejected", 30: "Unknown subscriber",
    38: "Network out of order", 41: "Temporary failure", 42: "Congestion",
    47: "Resources unavailable, unspecified", 50: "Requested facility not subscribed",
    69: "Requested facility not implemented", 95: "Invalid short message transfer reference value",
    96: "Invalid message, unspecified", 111: "Protocol error, unspecified",
    127: "Interworking, unspecified", 192: "SC busy", 193: "No SC subscription",
    194: "SC system failure", 195: "Invalid SME address", 196: "Destination SME barred",
    197: "SM Rejected-Duplicate SM", 300: "ME failure", 301: "SMS service of ME reserved",
    302: "Operation not allowed", 303: "Operation not supported", 304: "Invalid PDU mode parameter",
    305: "Invalid text mode parameter", 310: "SIM not inserted", 311: "SIM PIN required",
    312: "PH-SIM PIN required", 313: "SIM failure", 314: "SIM busy", 315: "SIM wrong",
    316: "SIM PUK required", 317: "SIM PIN2 required", 318: "SIM PUK2 required",
    320: "Memory failure", 321: "Invalid memory index", 322: "Memory full",
    330: "SMSC address unknown", 331: "No network service", 332: "Network timeout",
    340: "No +CNMA acknowledgement expected", 500: "Unknown error",
    512: "MM establishment failure", 513: "Lower layer failure", 514: "CP error", 515: "Please wait, init or command processing in progress",
}

CME_TEXT: dict[int, str] = {
    3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
    11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure", 14: "SIM busy",
    16: "incorrect password", 30: "no network service", 100: "unknown",
}


class ModemError(Exception):
    """A command failed; the engine formats it according to AT+CMEE."""

    kind = "CME"
    texts = CME_TEXT

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code

    def render(self, cmee: int) -> str:
        if cmee == 0:
            return "ERROR"
        if cmee == 2:
            return f"+{self.kind} ERROR: {self.texts.get(self.code, 'unknown error')}"
        return f"+{self.kind} ERROR: {self.code}"


class CmeError(ModemError):
    kind = "CME"
    texts = CME_TEXT


class CmsError(ModemError):
    kind = "CMS"
    texts = CMS_TEXT


class PlainError(ModemError):
    """A bare ERROR whatever AT+CMEE says (syntax errors on most modems)."""

    def __init__(self) -> None:
        super().__init__(0)

    def render(self, cmee: int) -> str:
        return "ERROR"
