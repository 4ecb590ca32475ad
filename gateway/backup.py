"""Backups and restores of the database, and the engine's lock that makes restores safe.

SQLite: ``allerta backup`` uses SQLite's online backup API, which copies a
consistent snapshot page by page while the engine keeps writing (WAL).
``allerta restore`` checks the file first (``PRAGMA integrity_check``, an
Allerta schema) and refuses while an engine holds the data directory's lock.
PostgreSQL: the operator uses pg_dump / pg_restore; we only say how.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import errno
import fcntl
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config
from gateway.files import open_private

LOCK_NAME = "engine.lock"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


# --- the engine's lock -----------------------------------------------------------------
def lock_path(config: Config) -> Path:
    return Path(config.general["data_dir"]) / LOCK_NAME


class EngineLock:
    """A shared flock on <data_dir>/engine.lock, held for as long as an engine runs.

    Shared, so it changes nothing for whoever runs engines; ``restore`` takes it
    exclusively, so it cannot overwrite the database under a running engine,
    and an engine cannot start in the middle of a restore. The kernel drops
    the lock when the process dies, even by kill -9: no stale pid files.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _open_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o640)


def _try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise


async def hold_engine_lock(config: Config, wait: float = 5.0) -> EngineLock:
    """Take the engine's shared lock; BackupError if a restore holds it past ``wait`` seconds."""
    path = lock_path(config)
    fd = _open_lock(path)
    deadline = asyncio.get_running_loop().time() + wait
    while not _try_flock(fd, fcntl.LOCK_SH):
        if asyncio.get_running_loop().time() > deadline:
            os.close(fd)
            raise BackupError(f"{path} is locked: a database restore is in progress; "
                              "start the engine again once it is done")
        await asyncio.sleep(0.1)
    os.write(fd, b"")  # the file exists; its content is irrelevant
    return EngineLock(fd, path)


def engine_running(config: Config) -> bool:
    """True when some engine holds the lock of this data directory."""
    path = lock_path(config)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        if _try_flock(fd, fcntl.LOCK_EX):
            return False
        return True
    finally:
        os.close(fd)  # closing drops the lock we may have taken


# --- backup and restore ------------------------------------------------------------------
def sqlite_path(url: str) -> Path | None:
    """The file of an sqlite:/// URL; None for any other database."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    if not path or path == ":memory:":
        raise BackupError("an in-memory database cannot be backed up")
    return Path(path)


def pg_dump_hint(url: str) -> str:
    return ("the database is not SQLite: back it up with PostgreSQL's own tools, e.g.\n"
            "  pg_dump --format=custom --file allerta.dump 'DATABASE_URL'\n"
            "and restore with  pg_restore --clean --dbname 'DATABASE_URL' allerta.dump  "
            "(stop allerta-engine first; DATABASE_URL without the '+driver' part of [database] url)")


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    deliveries: int


def integrity_problems(path: Path) -> list[str]:
    """PRAGMA integrity_check of a SQLite file: [] when it is sound."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return [f"cannot open: {exc}"]
    try:
        rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


def _count(path: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - a constant
    finally:
        conn.close()


def backup_sqlite(db: Path, out: Path) -> BackupResult:
    """A consistent copy of ``db`` into ``out`` while the engine may be writing."""
    if not db.exists():
        raise BackupError(f"{db}: no database here (run 'allerta init' first)")
    out = out.resolve()
    if out == db.resolve():
        raise BackupError(f"{out}: the backup cannot overwrite the database itself")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    # Created 0600 before SQLite writes a byte (SQLite takes an empty file for a new
    # database): residents' phone numbers, never readable by others, even for a moment.
    os.close(open_private(tmp, 0o600, exclusive=True))
    source = sqlite3.connect(db, timeout=30)
    try:
        target = sqlite3.connect(tmp)
        try:
            # One step: one read transaction, so one consistent snapshot. In WAL
            # mode a reader never blocks the engine's writers (a stepped copy
            # would restart every time the engine commits).
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"backup of {db} failed: {exc}") from None
    finally:
        source.close()
    problems = integrity_problems(tmp)
    if problems:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its integrity check: {problems[:3]}")
    os.replace(tmp, out)
    return BackupResult(out, out.stat().st_size, _count(out, "deliveries"))


def check_backup_file(path: Path) -> None:
    """BackupError unless ``path`` is a sound Allerta SQLite database."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    problems = integrity_problems(path)
    if problems:
        raise BackupError(f"{path}: integrity check failed ({'; '.join(problems[:3])}); nothing restored")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    if not {"alembic_version", "deliveries", "alerts"} <= tables:
        raise BackupError(f"{path}: not an Allerta database (tables missing); nothing restored")


def restore_sqlite(config: Config, db: Path, backup: Path) -> Path | None:
    """Replace the database with ``backup``; returns where the previous database was saved.

    Refuses while an engine runs. The previous database is kept beside it
    (``allerta.db.before-restore-<time>``) so a wrong restore can be undone.
    """
    check_backup_file(backup)
    path = lock_path(config)
    fd = _open_lock(path)
    try:
        if not _try_flock(fd, fcntl.LOCK_EX):
            raise BackupError("the engine is running (it holds " + str(path) + "): stop it first with "
                              "'systemctl stop allerta-engine', then restore")
        saved = None
        if db.exists():
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            saved = db.with_name(f"{db.name}.before-restore-{stamp}")
            backup_sqlite(db, saved)
        db.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        target = sqlite3.connect(db, timeout=30)
        try:
            # Through SQLite, not a file copy: the -wal and -shm files stay consistent
            # and a reader (the panel) sees either the old or the new database.
            source.backup(target)
        except sqlite3.Error as exc:
            raise BackupError(f"restore into {db} failed: {exc}") from None
        finally:
            target.close()
            source.close()
        problems = integrity_problems(db)
        if problems:
            raise BackupError(f"{db}: integrity check failed after the restore: {problems[:3]}"
                              + (f"; the previous database is in {saved}" if saved else ""))
        return saved
    finally:
        os.close(fd)
