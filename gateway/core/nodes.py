"""Engines sharing one database ("nodes"): heartbeats on the database's clock, and taking back the
work in flight of one that stopped.

Each engine has a row in ``nodes`` it rewrites every third of its lease with the *database's*
clock (``db_utcnow``): boxes whose clocks disagree (no NTP in a flooded basement) still agree on
who is late, since every age is the database's now minus a time the database wrote.

A delivery (or an answer to a citizen) in flight carries the node that claimed it. Its lease is
that node's heartbeat, not a time on the row: one write per node every few seconds instead of
renewing every call that is ringing and every SMS claimed ahead. A node silent for longer than
its ``lease_seconds`` loses its work: the first survivor to notice marks it down with an update
conditional on the heartbeat count it read (``beats``; a second survivor, or the node coming back,
changes it, and the update then matches nothing) and, in the same transaction, puts that node's
'submitting' rows back to pending, flagged as possible duplicates, exactly as the node's own
restart would (Store.take_over: cancelled alerts, the per-number call cap counted over every
node's calls, the SMS fallback once). It raises the ``node_down`` alarm; the node's next
heartbeat clears it.

SQLite is one engine's file: a second engine started on it while the first heartbeats is refused.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import DateTime, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import FunctionElement

from gateway.core.models import Delivery, Line
from gateway.core.models_citizens import SmsReply
from gateway.core.models_ops import Alarm, Node
from gateway.core.states import DeliveryState, NodeState, ReplyState

log = logging.getLogger(__name__)

NODE_DOWN = "node_down"     # the alarm's kind; its subject is the node's name


class db_utcnow(FunctionElement):  # noqa: N801 - used as a SQL function: select(db_utcnow())
    """The database server's current time, in naive UTC like every stored time (db.utcnow)."""
    type = DateTime()
    inherit_cache = True


@compiles(db_utcnow)
def _default_now(_element, _compiler, **_kw) -> str:  # noqa: ANN001
    return "CURRENT_TIMESTAMP"


@compiles(db_utcnow, "postgresql")
def _postgresql_now(_element, _compiler, **_kw) -> str:  # noqa: ANN001
    # statement_timestamp(), not now(): now() is the start of the transaction. AT TIME ZONE 'UTC'
    # turns the timestamptz into the naive UTC our columns hold, whatever the session's TimeZone.
    return "(statement_timestamp() AT TIME ZONE 'UTC')"


@compiles(db_utcnow, "sqlite")
def _sqlite_now(_element, _compiler, **_kw) -> str:  # noqa: ANN001
    # CURRENT_TIMESTAMP has whole seconds only; this is UTC with milliseconds.
    return "strftime('%Y-%m-%d %H:%M:%f', 'now')"


class NodeConflict(Exception):
    """This engine must not start: the message says why and what to change."""


@dataclass(frozen=True)
class NodeIdentity:
    name: str
    host: str
    pid: int
    lease_seconds: float

    @property
    def heartbeat_interval(self) -> float:
        """A third of the lease: two heartbeats may be late before the node is taken for dead."""
        return self.lease_seconds / 3


@dataclass(frozen=True)
class NodeView:
    """A node's row as read, with its age on the database's clock."""
    name: str
    host: str
    pid: int
    state: str
    beats: int
    lease_seconds: float
    heartbeat_age: float       # seconds since its last heartbeat, database clock
    started_at: dt.datetime
    taken_over_by: str | None

    @property
    def live(self) -> bool:
        """Running and heartbeating within its lease."""
        return self.state == NodeState.UP and self.heartbeat_age <= self.lease_seconds

    @property
    def silent(self) -> bool:
        """Not stopped cleanly, and past its lease: its work in flight is for the others to take back."""
        return self.state == NodeState.UP and self.heartbeat_age > self.lease_seconds


def nodes_seen(s: Session) -> list[NodeView]:
    """Every node, with its heartbeat's age on the database's clock, by name."""
    now = s.execute(select(db_utcnow())).scalar_one()
    return [NodeView(name=n.name, host=n.host, pid=n.pid, state=n.state, beats=n.beats,
                     lease_seconds=float(n.lease_seconds), heartbeat_age=max(0.0, (now - n.heartbeat_at).total_seconds()),
                     started_at=n.started_at, taken_over_by=n.taken_over_by)
            for n in s.scalars(select(Node).order_by(Node.name))]


