"""Engines sharing one database (gateway.core.nodes): heartbeats on the database's clock, the conditional
takeover of a silent node's work, the claim that never hands a delivery to two nodes, and SQLite saying
it is single-node. Through the real Store over SQLite and PostgreSQL (the `both_databases` mark); the
engines as processes are in tests/test_engine_nodes.py."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, text, update

from gateway.core.alarms import AlarmMonitor, AlarmSettings
from gateway.core.alerts import AlertRequest, Target
from gateway.core.channels import LineStatus, SubmitReceipt
from gateway.core.config import parse_config
from gateway.core.contacts_import import import_contacts
from gateway.core.models import Delivery, Line
from gateway.core.models_ops import Alarm, Node
from gateway.core.nodes import (NODE_DOWN, NodeConflict, NodeIdentity, NodeView, NodeWatch, conflict, db_utcnow,
                                nodes_seen, register)
from gateway.core.reply_queue import ReplyQueue
from gateway.core.retry import RetryVerdict
from gateway.core.services import build_services
from gateway.core.states import Channel, DeliveryState, DuplicateCause, LineState, NodeState
from gateway.core.store import Store
from gateway.shell.cli import main
from tests.support import CONTACTS_CSV

pytestmark = pytest.mark.both_databases

HOST = "box-a"


def me(name: str, *, host: str = HOST, pid: int = 100, lease: float = 3.0) -> NodeIdentity:
    return NodeIdentity(name=name, host=host, pid=pid, lease_seconds=lease)


def view(name: str, *, host: str = HOST, pid: int = 100, state: str = NodeState.UP, age: float = 1.0,
         lease: float = 3.0) -> NodeView:
    return NodeView(name=name, host=host, pid=pid, state=state, beats=1, lease_seconds=lease, heartbeat_age=age,
                    started_at=dt.datetime(2026, 12, 1), taken_over_by=None)


def alive(_pid: int) -> bool:
    return True


def dead(_pid: int) -> bool:
    return False


# --- who may start: pure -----------------------------------------------------------------
def test_a_second_engine_on_sqlite_is_refused_saying_sqlite_is_single_node():
    problem = conflict(me("coc"), [view("municipio", host="box-b")], single_node=True, pid_alive=alive)
    assert "SQLite is single-node" in problem and "PostgreSQL" in problem and "'municipio' on box-b" in problem
    # The same box restarted after a kill -9: the row's process is gone, it is this node again.
    assert conflict(me("coc", pid=200), [view("coc", pid=100)], single_node=True, pid_alive=dead) is None
    # An engine that stopped heartbeating long ago is no engine.
    assert conflict(me("coc"), [view("x", host="box-b", age=60)], single_node=True, pid_alive=alive) is None
    assert conflict(me("coc"), [view("x", host="box-b", state=NodeState.STOPPED)], single_node=True,
                    pid_alive=alive) is None


def test_on_postgresql_other_nodes_may_run_but_not_under_the_same_name():
    assert conflict(me("coc"), [view("municipio", host="box-b")], single_node=False, pid_alive=alive) is None
    problem = conflict(me("coc"), [view("coc", host="box-b")], single_node=False, pid_alive=alive)
    assert problem.startswith("[engine] node: 'coc' is already heartbeating from box-b")
    # Two processes of one box under one name: the second is refused while the first lives.
    assert "already heartbeating" in conflict(me("coc", pid=200), [view("coc", pid=100)], single_node=False,
                                              pid_alive=alive)


# --- heartbeats on the database's clock ----------------------------------------------------
def make_old(services, name: str, seconds: float) -> None:
    """The node's last heartbeat was ``seconds`` ago on the database's clock (it went silent)."""
    with services.sessions.begin() as s:
        now = s.execute(select(db_utcnow())).scalar_one()
        s.execute(update(Node).where(Node.name == name).values(heartbeat_at=now - dt.timedelta(seconds=seconds)))


def test_register_writes_the_heartbeat_with_the_database_clock(services, database):
    register(services.sessions, me("coc"), single_node=database == "sqlite", pid_alive=dead)
    with services.sessions() as s:
        row = s.scalar(select(Node).where(Node.name == "coc"))
        db_now = s.execute(select(db_utcnow())).scalar_one()
        [seen] = nodes_seen(s)
    assert row.state == NodeState.UP and row.host == HOST and row.pid == 100 and row.lease_seconds == 3
    assert abs((db_now - row.heartbeat_at).total_seconds()) < 5 and seen.live
    make_old(services, "coc", 10)
    with services.sessions() as s:
        [seen] = nodes_seen(s)
    assert 9 < seen.heartbeat_age < 15 and seen.silent


def test_sqlite_refuses_a_second_live_engine_and_postgresql_a_duplicate_name(services, database):
    register(services.sessions, me("coc"), single_node=database == "sqlite", pid_alive=alive)
    if database == "sqlite":
        with pytest.raises(NodeConflict, match="SQLite is single-node"):
            register(services.sessions, me("municipio", host="box-b"), single_node=True, pid_alive=alive)
    else:
        register(services.sessions, me("municipio", host="box-b"), single_node=False, pid_alive=alive)
    same_name = "SQLite is single-node" if database == "sqlite" else "'coc' is already heartbeating from box-a"
    with pytest.raises(NodeConflict, match=same_name):
        register(services.sessions, me("coc", host="box-c"), single_node=database == "sqlite", pid_alive=alive)


def test_a_line_label_driven_by_another_live_node_is_refused(services, database):
    register(services.sessions, me("coc"), single_node=False, pid_alive=alive)
    Store(services.sessions, node="coc").record_line_statuses([line_status("m1")])
    with pytest.raises(NodeConflict, match="line 'm1' is driven by node 'coc'"):
        register(services.sessions, me("municipio", host="box-b"), single_node=False, pid_alive=alive,
                 labels=["m1"])
    register(services.sessions, me("municipio", host="box-b"), single_node=False, pid_alive=alive, labels=["m2"])


def line_status(label: str) -> LineStatus:
    return LineStatus(label=label, channel=Channel.SMS, state=LineState.UP, rate_per_minute=20.0)


# --- taking a silent node's work back ------------------------------------------------------
class Alarms:
    """An AlarmMonitor over the test's database, nobody on call."""

    def __new__(cls, services):
        return AlarmMonitor(services.sessions, services.alerts, AlarmSettings(comune="Test"))


