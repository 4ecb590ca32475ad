"""Modem models the simulator can impersonate.

A profile is data (identity strings, capability lists, URCs) plus a couple of
flags the AT engine checks. Quirks follow what real units do; see
/work/shared/reference/gsm-modems.md section 4.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    name: str
    manufacturer: str
    model: str
    revision: str
    tac: str  # 8-digit Type Allocation Code, the first part of the IMEI
    operator: str = "I TIM"
    clac: tuple[str, ...] = ()
    clac_style: str = "lines"  # "lines" (one per line), "at_lines" ("AT" prefix), "single" (+CLAC: a,b,c)
    cscs_supported: tuple[str, ...] = ("IRA", "GSM", "UCS2")
    # Allowed values for each +CNMI parameter, and the text of AT+CNMI=?.
    cnmi_ranges: tuple[tuple[int, ...], ...] = ((0, 1, 2), (0, 1, 2, 3), (0, 2), (0, 1, 2), (0, 1))
    cnmi_test: str = "+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"
    cnmi_default: tuple[int, int, int, int, int] = (2, 1, 0, 0, 0)
    unknown_command_reply: str = "ERROR"  # Huawei: "COMMAND NOT SUPPORT"
    creg_unquoted: bool = False  # Huawei: +CREG: 1, E006B, ABE0016
    lac: str = "5B2A"
    cell_id: str = "0000C3F1"
    boot_urcs: tuple[str, ...] = ()  # written after power-on / replug
    boot_urc_spacing: float = 0.05
    periodic_urcs: tuple[str, ...] = ()  # random URCs until AT^CURC=0
    periodic_urc_interval: tuple[float, float] = (5.0, 20.0)
    extra_commands: frozenset[str] = frozenset()  # vendor commands answered with OK
    unsupported: frozenset[str] = frozenset()  # standard commands this model answers as unknown
    # AT+CBC (battery): 3GPP's <bcs>,<bcl>; SIM800 adds the voltage in mV. A USB dongle has none.
    cbc_reply: str = "+CBC: 0,100"
    ussd_reply: str = "Credito residuo: 5,00 EUR. Offerta attiva fino al 31/12."
    memory_capacity: dict[str, int] = field(default_factory=lambda: {"SM": 30, "ME": 100, "SR": 20})
    # Where an SMS-STATUS-REPORT goes unless AT+CNMI <ds>=1 routes it to the TE as +CDS
    # (27.005 3.4.1 leaves it to the model; see docs/simulators.md, "Status reports"):
    # "received": stored with the incoming SMS, in <mem3>, announced "+CDSI: <mem3>,<i>"
    #   when <ds>=2 (Huawei sticks, Telit 2G modules, Siemens; what smstools3 and
    #   gammu-smsd read by polling their inbox memory);
    # "SR": the status-report memory, "+CDSI: "SR",<i>" (Telit 3G modules);
    # "none": never stored, so <ds>=0 loses it (SIM800: no report memory, <ds> 0 or 1).
    report_storage: str = "received"
    # USSD strings as hex of packed GSM-7 both ways (Huawei sticks with ^USSDMODE=0, gammu's
    # F_ENCODED_USSD), instead of text in the AT+CSCS character set.
    ussd_packed: bool = False


_COMMON_CLAC = (
    "+CGMI", "+CGMM", "+CGMR", "+CGSN", "+CIMI", "+CFUN", "+CMEE", "+CPIN", "+CLAC", "+CSQ",
    "+CREG", "+COPS", "+CMGF", "+CSCA", "+CSMP", "+CSCS", "+CPMS", "+CNMI", "+CLIP", "+CRC",
    "+CVHU", "+CMGS", "+CMGR", "+CMGD", "+CMGL", "+CSMS", "+CNMA", "+CHUP", "+CSDH", "+VTS", "+CGREG", "+CUSD", "+CPBS",
    "+CGATT",
)

GENERIC = Profile(
    name="generic", manufacturer="Allerta", model="SIM-GSM-1", revision="1.0.0 (simulator)",
    tac="35890600", clac=_COMMON_CLAC + ("+CBC",),
)

HUAWEI = Profile(
    name="huawei", manufacturer="huawei", model="E3531", revision="22.521.23.00.00",
    tac="86106502", clac=_COMMON_CLAC + ("^CURC", "^CVOICE", "^DTMF", "^USSDMODE", "^SYSCFG"),
    clac_style="single", unknown_command_reply="COMMAND NOT SUPPORT", creg_unquoted=True,
    lac="E006B", cell_id="ABE0016",
    periodic_urcs=("^RSSI:13", "^BOOT:48175390,0,0,0,89", "^MODE:5,4", "^SRVST:0",
                   "^SIMST:1", '^HCSQ:"LTE",59,50,161,24'),
    extra_commands=frozenset({"^CURC", "^CVOICE", "^USSDMODE", "^PORTSEL", "^SYSCFG"}),
    unsupported=frozenset({"+CBC"}),  # bus-powered: no battery to report (CGREG, CUSD, CPBS it has)
    ussd_packed=True,
    memory_capacity={"SM": 30, "ME": 100},  # AT+CPMS=? ("SM","ME"),("SM","ME"),("SM","ME") (gammu's E3372 dump)
)

SIM800 = Profile(
    name="sim800", manufacturer="SIMCOM_Ltd", model="SIMCOM_SIM800L", revision="Revision:1418B04SIM800L24",
    tac="86267602", clac=_COMMON_CLAC + ("+CBC", "+DDET", "+CLTS", "+CIPSTART"), clac_style="at_lines",
    cbc_reply="+CBC: 0,95,4120",
    cscs_supported=("IRA", "GSM", "UCS2", "HEX", "PCCP", "PCDN", "8859-1"),
    cnmi_ranges=((0, 1, 2, 3), (0, 1, 2, 3), (0, 2), (0, 1), (0, 1)),
    cnmi_test="+CNMI: (0-3),(0-3),(0,2),(0,1),(0,1)",
    boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"),
    boot_urc_spacing=0.2,
    extra_commands=frozenset({"+DDET", "+CLTS"}),
    memory_capacity={"SM": 50, "ME": 50},  # no "SR": AT+CPMS="SR" is +CMS ERROR 302
    report_storage="none",
)

# Telit's 3G modules (UC864-E): a status-report memory of their own, "+CDSI: "SR",<i>"; the
# engine's batched collection (modem/stored_reports.py) lists that memory whole.
TELIT = Profile(
    name="telit", manufacturer="Telit", model="UC864-E", revision="08.01.107",
    tac="35613404", clac=_COMMON_CLAC + ("+CBC", "#SELINT", "#QSS"),
    cnmi_ranges=((0, 1, 2, 3), (0, 1, 2, 3), (0, 2), (0, 1, 2), (0, 1)),
    cnmi_test="+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)",
    extra_commands=frozenset({"#SELINT", "#QSS"}),
    report_storage="SR",
)

PROFILES: dict[str, Profile] = {p.name: p for p in (GENERIC, HUAWEI, SIM800, TELIT)}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown modem profile {name!r}; choose from {', '.join(PROFILES)}") from None


def luhn_check_digit(digits: str) -> str:
    """Check digit that makes ``digits`` + result pass the Luhn test (as IMEIs do)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:  # doubled: rightmost payload digit sits next to the check digit
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


def _stable_digits(seed: int | str, index: int, purpose: str, count: int) -> str:
    digest = hashlib.sha256(f"{purpose}:{seed}:{index}".encode()).hexdigest()
    return str(int(digest, 16))[-count:].zfill(count)


def make_imei(profile: Profile, seed: int | str, index: int) -> str:
    """15-digit IMEI: the profile's TAC, a serial from (seed, index), Luhn digit."""
    body = profile.tac + _stable_digits(seed, index, "imei", 6)
    return body + luhn_check_digit(body)


def make_imsi(seed: int | str, index: int) -> str:
    """Italian TIM IMSI (MCC 222, MNC 01) stable for (seed, index)."""
    return "22201" + _stable_digits(seed, index, "imsi", 10)
