"""The audit log: append-only, each entry chained to the previous one by SHA-256.

``hash = sha256(prev_hash + canonical JSON of the entry)``, where the canonical
JSON covers id, time, actor, action, target and details. Editing an entry
breaks its own hash; removing one breaks the next entry's link (and leaves a
gap in the ids); removing the newest entries is caught by the anchor file,
which holds the id and hash of the newest entry this box wrote.

It lives in gateway/ because the panel and the command line both write it:
an alert sent with ``allerta alert send`` is on the same chain as one sent
from the panel.

Writers hold a process lock from reading the previous hash to commit, and
``prev_hash`` is unique, so two writers can never fork the chain silently.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.db import utcnow
from gateway.core.models_panel import AuditEntry

GENESIS = "0" * 64
_lock = threading.Lock()


def canonical(entry_id: int, at: dt.datetime, actor: str, action: str, target: str | None,
              details: Any) -> str:
    return json.dumps({"id": entry_id, "at": at.isoformat(timespec="microseconds"), "actor": actor,
                       "action": action, "target": target, "details": details},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, text: str) -> str:
    return hashlib.sha256((prev_hash + text).encode("utf-8")).hexdigest()


class AuditLog:
    def __init__(self, sessions: sessionmaker[Session], anchor_path: str | os.PathLike[str] | None = None) -> None:
        self.sessions = sessions
        self.anchor_path = Path(anchor_path) if anchor_path else None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A transaction in which ``record`` may be called; the chain is locked until commit."""
        with _lock:
            with self.sessions.begin() as session:
                written = session.info.setdefault("audit_written", [])
                yield session
            if written:
                self._write_anchor(*written[-1])

    def record(self, session: Session, actor: str, action: str, obj: Any = None, **details: Any) -> AuditEntry:
        """Add one entry (``obj``: what was acted on, e.g. an alert id) in the caller's transaction."""
        last = session.execute(select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).first()
        prev = last.hash if last else GENESIS
        entry_id = (last.id + 1) if last else 1
        at = utcnow()
        target_text = None if obj is None else str(obj)[:120]
        details = json.loads(json.dumps(details, default=str))  # what is hashed is what is stored
        text = canonical(entry_id, at, actor, action, target_text, details)
        entry = AuditEntry(id=entry_id, at=at, actor=actor, action=action, target=target_text,
                           details=json.dumps(details, sort_keys=True, ensure_ascii=False),
                           prev_hash=prev, hash=entry_hash(prev, text))
        session.add(entry)
        session.flush()
        session.info.setdefault("audit_written", []).append((entry.id, entry.hash))
        return entry

    def write(self, actor: str, action: str, obj: Any = None, **details: Any) -> None:
        """One entry in its own transaction (after an action done by a service)."""
        with self.transaction() as session:
            self.record(session, actor, action, obj, **details)

    def _write_anchor(self, entry_id: int, digest: str) -> None:
        if self.anchor_path is None:
            return
        try:
            self.anchor_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.anchor_path.with_suffix(".tmp")
            tmp.write_text(f"{entry_id} {digest}\n", encoding="ascii")
            os.replace(tmp, self.anchor_path)
        except OSError:
            pass  # the chain itself still detects edits and removals in the middle

    def verify(self) -> list[str]:
        """Every problem found, each naming the entry; empty when the log is intact."""
        problems: list[str] = []
        prev_hash, prev_id = GENESIS, 0
        seen: dict[int, str] = {}
        with self.sessions() as session:
            for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)).yield_per(1000):
                if entry.id != prev_id + 1:
                    problems.append(f"entries {prev_id + 1} to {entry.id - 1} were removed")
                if entry.prev_hash != prev_hash:
                    problems.append(f"entry {entry.id}: does not follow the entry before it "
                                    "(an entry before it was removed or changed)")
                try:
                    details = json.loads(entry.details)
                except ValueError:
                    details = entry.details
                text = canonical(entry.id, entry.at, entry.actor, entry.action, entry.target, details)
                if entry_hash(entry.prev_hash, text) != entry.hash:
                    problems.append(f"entry {entry.id} ({entry.action} by {entry.actor}): content was changed")
                seen[entry.id] = entry.hash
                prev_hash, prev_id = entry.hash, entry.id
        anchor = self._read_anchor()
        if anchor is not None:
            anchor_id, anchor_hash = anchor
            if anchor_id not in seen:
                problems.append(f"entry {anchor_id}: the newest entry written was removed "
                                f"(the log ends at entry {prev_id})")
            elif seen[anchor_id] != anchor_hash:
                problems.append(f"entry {anchor_id}: differs from the one written (changed or rewritten)")
        return problems

    def _read_anchor(self) -> tuple[int, str] | None:
        if self.anchor_path is None or not self.anchor_path.exists():
            return None
        try:
            entry_id, digest = self.anchor_path.read_text(encoding="ascii").split()
            return int(entry_id), digest
        except (OSError, ValueError):
            return None


def anchor_path_for(data_dir: str) -> Path:
    return Path(data_dir) / "audit-anchor"