def conflict(me: NodeIdentity, others: list[NodeView], *, single_node: bool,
             pid_alive: Callable[[int], bool]) -> str | None:
    """Why ``me`` must not start next to the nodes heartbeating now, or None.

    The same name heartbeating from another host (or from a live process of this one) is a second
    engine with this name: both would recover each other's work. A row of this name left by a
    process that is gone (``kill -9``, a power cut) is this node restarting. On SQLite
    (``single_node``) any other live engine is refused."""
    for node in others:
        if not node.live or (node.host == me.host and (node.pid == me.pid or not pid_alive(node.pid))):
            continue
        where = f"{node.host} (pid {node.pid}, heartbeat {node.heartbeat_age:.0f} s ago)"
        if single_node:
            return (f"another engine ({node.name!r} on {where}) is running on this SQLite database: SQLite is "
                    "single-node. To run several engines on one database use PostgreSQL ([database] url = "
                    "\"postgresql+psycopg://...\", docs/nodes.md); otherwise stop the other engine first")
        if node.name == me.name:
            return (f"[engine] node: {me.name!r} is already heartbeating from {where}: give each engine its own "
                    "name ([engine] node), or stop the other one first")
    return None


def line_clash(s: Session, me: NodeIdentity, labels: list[str], live: set[str]) -> str | None:
    """A line of ours whose label a live node already drives: labels are unique across nodes (a status
    report is matched by line and reference)."""
    if not labels:
        return None
    for label, node in s.execute(select(Line.label, Line.node).where(Line.label.in_(labels), Line.node != me.name)):
        if node in live:
            return (f"line {label!r} is driven by node {node!r}: every modem label and trunk name must be unique "
                    "across the engines sharing the database")
    return None


def register(sessions: sessionmaker[Session], me: NodeIdentity, *, single_node: bool,
             pid_alive: Callable[[int], bool], labels: list[str] = ()) -> None:
    """At start: refuse (NodeConflict) or write this node's row, heartbeating from now."""
    try:
        with sessions.begin() as s:
            views = nodes_seen(s)
            problem = conflict(me, views, single_node=single_node, pid_alive=pid_alive) or line_clash(
                s, me, list(labels), {v.name for v in views if v.live and v.name != me.name})
            if problem:
                raise NodeConflict(problem)
            values = dict(host=me.host, pid=me.pid, state=NodeState.UP, started_at=db_utcnow(),
                          heartbeat_at=db_utcnow(), lease_seconds=round(me.lease_seconds),
                          taken_over_by=None, taken_over_at=None)
            if single_node:
                # Any other row is an engine that is gone (else it was refused above): under another
                # name (the box renamed). Not missed: this engine recovers its rows as its own.
                s.execute(update(Node).where(Node.name != me.name, Node.state == NodeState.UP)
                          .values(state=NodeState.STOPPED))
            if any(v.name == me.name for v in views):
                s.execute(update(Node).where(Node.name == me.name).values(beats=Node.beats + 1, **values))
            else:
                s.execute(insert(Node).values(name=me.name, beats=0, **values))
    except IntegrityError:
        raise NodeConflict(f"[engine] node: {me.name!r} was registered by another engine starting at the same "
                           "moment: give each engine its own name") from None


@dataclass(frozen=True)
class Takeover:
    node: str
    deliveries: int
    replies: int
    silent_for: float      # seconds since its last heartbeat (database clock)
    was_up: bool           # False: it had stopped cleanly but left work behind


def heartbeat(s: Session, name: str) -> str | None:
    """Write this node's heartbeat; the state it had (DOWN: others took its work while it was silent)."""
    before = s.scalar(select(Node.state).where(Node.name == name))
    s.execute(update(Node).where(Node.name == name).values(
        heartbeat_at=db_utcnow(), beats=Node.beats + 1, state=NodeState.UP))
    return before


def take_over(s: Session, view: NodeView, me: str) -> bool:
    """Mark ``view``'s node down (or, stopped, taken over), if nobody did since it was read: the
    conditional update that lets one survivor only take its work. In the caller's transaction."""
    new_state = NodeState.DOWN if view.state == NodeState.UP else view.state
    return s.execute(update(Node).where(Node.name == view.name, Node.beats == view.beats).values(
        state=new_state, beats=Node.beats + 1, taken_over_by=me, taken_over_at=db_utcnow())).rowcount == 1