def watch(services, name: str) -> NodeWatch:
    store = Store(services.sessions, node=name)
    return NodeWatch(services.sessions, me(name), take_deliveries=store.take_over,
                     take_replies=ReplyQueue(services.sessions, node=name).take_over, alarms=Alarms(services))


def two_nodes(services) -> tuple[Store, Store]:
    for name, host in (("a", "box-a"), ("b", "box-b")):
        register(services.sessions, me(name, host=host), single_node=False, pid_alive=alive)
    return Store(services.sessions, node="a"), Store(services.sessions, node="b")


def by_id(services, alert_id: int) -> dict[int, Delivery]:
    with services.sessions() as s:
        return {d.id: d for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id))}


def open_alarms(services) -> set[tuple[str, str]]:
    with services.sessions() as s:
        return set(s.execute(select(Alarm.kind, Alarm.subject).where(Alarm.cleared_at.is_(None))).all())


def test_a_silent_nodes_deliveries_are_taken_back_once_flagged_and_its_alarm_raised_and_cleared(contacts, database):
    alert_id, _ = contacts.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
    a, b = two_nodes(contacts)
    taken_by_a = a.claim("sms", 3)
    sent_by_a = a.claim("sms", 1)[0]
    a.record_result(sent_by_a, RetryVerdict(DeliveryState.SENT, charged=True),
                    receipt=SubmitReceipt(line="m1", references=[7]))
    assert {d.node for d in by_id(contacts, alert_id).values() if d.state == "submitting"} == {"a"}
    # b's heartbeat sees a within its lease: nothing happens.
    assert watch(contacts, "b").tick() == []
    make_old(contacts, "a", 10)
    [done] = watch(contacts, "b").tick()
    assert (done.node, done.deliveries, done.was_up) == ("a", 3, True)
    rows = by_id(contacts, alert_id)
    for claim in taken_by_a:
        row = rows[claim.delivery_id]
        assert (row.state, row.possible_duplicate, row.duplicate_cause) == ("pending", True, DuplicateCause.NODE_DOWN)
        assert "node a stopping (it stopped heartbeating; taken over by b)" in row.last_error
    # What a sent is not sent again: once-only.
    assert rows[sent_by_a.delivery_id].state == "sent" and not rows[sent_by_a.delivery_id].possible_duplicate
    assert open_alarms(contacts) == {(NODE_DOWN, "a")}
    # A third survivor that read the same silent row comes too late: the takeover is b's alone.
    assert watch(contacts, "c").tick() == []
    with contacts.sessions() as s:
        assert s.scalar(select(Node.state).where(Node.name == "a")) == NodeState.DOWN
    # b claims them again; a result a records late (it was only cut off) changes none of b's claims.
    again = b.claim("sms", 10)
    assert {c.delivery_id for c in taken_by_a} <= {c.delivery_id for c in again}
    assert all(c.possible_duplicate for c in again if c.delivery_id in {t.delivery_id for t in taken_by_a})
    a.record_result(taken_by_a[0], RetryVerdict(DeliveryState.SENT, charged=True),
                    receipt=SubmitReceipt(line="m1", references=[8]))
    a.release_claims(taken_by_a[1:])
    rows = by_id(contacts, alert_id)
    assert {rows[c.delivery_id].state for c in taken_by_a} == {"submitting"}
    assert {rows[c.delivery_id].node for c in taken_by_a} == {"b"}
    # a heartbeats again: its alarm is cleared.
    watch(contacts, "a").tick()
    assert open_alarms(contacts) == set()


