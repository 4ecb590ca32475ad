"""A [database] url listing several PostgreSQL servers, against real clusters: libpq skips a server that
does not answer and, with target_session_attrs=read-write, one that is read-only (a standby); a node
whose primary goes away follows the server that takes writes now, without a restart."""
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.core.db import make_engine
from gateway.core.store_worker import RetrySettings, StoreWorker, connection_lost
from tests.engine_harness import wait_until
from tests.pg_support import PostgresCluster

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]


@pytest.fixture(scope="module")
def clusters():
    """A primary-like cluster and a read-only one (default_transaction_read_only, as a standby answers
    libpq's read-write check), each with a database of the same name and a table naming its cluster."""
    primary, read_only = PostgresCluster().start(), PostgresCluster()
    try:
        read_only.start()
        for cluster, name in ((primary, "primary"), (read_only, "read-only")):
            _create_database(cluster, "allerta")
            engine = make_engine(url_of(cluster.socket_dir, database="allerta", read_write=False))
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO notes VALUES (:name)"), {"name": name})
            engine.dispose()
        _read_only(read_only, True)
        yield primary, read_only
    finally:
        for cluster in (primary, read_only):
            cluster.stop()


def url_of(*sockets: Path, database: str, read_write: bool = True) -> str:
    hosts = ",".join(str(socket) for socket in sockets)
    attrs = "&target_session_attrs=read-write" if read_write else ""
    return f"postgresql+psycopg://{PostgresCluster().user}@/{database}?host={hosts}{attrs}"


def whoami(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(text("SELECT server FROM notes"))
    finally:
        engine.dispose()


def test_a_server_that_does_not_answer_is_skipped_for_the_next_one(clusters, tmp_path):
    primary, _ = clusters
    nobody_there = tmp_path / "no-server"
    nobody_there.mkdir()
    assert whoami(url_of(nobody_there, primary.socket_dir, database="allerta")) == "primary"


def test_read_write_skips_a_read_only_server_listed_first(clusters):
    primary, read_only = clusters
    # Without the attribute libpq takes the first that answers, read-only or not.
    assert whoami(url_of(read_only.socket_dir, primary.socket_dir, database="allerta",
                         read_write=False)) == "read-only"
    # With it, a read-only server is passed over (libpq reads default_transaction_read_only at connect).
    assert whoami(url_of(read_only.socket_dir, primary.socket_dir, database="allerta")) == "primary"


def test_a_write_refused_as_read_only_counts_as_a_lost_primary(clusters):
    _, read_only = clusters
    engine = make_engine(url_of(read_only.socket_dir, database="allerta", read_write=False))
    try:
        with pytest.raises(DBAPIError) as refused:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO notes VALUES ('x')"))
        # The pool drops the connection: the next one goes through target_session_attrs again.
        assert refused.value.connection_invalidated and connection_lost(refused.value)
    finally:
        engine.dispose()


def _create_database(cluster: PostgresCluster, name: str) -> None:
    admin = make_engine(url_of(cluster.socket_dir, database="postgres", read_write=False))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    engine = make_engine(url_of(cluster.socket_dir, database=name, read_write=False))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (server text)"))
    engine.dispose()


def _read_only(cluster: PostgresCluster, on: bool) -> None:
    """On: the server answers libpq's read-write check as a standby does, and refuses writes. Off:
    what pg_promote() does for a node's new connections: the server takes writes from now on."""
    admin = make_engine(url_of(cluster.socket_dir, database="postgres", read_write=False))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"ALTER SYSTEM SET default_transaction_read_only = {'on' if on else 'off'}"))
        conn.execute(text("SELECT pg_reload_conf()"))
    admin.dispose()


def test_a_node_follows_the_server_that_takes_writes_once_its_primary_is_gone():
    """The primary stops: the writer finds no server taking writes (the database is lost, said so);
    the other server, read-only until then as a standby, is promoted: the same call, retried, lands
    on it, through the same engine and without a restart."""
    first, second = PostgresCluster().start(), PostgresCluster()
    try:
        second.start()
        for cluster in (first, second):
            _create_database(cluster, "allerta")
        _read_only(second, True)
        engine = make_engine(url_of(first.socket_dir, second.socket_dir, database="allerta"))

        def write_note():
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO notes SELECT current_setting('unix_socket_directories')"))
                return conn.scalar(text("SELECT current_setting('unix_socket_directories')"))

        worker = StoreWorker(RetrySettings(first_pause=0.05, max_pause=0.5))
        worker.start()
        try:
            assert worker.submit(write_note).result(60) == str(first.socket_dir)
            first.stop_server("immediate")
            landed = worker.submit(write_note)
            assert wait_until(lambda: worker.unreachable_since is not None, 60)
            assert not landed.done()
            _read_only(second, False)   # promoted
            assert landed.result(60) == str(second.socket_dir)
        finally:
            assert worker.stop(10)
        assert worker.unreachable_since is None and worker.last_outage is not None
        engine.dispose()
    finally:
        for cluster in (first, second):
            cluster.stop()
