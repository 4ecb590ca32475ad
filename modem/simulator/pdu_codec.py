"""PDUs the simulated network produces and consumes (3GPP TS 23.040 / 27.005).

Decoding a submitted PDU leans on ``gsmmodem.pdu.decodeSmsPdu`` (which already
handles the concatenation UDH); this module adds what it does not do: checking
the AT+CMGS length, accepting a PDU with or without its SMSC field, reading
the data coding scheme, and building SMS-DELIVER and SMS-STATUS-REPORT PDUs.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gsmmodem.pdu import Concatenation, decodeSmsPdu, encodeGsm7, packSeptets

from gateway.core.sms_text import gsm7_septets, join_utf16, pack_septets, septets_needed


class PduError(ValueError):
    """The PDU cannot be accepted (the modem answers +CMS ERROR: 304)."""


@dataclass(frozen=True)
class DecodedSubmit:
    destination: str
    text: str
    part: int
    parts: int
    concat_ref: int | None
    client_reference: int
    encoding: str
    status_report_requested: bool
    smsc: str | None


_ENCODINGS = {0: "gsm7", 1: "8bit", 2: "ucs2"}


def _data_coding(dcs: int) -> str:
    if dcs & 0xC0 == 0:
        return _ENCODINGS.get((dcs >> 2) & 0x03, "gsm7")
    if dcs & 0xF0 == 0xF0:  # message class group: bit 2 selects 8-bit
        return "8bit" if dcs & 0x04 else "gsm7"
    return "gsm7"


def split_submit(hex_pdu: str, tpdu_length: int) -> bytes:
    """Return the full PDU (SMSC field first) for what followed AT+CMGS=<tpdu_length>.

    Clients differ: python-gsmmodem-new sends "00" (use the stored SMSC), gammu
    sends the SMSC address; a few send the bare TPDU. The length only ever
    counts the TPDU octets.
    """
    try:
        octets = bytes.fromhex(hex_pdu.strip())
    except ValueError as exc:
        raise PduError(f"not hexadecimal: {exc}") from exc
    if not octets:
        raise PduError("empty PDU")
    if len(octets) == 1 + octets[0] + tpdu_length:
        return octets
    if len(octets) == tpdu_length and octets[0] & 0x03 == 0x01:
        return b"\x00" + octets
    raise PduError(f"length mismatch: AT+CMGS={tpdu_length} but {len(octets)} octets received")


def decode_submit(hex_pdu: str, tpdu_length: int) -> DecodedSubmit:
    full = split_submit(hex_pdu, tpdu_length)
    tpdu = full[1 + full[0]:]
    first = tpdu[0]
    if first & 0x03 != 0x01:
        raise PduError("not an SMS-SUBMIT")
    try:
        address_digits = tpdu[2]
        dcs_index = 2 + 2 + (address_digits + 1) // 2 + 1
        dcs = tpdu[dcs_index]
        _check_user_data_length(tpdu, dcs_index, dcs)
        decoded = decodeSmsPdu(bytearray(full))
    except PduError:
        raise
    except Exception as exc:  # truncated PDUs raise IndexError/StopIteration/EncodingError
        raise PduError(f"undecodable SMS-SUBMIT: {exc!r}") from exc
    if decoded.get("type") != "SMS-SUBMIT" or "text" not in decoded:
        raise PduError("undecodable SMS-SUBMIT")
    concat = next((ie for ie in decoded.get("udh", []) if isinstance(ie, Concatenation)), None)
    return DecodedSubmit(
        destination=decoded["number"] or "",
        # gsmmodem's decoder leaves an emoji as two surrogate halves, which the UTF-8 log then refused.
        text=join_utf16(decoded["text"]),
        part=concat.number if concat else 1,
        parts=concat.parts if concat else 1,
        concat_ref=concat.reference if concat else None,
        client_reference=decoded["reference"],
        encoding=_data_coding(dcs),
        status_report_requested=bool(first & 0x20),
        smsc=decoded.get("smsc"),
    )


def _check_user_data_length(tpdu: bytes, dcs_index: int, dcs: int) -> None:
    """TP-UDL must account for exactly the octets that follow (decodeSmsPdu does not check)."""
    validity_format = (tpdu[0] >> 3) & 0x03
    udl_index = dcs_index + 1 + {0: 0, 2: 1}.get(validity_format, 7)
    udl = tpdu[udl_index]
    expected = (udl * 7 + 7) // 8 if _data_coding(dcs) == "gsm7" else udl
    actual = len(tpdu) - udl_index - 1
    if actual != expected:
        raise PduError(f"TP-UDL {udl} needs {expected} octets, {actual} present")


def encode_address(number: str) -> bytes:
    """TP address field: digit count, type of address, swapped BCD."""
    international = number.startswith("+")
    digits = number.lstrip("+")
    if not digits.isdigit():
        raise ValueError(f"not a phone number: {number!r}")
    return bytes([len(digits), 0x91 if international else 0x81]) + _semi_octets(digits)


def encode_smsc(number: str | None) -> bytes:
    if not number:
        return b"\x00"
    digits = number.lstrip("+")
    body = bytes([0x91 if number.startswith("+") else 0x81]) + _semi_octets(digits)
    return bytes([len(body)]) + body


def _semi_octets(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def encode_timestamp(when: dt.datetime) -> bytes:
    """7-octet SCTS with the timezone in quarters of an hour."""
    offset = when.utcoffset() or dt.timedelta(0)
    quarters = int(abs(offset.total_seconds()) // 900)
    zone = f"{quarters:02d}"
    raw = when.strftime("%y%m%d%H%M%S") + zone
    octets = bytearray(_semi_octets(raw))
    if offset.total_seconds() < 0:
        octets[-1] |= 0x08
    return bytes(octets)


# 23.040 §9.2.3.24: the concatenation information element, 8-bit reference (IE 0x00, 6 octets of
# UDH with its length) or 16-bit reference (IE 0x08, 7 octets).
SINGLE_GSM7, SINGLE_UCS2_OCTETS = 160, 140
PART_GSM7 = {False: 153, True: 152}
PART_UCS2_UNITS = {False: 67, True: 66}


def packed_gsm7_hex(text: str) -> str:
    """Text as hex of packed GSM-7 septets: how Huawei sticks carry USSD strings both ways."""
    return bytes(packSeptets(encodeGsm7(text))).hex().upper()


@dataclass(frozen=True)
class Concat:
    reference: int
    parts: int
    seq: int
    wide: bool = False    # 16-bit reference (IE 0x08)

    def header(self) -> bytes:
        if self.wide:
            return bytes([0x06, 0x08, 0x04, (self.reference >> 8) & 0xFF, self.reference & 0xFF,
                          self.parts, self.seq])
        return bytes([0x05, 0x00, 0x03, self.reference & 0xFF, self.parts, self.seq])


def encode_sender(sender: str) -> bytes:
    """TP-OA: a phone number, or an alphanumeric name (TON 101, GSM-7 packed, at most 11 characters)
    as operators and companies send from ("TIM", "Comune")."""
    if sender.lstrip("+").isdigit():
        return encode_address(sender)
    septets = gsm7_septets(sender) if septets_needed(sender) is not None else None
    if not septets or len(septets) > 11:
        raise ValueError(f"not a phone number nor an alphanumeric sender (GSM-7, 1 to 11 characters): {sender!r}")
    # The length counts the semi-octets the packed name fills.
    return bytes([(len(septets) * 7 + 3) // 4, 0xD0]) + pack_septets(septets)


def split_for_delivery(text: str, wide: bool = False) -> tuple[str, list[str]]:
    """How a phone splits ``text``: (encoding, part texts). GSM-7 parts never split an escape pair;
    UCS-2 parts are counted in UTF-16 units and do not split a surrogate pair."""
    if septets_needed(text) is not None:
        if septets_needed(text) <= SINGLE_GSM7:
            return "gsm7", [text]
        return "gsm7", _split(text, PART_GSM7[wide], lambda char: septets_needed(char))
    if len(text.encode("utf-16-be", "surrogatepass")) <= SINGLE_UCS2_OCTETS:
        return "ucs2", [text]
    return "ucs2", _split(text, PART_UCS2_UNITS[wide], lambda char: len(char.encode("utf-16-be", "surrogatepass")) // 2)


def _split(text: str, room: int, cost) -> list[str]:  # noqa: ANN001
    parts, current, used = [], "", 0
    for char in text:
        if used + cost(char) > room:
            parts.append(current)
            current, used = "", 0
        current += char
        used += cost(char)
    return parts + [current]


def build_deliver(sender: str, text: str, smsc: str | None, when: dt.datetime, *,
                  encoding: str | None = None, concat: Concat | None = None) -> tuple[str, int]:
    """SMS-DELIVER as (hex PDU with SMSC field, TPDU length): one part, with its concatenation header
    when ``concat`` is given. ``encoding``: gsm7 or ucs2 (default: gsm7 when the text allows)."""
    encoding = encoding or ("gsm7" if septets_needed(text) is not None else "ucs2")
    udh = concat.header() if concat else b""
    if encoding == "gsm7":
        if septets_needed(text) is None:
            raise ValueError("text is not GSM-7")
        septets = gsm7_septets(text)
        fill = (7 - (len(udh) * 8) % 7) % 7
        udl = (len(udh) * 8 + fill) // 7 + len(septets)
        if udl > SINGLE_GSM7:
            raise ValueError(f"text longer than one GSM-7 SMS ({SINGLE_GSM7 - (udl - len(septets))} septets)")
        dcs, user_data = 0x00, udh + pack_septets(septets, fill)
    else:
        # Not gsmmodem's encodeUcs2: it fails on characters outside the BMP ("byte must be in
        # range(0, 256)"), and a phone sends an emoji as a UTF-16 surrogate pair (a lone half
        # given on purpose, as a phone splitting a pair across two parts sends it, passes as is).
        user_data = udh + text.encode("utf-16-be", "surrogatepass")
        if len(user_data) > SINGLE_UCS2_OCTETS:
            raise ValueError(f"text longer than one UCS-2 SMS ({(SINGLE_UCS2_OCTETS - len(udh)) // 2} units)")
        dcs, udl = 0x08, len(user_data)
    first = 0x04 | (0x40 if udh else 0)   # SMS-DELIVER, TP-MMS (no more messages), TP-UDHI
    tpdu = (bytes([first]) + encode_sender(sender) + bytes([0x00, dcs])
            + encode_timestamp(when) + bytes([udl]) + user_data)
    return (encode_smsc(smsc) + tpdu).hex().upper(), len(tpdu)


def build_status_report(reference: int, recipient: str, smsc: str | None,
                        submitted: dt.datetime, discharged: dt.datetime,
                        status: int = 0x00) -> tuple[str, int]:
    """SMS-STATUS-REPORT (first octet 0x06) as (hex PDU with SMSC field, TPDU length)."""
    tpdu = (bytes([0x06, reference & 0xFF]) + encode_address(recipient)
            + encode_timestamp(submitted) + encode_timestamp(discharged) + bytes([status]))
    return (encode_smsc(smsc) + tpdu).hex().upper(), len(tpdu)
