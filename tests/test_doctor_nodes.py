"""`allerta doctor` on the engines sharing the database: node names, heartbeats, the database user's rights."""
from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from gateway.core.config import load_config
from gateway.core.models_ops import Node
from gateway.core.checks import FAIL, OK
from gateway.core.nodes import NodeIdentity, db_utcnow, register
from gateway.core.services import build_services
from gateway.shell.doctor_nodes import node_checks

pytestmark = pytest.mark.both_databases


def started(services, name: str, host: str, *, silent_for: float = 0.0) -> None:
    register(services.sessions, NodeIdentity(name, host, 4242, 30.0), single_node=False, pid_alive=lambda pid: True)
    if silent_for:
        with services.sessions.begin() as s:
            now = s.execute(select(db_utcnow())).scalar_one()
            s.execute(update(Node).where(Node.name == name).values(heartbeat_at=now - dt.timedelta(seconds=silent_for)))


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


def test_a_node_name_heartbeating_from_another_host_and_a_silent_node_fail(services, config_path, database):
    config = load_config(config_path)
    started(services, config.node_name, "other-box")
    started(services, "municipio", "box-m", silent_for=120)
    checks = by_name(node_checks(config, host="this-box"))
    assert checks["node name"].status == FAIL and "is heartbeating from other-box" in checks["node name"].detail
    assert "[engine] node" in checks["node name"].fix
    assert checks[f"node {config.node_name}"].status == OK
    assert checks["node municipio"].status == FAIL and "no heartbeat for 1" in checks["node municipio"].detail
    assert checks["database rights"].status == OK


def test_the_nodes_own_name_fresh_from_this_box_passes(services, config_path, database):
    config = load_config(config_path)
    assert by_name(node_checks(config, host="this-box"))["node name"].status == OK   # never run yet
    started(services, config.node_name, "this-box")
    checks = node_checks(config, host="this-box")
    assert {c.status for c in checks} == {OK}, checks


@pytest.mark.postgresql
@pytest.mark.integration
def test_a_database_user_without_the_engines_rights_fails_naming_them(tmp_path, postgres_cluster):
    url = postgres_cluster.new_database()
    path = tmp_path / "allerta.toml"
    path.write_text(f'[general]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{url}"\n')
    build_services(load_config(path)).engine.dispose()
    database = make_url(url).database
    with psycopg.connect(host=str(postgres_cluster.socket_dir), user=postgres_cluster.user, dbname=database,
                         autocommit=True) as conn:
        conn.execute("CREATE ROLE reader LOGIN")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
    path.write_text(path.read_text().replace(f"{postgres_cluster.user}@", "reader@"))
    checks = by_name(node_checks(load_config(path), host="this-box"))
    rights = checks["database rights"]
    assert rights.status == FAIL and rights.detail.startswith("user reader lacks INSERT on ")
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES" in rights.fix