def test_a_restart_recovers_its_own_work_only(contacts, database):
    alert_id, _ = contacts.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
    a, b = two_nodes(contacts)
    of_a, of_b = a.claim("sms", 2), b.claim("sms", 2)
    assert b.recover_interrupted() == 2
    rows = by_id(contacts, alert_id)
    assert {rows[c.delivery_id].state for c in of_a} == {"submitting"}
    assert {rows[c.delivery_id].state for c in of_b} == {"pending"}


def test_a_silent_nodes_calls_never_exceed_the_per_number_cap(contacts, database, tmp_path):
    (tmp_path / "msg.wav").write_bytes(b"")
    alert_id, _ = contacts.alerts.create(AlertRequest(
        text="Allerta", channels=("voice",), target=Target(everyone=True), audio_path=str(tmp_path / "msg"),
        audio_seconds=3.0, audio_source="tts", voice_cap=1))
    a, _b = two_nodes(contacts)
    calls = a.claim("voice", 2, ahead=True)      # claimed ahead: whether they were placed is on a's disk
    make_old(contacts, "a", 10)
    [done] = watch(contacts, "b").tick()
    assert done.deliveries == 0
    rows = by_id(contacts, alert_id)
    # Its one call allowed may have rung: counted, never made again.
    assert {rows[c.delivery_id].state for c in calls} == {"failed"}
    assert all("cap" in rows[c.delivery_id].last_error for c in calls)


def test_a_cleanly_stopped_node_raises_no_alarm_and_its_leftovers_are_taken_after_the_lease(contacts, database):
    contacts.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
    a, _b = two_nodes(contacts)
    a.claim("sms", 1)                 # stuck on a hung modem at the stop
    watch(contacts, "a").stop()
    assert watch(contacts, "b").tick() == []
    make_old(contacts, "a", 10)
    [done] = watch(contacts, "b").tick()
    assert (done.deliveries, done.was_up) == (1, False)
    assert open_alarms(contacts) == set()
    assert watch(contacts, "b").tick() == []     # nothing left: not taken over again


