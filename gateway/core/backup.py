"""Backups and restores of the database, and the engine's lock that makes restores safe.

SQLite: ``allerta backup`` uses SQLite's online backup API, which copies a
consistent snapshot page by page while the engine keeps writing (WAL).
``allerta restore`` checks the file first (``PRAGMA integrity_check``, an
Allerta schema, a schema revision this code knows), refuses while an engine or
the panel holds its lock in the data directory, and migrates an older backup.
PostgreSQL: the operator uses pg_dump / pg_restore; we only say how.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import errno
import fcntl
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from gateway.core.config import Config
from gateway.core.db import MIGRATIONS_DIR, make_engine, migrate
from gateway.core.files import open_private

LOCK_NAME = "engine.lock"
PANEL_LOCK_NAME = "web.lock"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


# --- the engine's lock -----------------------------------------------------------------
def lock_path(config: Config) -> Path:
    return Path(config.general.data_dir) / LOCK_NAME


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


def _lock_held(path: Path) -> bool:
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return not _try_flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)  # closing drops the lock we may have taken


def engine_running(config: Config) -> bool:
    """True when some engine holds the lock of this data directory."""
    return _lock_held(lock_path(config))


# --- the panel's lock ------------------------------------------------------------------
def panel_lock_path(config: Config) -> Path:
    return Path(config.general.data_dir) / PANEL_LOCK_NAME


def hold_panel_lock(config: Config) -> EngineLock:
    """A shared flock on <data_dir>/web.lock, held by ``allerta web`` while it serves.

    The same idea as the engine's: the kernel drops it when the process dies, so
    no stale pid file; a restore takes it exclusively. Blocking: a panel started
    in the middle of a restore (seconds) waits for it rather than serving a
    database being replaced.
    """
    path = panel_lock_path(config)
    fd = _open_lock(path)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return EngineLock(fd, path)


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


def backup_sqlite(db: Path, out: Path, phase: Callable[[str], None] = lambda name: None) -> BackupResult:
    """A consistent copy of ``db`` into ``out`` while the engine may be writing. ``phase("copy")`` and
    ``phase("check")`` say which of the two long steps starts (the CLI's progress on a terminal)."""
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
    phase("copy")
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
    phase("check")
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


def schema_revision(path: Path) -> str | None:
    """The Alembic revision a SQLite database file is at (None: no revision recorded)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return row[0] if row else None


def check_backup_revision(path: Path) -> str:
    """The backup's revision; BackupError when this code cannot run on it.

    A revision our migrations do not know comes from a newer Allerta (or a
    branch): its tables may hold columns this code would silently ignore and its
    migrations cannot be undone from here, so it is refused. An older one is fine:
    the restore applies the migrations after it.
    """
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    revision = schema_revision(path)
    if revision is None:
        raise BackupError(f"{path}: no schema revision recorded (alembic_version is empty); nothing restored")
    known = {rev.revision for rev in script.walk_revisions()}
    if revision not in known:
        raise BackupError(f"{path}: the backup is from a newer version of Allerta (schema revision {revision}; "
                          f"this version knows up to {head}): upgrade Allerta on this box, then restore; "
                          "nothing restored")
    return revision


@dataclass(frozen=True)
class RestoreResult:
    saved: Path | None         # where the replaced database was kept
    backup_revision: str       # the backup's schema revision
    revision: str              # the restored database's revision, after the migrations

    @property
    def migrated(self) -> bool:
        return self.backup_revision != self.revision


def restore_sqlite(config: Config, db: Path, backup: Path) -> RestoreResult:
    """Replace the database with ``backup``, migrated to this version's schema.

    Refuses while an engine or the panel runs, and a backup from a newer schema.
    The previous database is kept beside it (``allerta.db.before-restore-<time>``)
    so a wrong restore can be undone.
    """
    check_backup_file(backup)
    backup_revision = check_backup_revision(backup)
    path, panel_path = lock_path(config), panel_lock_path(config)
    fd, panel_fd = _open_lock(path), _open_lock(panel_path)
    try:
        if not _try_flock(fd, fcntl.LOCK_EX):
            raise BackupError("the engine is running (it holds " + str(path) + "): stop it first with "
                              "'systemctl stop allerta-engine', then restore")
        # The panel keeps the database open and would go on serving (and writing) the old
        # one's sessions and alerts over the restored rows.
        if not _try_flock(panel_fd, fcntl.LOCK_EX):
            raise BackupError("the panel is running (allerta web holds " + str(panel_path) + "): stop it first "
                              "with 'systemctl stop allerta-web', then restore")
        saved = None
        if db.exists():
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            saved = db.with_name(f"{db.name}.before-restore-{stamp}")
            backup_sqlite(db, saved)
        db.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        target = sqlite3.connect(db, timeout=30)
        try:
            # Through SQLite, not a file copy: the -wal and -shm files stay consistent.
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
        # Migrated while the locks are held, so no engine or panel ever opens the old schema.
        engine = make_engine(config.database_url)
        try:
            migrate(engine)
        finally:
            engine.dispose()
        return RestoreResult(saved, backup_revision, schema_revision(db) or backup_revision)
    finally:
        os.close(fd)
        os.close(panel_fd)
