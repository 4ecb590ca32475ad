"""Database engine, sessions and migrations.

Everything SQLite-specific lives here (pragmas, busy timeout), so the rest of
the code runs unchanged on a PostgreSQL URL.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.core import database_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
READ_ONLY_SQLSTATE = "25006"   # read_only_sql_transaction


def utcnow() -> dt.datetime:
    """Naive UTC: every stored time is UTC, and SQLite keeps no zone."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def shown_url(url: str) -> str:
    """A database URL as it may be printed or shown: its password replaced by ***."""
    try:
        return database_url.parsed(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL may still hold a password: show nothing of it
        return "(unparsable)"


def make_engine(url: str, *, busy_timeout: float = 30.0) -> Engine:
    """``busy_timeout``: SQLite's wait for a lock held by another connection, in seconds."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout}, pool_size=10, max_overflow=20)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            # WAL lets the panel read while the engine writes; NORMAL sync is
            # durable across process crashes (kill -9), which is what we need.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.close()
        return engine
    # pool_pre_ping: a connection the server dropped (a restart, a failover) is found and replaced
    # when it is taken from the pool, not by the next statement failing. Several hosts
    # (database_url.py) are tried in order by libpq at each new connection.
    parsed = database_url.parsed(url)
    engine = create_engine(parsed, pool_pre_ping=True, connect_args=database_url.connect_args(parsed))

    @event.listens_for(engine, "handle_error")
    def _read_only_is_a_lost_primary(context) -> None:  # noqa: ANN001
        # A write refused because the server is read-only (25006): the connection reaches a standby
        # or a demoted primary. Counted as a disconnect, so the pool drops its connections and the
        # next one goes through target_session_attrs=read-write to whichever server is primary now.
        if getattr(context.original_exception, "sqlstate", None) == READ_ONLY_SQLSTATE:
            context.is_disconnect = True
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session], session: Session | None = None) -> Iterator[Session]:
    """``session`` when given (the caller's transaction: the caller commits, e.g. together with
    the audit entry that records the change), else a transaction of its own, committed on exit."""
    if session is not None:
        yield session
        return
    with sessions.begin() as own:
        yield own


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision (idempotent)."""
    command.upgrade(_alembic_config(engine), "head")


def schema_is_current(engine: Engine) -> bool:
    script = ScriptDirectory.from_config(_alembic_config(engine))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current == script.get_current_head()


def database_exists(url: str) -> bool:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        return path == ":memory:" or os.path.exists(path)
    return True
