"""Status reports made durable before the database has them.

A modem deletes a stored status report only once the engine holds it safely, and its
report memory is small (20 to 50): while the database is held (a backup, a long query)
the reports could not be committed, the memory filled within seconds and the modem
stopped sending. So a batch is first appended to this file and fsync'd (milliseconds,
whatever the database does); then the modem may delete it, and the database gets it in
its turn. A ``landed`` line follows once the database committed it; when nothing is
outstanding the file is emptied. At the next start the batches without their ``landed``
line (the engine died meanwhile) are recorded before anything is sent.

Single-threaded: the dispatcher calls it from one executor thread.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from gateway.core.channels import StatusReport


class ReportSpool:
    # The key a batch's items are written under, and how (inbound_spool.py spools SMS parts the same way).
    KEY = "reports"

    def _encode(self, items: list) -> list:
        return [[r.reference, r.delivered, r.detail] for r in items]

    def _decode(self, rows: list) -> list:
        return [StatusReport(ref, bool(delivered), detail) for ref, delivered, detail in rows]

    def __init__(self, path: Path) -> None:
        self.path = path
        self._next = 1
        self._outstanding: set[int] = set()
        self._file = None

    def _open(self):  # noqa: ANN202 - a text file
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        return self._file

    def append(self, line: str, reports: list) -> int:
        """Write one batch and fsync it; returns its number for ``landed``."""
        seq, self._next = self._next, self._next + 1
        spool = self._open()
        spool.write(json.dumps({"batch": seq, "line": line, self.KEY: self._encode(reports)}) + "\n")
        spool.flush()
        os.fsync(spool.fileno())
        self._outstanding.add(seq)
        return seq

    def landed(self, seq: int) -> None:
        """The database has batch ``seq``; with nothing outstanding, the file is emptied."""
        self._outstanding.discard(seq)
        spool = self._open()
        if self._outstanding:
            # No fsync: a lost marker only makes the next start record the batch again.
            spool.write(json.dumps({"landed": seq}) + "\n")
            spool.flush()
        else:
            spool.truncate(0)
            spool.flush()

    def unlanded(self) -> list[tuple[str, list]]:
        """The batches a previous run spooled but did not see committed, in order."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        batches: dict[int, tuple[str, list]] = {}
        for row in text.splitlines():
            try:
                entry = json.loads(row)
            except ValueError:
                continue   # a line torn by a crash mid-write: its batch was never acknowledged
            if "landed" in entry:
                batches.pop(entry["landed"], None)
            else:
                batches[entry["batch"]] = (entry["line"], self._decode(entry[self.KEY]))
        return list(batches.values())

    def clear(self) -> None:
        """Everything in the file is in the database now."""
        self._open().truncate(0)
        self._file.flush()
        self._outstanding.clear()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