def left_work(s: Session, node: str) -> bool:
    """Whether ``node`` still holds deliveries or answers in flight."""
    return any(s.scalar(select(func.count()).select_from(table).where(table.node == node, table.state == state))
               for table, state in ((Delivery, DeliveryState.SUBMITTING), (SmsReply, ReplyState.SUBMITTING)))


class NodeWatch:
    """This engine's heartbeat and its watch over the others, one ``tick`` at a time (on the store's
    writer thread: it is database work, and must not stall the event loop).

    ``take_deliveries`` and ``take_replies`` (Store.take_over, ReplyQueue.take_over) put a node's work
    in flight back in the caller's transaction; ``alarms`` raises and clears node_down."""

    def __init__(self, sessions: sessionmaker[Session], me: NodeIdentity, *,
                 take_deliveries: Callable[[Session, str], int], take_replies: Callable[[Session, str], int],
                 alarms=None) -> None:  # noqa: ANN001 - an AlarmMonitor (raise_alarm, clear_alarm)
        self.sessions = sessions
        self.me = me
        self._take_deliveries = take_deliveries
        self._take_replies = take_replies
        self.alarms = alarms
        # Set when this node heartbeats again after the others took its work: its claims in hand are
        # theirs now (the dispatcher drops them unsent; Store writes nothing for them any more).
        self.lost_claims = False

    def tick(self) -> list[Takeover]:
        """Heartbeat, then take back the work of every node past its lease. Returns what was taken."""
        with self.sessions.begin() as s:
            before = heartbeat(s, self.me.name)
        if before == NodeState.DOWN:
            self.lost_claims = True
            log.warning("node %s: heartbeating again after the others took its work in flight back "
                        "(what it sent meanwhile went again, flagged)", self.me.name)
        taken: list[Takeover] = []
        with self.sessions() as s:
            views = nodes_seen(s)
        for view in views:
            if view.name == self.me.name:
                continue
            if view.silent or (view.state == NodeState.STOPPED and view.heartbeat_age > view.lease_seconds
                               and self._has_work(view.name)):
                done = self._take(view)
                if done is not None:
                    taken.append(done)
        self._settle_alarms(views, taken)
        return taken

    def _has_work(self, node: str) -> bool:
        with self.sessions() as s:
            return left_work(s, node)

    def _take(self, view: NodeView) -> Takeover | None:
        with self.sessions.begin() as s:
            if not take_over(s, view, self.me.name):
                return None      # another survivor was first, or it heartbeat meanwhile
            deliveries = self._take_deliveries(s, view.name)
            replies = self._take_replies(s, view.name)
        log.warning("node %s silent for %.0f s (lease %.0f s): %d deliveries and %d answers it had in flight "
                    "taken back, to go again flagged as possible duplicates", view.name, view.heartbeat_age,
                    view.lease_seconds, deliveries, replies)
        return Takeover(view.name, deliveries, replies, view.heartbeat_age, view.state == NodeState.UP)

    def _settle_alarms(self, views: list[NodeView], taken: list[Takeover]) -> None:
        if self.alarms is None:
            return
        for done in taken:
            if done.was_up:
                self.alarms.raise_alarm(NODE_DOWN, done.node, f"nodo {done.node} senza battito da "
                                        f"{done.silent_for:.0f} s: {done.deliveries} invii ripresi da {self.me.name}")
        with self.sessions() as s:
            open_for = set(s.scalars(select(Alarm.subject).where(Alarm.kind == NODE_DOWN, Alarm.cleared_at.is_(None))))
        for view in views:
            if view.name in open_for and (view.live or view.name == self.me.name):
                self.alarms.clear_alarm(NODE_DOWN, view.name)

    def stop(self) -> None:
        """A clean stop: the node is not missed (no alarm); work it could not finish stays its own
        until it starts again, or is taken back once its lease has passed."""
        with self.sessions.begin() as s:
            s.execute(update(Node).where(Node.name == self.me.name).values(
                state=NodeState.STOPPED, heartbeat_at=db_utcnow(), beats=Node.beats + 1))
