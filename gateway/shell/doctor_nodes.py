"""`allerta doctor`'s checks of the engines sharing the database (docs/nodes.md): this node's name is its
own, every node heartbeats, and the database lets the engine do what it does (read and write its tables).

Ages are read on the database's clock (gateway.core.nodes), like the takeover that acts on them."""
from __future__ import annotations

import os
import socket

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from gateway.core.checks import FAIL, OK, WARN, Check
from gateway.core.config import Config
from gateway.core.db import make_engine, make_sessionmaker
from gateway.core.models import Base
from gateway.core.nodes import NodeView, nodes_seen
from gateway.core.states import NodeState

# What the engine does to the rows it keeps: _give_back deletes the attempts of claims given back, the
# citizens' service the parts of assembled messages; everything else is read, added and updated.
ENGINE_RIGHTS = ("SELECT", "INSERT", "UPDATE", "DELETE")


def node_checks(config: Config, host: str | None = None) -> list[Check]:
    engine = make_engine(config.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            views = nodes_seen(s)
        checks = [name_check(config.node_name, host or socket.gethostname(), views),
                  *heartbeat_checks(views, config.node_name)]
        checks.append(rights_check(engine))
    except SQLAlchemyError as exc:
        return [Check("nodes", FAIL, f"cannot read the nodes table: {str(exc).splitlines()[0]}",
                      "see the database checks above")]
    finally:
        engine.dispose()
    return checks


def name_check(name: str, host: str, views: list[NodeView]) -> Check:
    """This box's node name is not heartbeating from another host right now."""
    mine = next((v for v in views if v.name == name), None)
    if mine is None:
        return Check("node name", OK, f"{name!r}: no engine has run under this name yet")
    if mine.live and mine.host != host:
        return Check("node name", FAIL, f"{name!r} is heartbeating from {mine.host} (pid {mine.pid}, "
                     f"{mine.heartbeat_age:.0f} s ago), not from this box ({host})",
                     "give each engine its own [engine] node (default: the host name)")
    return Check("node name", OK, f"{name!r}, last run on {mine.host} ({mine.state})")


def heartbeat_checks(views: list[NodeView], own: str) -> list[Check]:
    """One check per node: heartbeating within its lease, stopped cleanly, or silent (its work taken over).
    This box's own engine stopped is the engine check's to say."""
    checks = []
    for v in views:
        name = f"node {v.name}"
        if v.live:
            checks.append(Check(name, OK, f"heartbeat {v.heartbeat_age:.0f} s ago on {v.host} (lease {v.lease_seconds:.0f} s)"))
        elif v.state == NodeState.STOPPED:
            checks.append(Check(name, OK if v.name == own else WARN, f"stopped on {v.host} {v.heartbeat_age:.0f} s ago",
                                f"start allerta-engine on {v.host} if its lines should be in service"))
        else:
            taken = f"; its work in flight was taken over by {v.taken_over_by}" if v.taken_over_by else ""
            checks.append(Check(name, FAIL, f"no heartbeat for {v.heartbeat_age:.0f} s on {v.host} (lease "
                                f"{v.lease_seconds:.0f} s){taken}: its lines send nothing",
                                f"on {v.host}: 'systemctl status allerta-engine', 'journalctl -u allerta-engine'"))
    return checks


def rights_check(engine: Engine) -> Check:
    """The database lets this user do what the engine does to each table (PostgreSQL grants; the SQLite
    file's permissions)."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database or ""
        if path and path != ":memory:" and not os.access(path, os.R_OK | os.W_OK):
            return Check("database rights", FAIL, f"{path} is not readable and writable by this user",
                         "chown allerta: the file and its directory")
        return Check("database rights", OK, "the SQLite file is readable and writable")
    missing = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for right in ENGINE_RIGHTS:
                if not conn.execute(text("SELECT has_table_privilege(current_user, :t, :r)"),
                                    {"t": table.name, "r": right}).scalar():
                    missing.append(f"{right} on {table.name}")
            sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name}).scalar() \
                if "id" in table.c else None
            if sequence and not conn.execute(text("SELECT has_sequence_privilege(current_user, :s, 'USAGE')"),
                                             {"s": sequence}).scalar():
                missing.append(f"USAGE on {sequence}")
        user = conn.execute(text("SELECT current_user")).scalar()
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        return Check("database rights", FAIL, f"user {user} lacks {shown}",
                     f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {user}; "
                     f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {user}")
    return Check("database rights", OK, f"user {user} may read and write every table the engine keeps")
