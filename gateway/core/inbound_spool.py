"""Received SMS parts made durable before the database has them, as status reports are (report_spool.py).

A modem deletes a received part only once the engine holds it safely, and a SIM holds 20 to 50
messages: while the database is held (a backup, a long query) during a storm of replies, the
SIM would fill within seconds, and a full SIM makes the network keep every later message away.
So a part is first appended here and fsync'd; then the modem may delete it, and the database
gets it in its turn. Parts a previous run spooled but never saw committed are recorded at the
next start, before anything else; recording one twice is harmless (its fingerprint).
"""
from __future__ import annotations

import dataclasses
import datetime as dt

from gateway.core.channels import ReceivedPart
from gateway.core.report_spool import ReportSpool

_TIMES = ("sent_at", "received_at")


class InboundSpool(ReportSpool):
    KEY = "parts"

    def _encode(self, items: list) -> list:
        rows = []
        for part in items:
            row = dataclasses.asdict(part)
            for key in _TIMES:
                row[key] = row[key].isoformat() if row[key] is not None else None
            # Written as its UTF-16 octets: a half surrogate pair (an emoji split across two parts)
            # has no UTF-8 form.
            row["text"] = part.text.encode("utf-16-be", "surrogatepass").hex()
            rows.append(row)
        return rows

    def _decode(self, rows: list) -> list:
        parts = []
        for row in rows:
            for key in _TIMES:
                row[key] = dt.datetime.fromisoformat(row[key]) if row[key] is not None else None
            row["text"] = bytes.fromhex(row["text"]).decode("utf-16-be", "surrogatepass")
            parts.append(ReceivedPart(**row))
        return parts
