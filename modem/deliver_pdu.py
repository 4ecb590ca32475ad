"""An SMS-DELIVER PDU (3GPP TS 23.040 §9.2.2.1) as the part the engine records. Pure, no I/O.

python-gsmmodem-new's ``decodeSmsPdu`` reads the sender and the SMSC time stamp
well (alphanumeric names included), and we use it for them. Its user-data
decoding is wrong in two ways that matter to citizens' replies, so the text and
the concatenation header are read here from the octets:

- after a 7-octet header (the 16-bit concatenation reference, IE 0x08) a GSM-7
  text has no fill bits, yet the library drops an octet for them: the first
  character of every such part is lost;
- UCS-2 is decoded one 16-bit unit at a time, so an emoji arrives as two
  surrogate halves (joined here, see gateway/core/inbound.py).
"""
from __future__ import annotations

import datetime as dt

from gsmmodem.pdu import decodeSmsPdu

from gateway.core.channels import ReceivedPart
from gateway.core.inbound import keep_pairs
from gateway.core.sms_text import decode_gsm7, unpack_septets


class UndecodablePdu(ValueError):
    """Not an SMS-DELIVER we can read: it is logged and left in the modem."""


def _alphabet(dcs: int) -> str:
    """23.038 §4: gsm7, 8bit or ucs2 from the data coding scheme."""
    if dcs & 0xC0 == 0x00:                      # general data coding (classes, compression)
        if dcs & 0x20:
            raise UndecodablePdu(f"compressed user data (DCS 0x{dcs:02X})")
        return {0: "gsm7", 1: "8bit", 2: "ucs2"}.get((dcs >> 2) & 0x03, "gsm7")
    if dcs & 0xF0 in (0xC0, 0xD0):              # message waiting indication, GSM-7 text
        return "gsm7"
    if dcs & 0xF0 == 0xE0:                      # message waiting indication, UCS-2 text
        return "ucs2"
    if dcs & 0xF0 == 0xF0:                      # data coding / message class
        return "8bit" if dcs & 0x04 else "gsm7"
    raise UndecodablePdu(f"reserved data coding scheme 0x{dcs:02X}")


def _concatenation(header: bytes) -> tuple[int, int, int]:
    """(reference, parts, seq) of the concatenation IE in a user data header; (0, 1, 1) without one."""
    at = 0
    while at + 2 <= len(header):
        iei, length = header[at], header[at + 1]
        data = header[at + 2:at + 2 + length]
        if len(data) < length:
            raise UndecodablePdu("user data header cut short")
        if iei == 0x00 and length == 3 and 1 <= data[2] <= data[1]:
            return data[0], data[1], data[2]
        if iei == 0x08 and length == 4 and 1 <= data[3] <= data[2]:
            return (data[0] << 8) | data[1], data[2], data[3]
        at += 2 + length
    return 0, 1, 1


def decode_deliver(pdu_hex: str, line: str = "", received_at: dt.datetime | None = None) -> ReceivedPart | None:
    """The part an SMS-DELIVER carries (SMSC field first, as AT+CMGR/+CMGL/+CMT give it); None for a
    status report or another type stored in the same memory. Raises UndecodablePdu."""
    try:
        octets = bytes.fromhex(pdu_hex.strip())
        decoded = decodeSmsPdu(pdu_hex.strip())
    except Exception as exc:  # noqa: BLE001 - the library raises anything from IndexError to EncodingError
        raise UndecodablePdu(f"undecodable PDU: {exc!r}") from None
    if decoded.get("type") != "SMS-DELIVER":
        return None
    try:
        tpdu = octets[1 + octets[0]:]
        first = tpdu[0]
        address_digits, type_of_address = tpdu[1], tpdu[2]
        at = 3 + (address_digits + 1) // 2        # past TP-OA
        dcs = tpdu[at + 1]                        # after TP-PID
        udl = tpdu[at + 2 + 7]                    # after TP-SCTS
        user_data = tpdu[at + 3 + 7:]
    except IndexError:
        raise UndecodablePdu("SMS-DELIVER cut short") from None
    alphabet = _alphabet(dcs)
    header_length = user_data[0] + 1 if first & 0x40 and user_data else 0
    reference, parts, seq = _concatenation(user_data[1:header_length]) if header_length else (0, 1, 1)
    if alphabet == "gsm7":
        try:
            septets = unpack_septets(user_data, udl)
        except ValueError as exc:
            raise UndecodablePdu(str(exc)) from None
        # The header and its fill bits take whole septets.
        text = decode_gsm7(septets[(header_length * 8 + 6) // 7:])
    else:
        body = user_data[header_length:udl]
        if alphabet == "ucs2":
            text = keep_pairs(body[:len(body) // 2 * 2].decode("utf-16-be", "surrogatepass"))
        else:
            text = body.decode("latin-1")   # 8-bit data: shown as it is, nothing better to do with it
    stamp = decoded.get("time")
    sent_at = stamp.astimezone(dt.timezone.utc).replace(tzinfo=None) if stamp is not None else None
    return ReceivedPart(line=line, sender=decoded.get("number") or "", text=text, sent_at=sent_at,
                        alphanumeric=(type_of_address & 0x70) == 0x50, reference=reference, parts=parts,
                        seq=seq, received_at=received_at)
