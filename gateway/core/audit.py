"""The audit log: append-only, each entry chained to the previous one by a keyed hash.

``hash = HMAC-SHA256(key, prev_hash + canonical JSON of the entry)``, where the
canonical JSON covers id, time, actor, action, target and details. Editing an
entry breaks its own hash; removing one breaks the next entry's link (and
leaves a gap in the ids); removing the newest entries is caught by the anchor
file, which holds the id and hash of the newest entry this box wrote, signed
with the same key.

The key lives in a file outside the database (``[general] audit_key_file``,
readable only by the allerta user): someone who can write the database file
but not read the key cannot rewrite an entry and recompute the chain after it,
as they could with a plain SHA-256 chain. Against someone who holds the key
too (root), the head written in the paper log book is the last word:
``allerta audit head`` prints it, ``allerta audit verify --head`` compares.

Entries written before the chain was keyed (an upgraded box) are still
checked link by link with plain SHA-256; the first keyed entry covers the
last plain one's hash, which seals them. A plain entry after a keyed one is
a forgery.

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
import hmac
import json
import os
import pwd
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import func, select, text as sql_text
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.config import Config, ConfigError
from gateway.core.db import utcnow
from gateway.core.files import open_private
from gateway.core.models_panel import AuditEntry

GENESIS = "0" * 64
# A digest written by hand in the log book: this many hex digits (64 bits) are enough to
# tell a rewritten chain, and short enough to copy without a mistake.
SHORT_DIGEST = 16
_lock = threading.Lock()


class AuditKeyError(ConfigError):
    """The audit key file cannot be read or created; the message names the file.

    A ConfigError: like a bad key, it stops a command with one clear line, not a traceback.
    """


def canonical(entry_id: int, at: dt.datetime, actor: str, action: str, target: str | None,
              details: Any) -> str:
    return json.dumps({"id": entry_id, "at": at.isoformat(timespec="microseconds"), "actor": actor,
                       "action": action, "target": target, "details": details},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(key: bytes, prev_hash: str, text: str) -> str:
    return hmac.new(key, (prev_hash + text).encode("utf-8"), hashlib.sha256).hexdigest()


def plain_entry_hash(prev_hash: str, text: str) -> str:
    """How entries were chained before the key (read only, to check an upgraded box's old entries)."""
    return hashlib.sha256((prev_hash + text).encode("utf-8")).hexdigest()


def local_actor() -> str:
    """The audit log's actor for a command typed on this box: "cli:<unix user>".

    From the process's user id, not $USER, which anyone can set.
    """
    try:
        return f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"
    except KeyError:   # a uid without a passwd entry (containers)
        return f"cli:uid {os.geteuid()}"


@dataclass(frozen=True)
class Head:
    """The newest entry: what an operator writes in the paper log book."""
    count: int
    at: dt.datetime | None
    digest: str

    @property
    def short(self) -> str:
        return self.digest[:SHORT_DIGEST]

    def line(self) -> str:
        """``<count> <short digest>``, the form ``audit verify --head`` takes back."""
        return f"{self.count} {self.short}"


def read_head(session: Session) -> Head:
    """The newest entry as ``session`` sees it (no key needed: reading is not checking)."""
    last = session.execute(select(AuditEntry.id, AuditEntry.at, AuditEntry.hash)
                           .order_by(AuditEntry.id.desc()).limit(1)).first()
    count = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    if last is None:
        return Head(0, None, GENESIS)
    return Head(count, last.at, last.hash)


def parse_head(text: str) -> tuple[int, str]:
    """``"COUNT DIGEST"`` (the digest whole or its first 16 hex digits) -> (count, digest)."""
    parts = text.replace(":", " ").split()
    if len(parts) != 2 or not parts[0].isdigit():
        raise ValueError(f"expected 'COUNT DIGEST' as 'allerta audit head' prints it, got {text!r}")
    digest = parts[1].lower()
    if not (SHORT_DIGEST <= len(digest) <= 64) or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"the digest must be {SHORT_DIGEST} to 64 hexadecimal digits, got {parts[1]!r}")
    return int(parts[0]), digest