def test_lines_carry_their_node(services, database):
    Store(services.sessions, node="coc").record_line_statuses([line_status("m1")])
    with services.sessions() as s:
        assert s.scalar(select(Line.node).where(Line.label == "m1")) == "coc"


@pytest.mark.postgresql
@pytest.mark.integration
def test_on_postgresql_a_claim_skips_rows_another_node_is_taking_instead_of_waiting(tmp_path, postgres_cluster):
    # The engine's connections give up on a lock after 5 s: without SKIP LOCKED the claim would fail
    # (waiting on the other transaction, held by this very test), not hang.
    url = postgres_cluster.new_database() + "&options=-c%20lock_timeout%3D5000"
    services = build_services(parse_config({"general": {"data_dir": str(tmp_path / "data")},
                                            "database": {"url": url}}))
    import_contacts(services.sessions, CONTACTS_CSV.encode("utf-8"))
    _, preview = services.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
    total = preview.recipients["sms"]
    with services.engine.connect() as other:
        # Another node's claim, in the middle of its transaction, holds the first two candidates.
        held = other.execute(text("SELECT id FROM deliveries WHERE state = 'pending' ORDER BY sort_key, id "
                                  "LIMIT 2 FOR UPDATE")).scalars().all()
        claims = Store(services.sessions, node="b").claim("sms", total)
        other.rollback()
    assert total > 2 and len(held) == 2
    assert len(claims) == total - 2 and not {c.delivery_id for c in claims} & set(held)
    services.engine.dispose()


def test_allerta_nodes_lists_every_engine_with_its_heartbeat_on_the_database_clock(contacts, config_path, database,
                                                                                   capsys):
    two_nodes(contacts)
    make_old(contacts, "a", 100)
    watch(contacts, "b").tick()
    assert main(["--config", str(config_path), "nodes", "--json"]) == 0
    rows = {r["node"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["a"]["state"] == "down" and rows["a"]["taken_over_by"] == "b" and not rows["a"]["live"]
    assert rows["a"]["heartbeat_seconds_ago"] >= 99 and rows["b"]["live"] and rows["b"]["host"] == "box-b"
    assert main(["--config", str(config_path), "nodes"]) == 0
    text = capsys.readouterr().out
    assert "work taken over by b" in text and "b                up       box-b pid 100, heartbeat " in text


def test_on_sqlite_a_renamed_engine_recovers_what_it_left_in_flight_under_its_old_name(contacts, database):
    if database != "sqlite":
        return   # several nodes on PostgreSQL: the old name's work is taken over after its lease (above)
    alert_id, _ = contacts.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
    register(contacts.sessions, me("old-name"), single_node=True, pid_alive=alive)
    Store(contacts.sessions, node="old-name").claim("sms", 2)
    make_old(contacts, "old-name", 100)
    register(contacts.sessions, me("new-name", pid=200), single_node=True, pid_alive=dead)
    assert Store(contacts.sessions, node="new-name", single_node=True).recover_interrupted() == 2
    assert {d.state for d in by_id(contacts, alert_id).values()} == {"pending"}
    assert watch(contacts, "new-name").tick() == [] and open_alarms(contacts) == set()


def test_a_node_back_after_its_work_was_taken_knows_its_claims_are_no_longer_its_own(contacts, database):
    contacts.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
    two_nodes(contacts)
    make_old(contacts, "a", 10)
    watch(contacts, "b").tick()
    a = watch(contacts, "a")
    a.tick()
    assert a.lost_claims
    with contacts.sessions() as s:
        assert s.scalar(select(Node.state).where(Node.name == "a")) == NodeState.UP