class AuditLog:
    def __init__(self, sessions: sessionmaker[Session], key: bytes,
                 anchor_path: str | os.PathLike[str] | None = None) -> None:
        if len(key) < 16:
            raise ValueError("the audit key must be at least 16 bytes")
        self.sessions = sessions
        self._key = key
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
        if session.get_bind().dialect.name == "postgresql":
            # The panel and the engine are separate processes: the lock in transaction() does not reach
            # across them. Held to the end of this transaction, so two appends never read the same head
            # (on SQLite the database's single writer does the same).
            session.execute(sql_text("SELECT pg_advisory_xact_lock(hashtext('allerta.audit'))"))
        last = session.execute(select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).first()
        prev = last.hash if last else GENESIS
        entry_id = (last.id + 1) if last else 1
        at = utcnow()
        target_text = None if obj is None else str(obj)[:120]
        details = json.loads(json.dumps(details, default=str))  # what is hashed is what is stored
        text = canonical(entry_id, at, actor, action, target_text, details)
        entry = AuditEntry(id=entry_id, at=at, actor=actor, action=action, target=target_text,
                           details=json.dumps(details, sort_keys=True, ensure_ascii=False),
                           prev_hash=prev, hash=entry_hash(self._key, prev, text))
        session.add(entry)
        session.flush()
        session.info.setdefault("audit_written", []).append((entry.id, entry.hash))
        return entry

    def write(self, actor: str, action: str, obj: Any = None, **details: Any) -> None:
        """One entry in its own transaction (after an action done by a service)."""
        with self.transaction() as session:
            self.record(session, actor, action, obj, **details)

    def head(self) -> Head:
        with self.sessions() as session:
            return read_head(session)

    def _anchor_mac(self, entry_id: int, digest: str) -> str:
        return hmac.new(self._key, f"anchor {entry_id} {digest}".encode("ascii"), hashlib.sha256).hexdigest()

    def _write_anchor(self, entry_id: int, digest: str) -> None:
        if self.anchor_path is None:
            return
        try:
            self.anchor_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.anchor_path.with_suffix(".tmp")
            tmp.write_text(f"{entry_id} {digest} {self._anchor_mac(entry_id, digest)}\n", encoding="ascii")
            os.replace(tmp, self.anchor_path)
        except OSError:
            pass  # the chain itself still detects edits and removals in the middle

    def verify(self, head: tuple[int, str] | None = None) -> list[str]:
        """Every problem found, each naming the entry; empty when the log is intact.

        ``head``: (count, digest) as written in the log book; the entry with that id
        must still be there with that digest.
        """
        problems: list[str] = []
        prev_hash, prev_id = GENESIS, 0
        seen: dict[int, str] = {}
        keyed_seen = False
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
                if hmac.compare_digest(entry_hash(self._key, entry.prev_hash, text), entry.hash):
                    keyed_seen = True
                elif not keyed_seen and plain_entry_hash(entry.prev_hash, text) == entry.hash:
                    pass   # written before this box keyed its chain; the first keyed entry seals it
                else:
                    problems.append(f"entry {entry.id} ({entry.action} by {entry.actor}): content was changed "
                                    "or rewritten without the audit key")
                seen[entry.id] = entry.hash
                prev_hash, prev_id = entry.hash, entry.id
        problems += self._check_anchor(seen, prev_id)
        if head is not None:
            problems += _check_head(head, seen)
        return problems

    def _check_anchor(self, seen: dict[int, str], last_id: int) -> list[str]:
        if self.anchor_path is None:
            return []
        if not seen:
            return [] if not self.anchor_path.exists() else \
                [f"the log is empty but {self.anchor_path} says entries were written"]
        try:
            entry_id, digest, mac = self.anchor_path.read_text(encoding="ascii").split()
            anchor_id = int(entry_id)
        except FileNotFoundError:
            return [f"{self.anchor_path} is missing: the newest entries cannot be checked "
                    "(removed with them?)"]
        except (OSError, ValueError):
            return [f"{self.anchor_path} is unreadable or not an audit anchor"]
        if not hmac.compare_digest(self._anchor_mac(anchor_id, digest), mac):
            return [f"{self.anchor_path} was not written with the audit key (forged or replaced)"]
        if anchor_id not in seen:
            return [f"entry {anchor_id}: the newest entry written was removed (the log ends at entry {last_id})"]
        if seen[anchor_id] != digest:
            return [f"entry {anchor_id}: differs from the one written (changed or rewritten)"]
        return []


def _check_head(head: tuple[int, str], seen: dict[int, str]) -> list[str]:
    count, digest = head
    if count == 0:
        return []
    if count not in seen:
        return [f"entry {count} (the head written in the log book) is no longer in the log"]
    if not seen[count].startswith(digest):
        return [f"entry {count}: its digest {seen[count][:SHORT_DIGEST]} differs from the head written "
                f"in the log book ({digest[:SHORT_DIGEST]})"]
    return []


def anchor_path_for(data_dir: str) -> Path:
    return Path(data_dir) / "audit-anchor"


def audit_key_path(config: Config) -> Path:
    return Path(config.general.audit_key_file or os.path.join(config.general.data_dir, "audit.key"))


def load_audit_key(path: Path) -> bytes:
    """The key at ``path``, made on first use (random, 0600, owned like its directory).

    Owned like the data directory, so that a first ``allerta`` command run as root
    does not leave a key the panel and the engine (user allerta) cannot read.
    """
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise AuditKeyError(f"{path}: cannot read the audit key ({getattr(exc, 'strerror', None) or exc}); "
                            "it must be readable by the allerta user only") from None
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_private(path, 0o600, exclusive=True)
    except FileExistsError:   # another process made it meanwhile: use theirs
        return load_audit_key(path)
    except OSError as exc:
        raise AuditKeyError(f"{path}: cannot create the audit key ({exc.strerror})") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key.hex() + "\n")
        if os.geteuid() == 0:
            owner = path.parent.stat()
            os.fchown(out.fileno(), owner.st_uid, owner.st_gid)
    return key


def audit_log_for(config: Config, sessions: sessionmaker[Session]) -> AuditLog:
    """The box's audit log: its key file and anchor in the data directory unless configured."""
    return AuditLog(sessions, load_audit_key(audit_key_path(config)), anchor_path_for(config.general.data_dir))
