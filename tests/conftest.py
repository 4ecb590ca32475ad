"""Shared fixtures (a migrated temporary database, the services and the panel over it) and the test tiers.

Tiers: every test not marked `integration` or `browser` is marked `unit` here, and a unit test may open
no subprocess, pty or network socket (enforced below), so `pytest -m unit` stays fast.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask import Flask
from jinja2 import FileSystemBytecodeCache

import web.app
import web.users
from gateway.core.contacts_import import import_contacts
from gateway.core.services import Services, build_services
from gateway.core.config import load_config
from tests.pg_support import PostgresCluster
from tests.support import CONTACTS_CSV, DATABASE, FakeClock, write_config
from tests.web_support import make_app, open_app

UNIT_RULE = "unit tests open no subprocess/pty/socket: mark it integration"
_NETWORK = (socket.AF_INET, socket.AF_INET6)


class UnitTierViolation(Exception):
    """Raised by what a unit test may not do; raised again after the test if the code under test swallowed it."""


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: `-m unit` must see the marks added here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("integration") is None and item.get_closest_marker("browser") is None:
            item.add_marker(pytest.mark.unit)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``both_databases`` runs twice: on SQLite, and on PostgreSQL (marked ``postgresql`` and
    ``integration``: it needs the throwaway cluster of tests/pg_support.py, started by a subprocess)."""
    # Only tests whose fixtures build a config (config_path, app, or `database` itself) can switch.
    if metafunc.definition.get_closest_marker("both_databases") is not None and "database" in metafunc.fixturenames:
        metafunc.parametrize("database", ["sqlite", pytest.param("postgresql", marks=[
            pytest.mark.postgresql, pytest.mark.integration])], indirect=True)


@pytest.fixture(scope="session")
def postgres_cluster(request: pytest.FixtureRequest) -> PostgresCluster:
    cluster = PostgresCluster()
    try:
        cluster.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))  # never a skip: the PostgreSQL tier is part of the suite
    # Stopped when the session ends, not in a fixture teardown: that would run inside the session's last
    # test, and when that one is a unit test its rule forbids the pg_ctl subprocess.
    request.config.add_cleanup(cluster.stop)
    return cluster


@pytest.fixture
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """"sqlite" or "postgresql": the database every config written by this test points at."""
    choice = getattr(request, "param", "sqlite")
    if choice == "postgresql":
        DATABASE.new_database = request.getfixturevalue("postgres_cluster").new_database
    try:
        yield choice
    finally:
        DATABASE.reset()


@contextlib.contextmanager
def _unit_rule(item: pytest.Item) -> Iterator[None]:
    """Within a unit test, spawning a process, opening a pty or an INET socket fails with UNIT_RULE.

    Asyncio's own AF_UNIX socketpair stays allowed. A hook wrapper rather than an autouse fixture, so the
    setup of module- or session-scoped fixtures a unit test pulls in is covered too.
    """
    if item.get_closest_marker("unit") is None:
        yield
        return
    attempts: list[str] = []

    def refuse(what: str):
        def refused(*args, **kwargs):
            attempts.append(f"{what}{args[:2]!r}")
            raise UnitTierViolation(f"{UNIT_RULE} ({item.nodeid} called {what})")
        return refused

    def network_only(what: str, original):
        def guarded(sock: socket.socket, *args, **kwargs):
            if sock.family in _NETWORK:
                return refuse(what)(sock, *args)
            return original(sock, *args, **kwargs)
        return guarded

    with pytest.MonkeyPatch.context() as patch:
        # _execute_child is where every Popen (subprocess.run, asyncio's subprocesses) forks.
        patch.setattr(subprocess.Popen, "_execute_child", refuse("subprocess.Popen"))
        for name in ("fork", "forkpty", "openpty", "posix_spawn", "posix_spawnp", "system"):
            patch.setattr(os, name, refuse(f"os.{name}"))  # pty.openpty and pty.fork call these
        for name in ("bind", "connect", "connect_ex"):
            patch.setattr(socket.socket, name, network_only(f"socket.{name}", getattr(socket.socket, name)))
        try:
            yield
        finally:
            if attempts:  # also when the code under test swallowed the exception
                raise UnitTierViolation(f"{UNIT_RULE}: {item.nodeid} called {', '.join(attempts)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    with _unit_rule(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    with _unit_rule(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    with _unit_rule(item):
        return (yield)


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing() -> Iterator[PasswordHasher]:
    """Panel passwords hash at Argon2's minimum cost in tests; yields the production hasher it stands in for.

    At the production cost (64 MiB, 3 passes) a hash takes 0.1-0.3 s here, and each panel test creates four
    users and signs in: most of the unit tier's time. The tests check who may sign in, not the cost;
    test_tiers.py checks that the production hasher keeps its cost.
    """
    with pytest.MonkeyPatch.context() as patch:
        production = web.users._hasher
        patch.setattr(web.users, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        yield production


@pytest.fixture(autouse=True, scope="session")
def panel_compiled_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every panel test builds its own app, and each app compiled the .po catalogues and its Jinja templates
    again: a third of the unit tier. Here the catalogues are compiled once per session and the templates'
    bytecode is shared through Jinja's own cache (keyed by the template source), as a long-running panel has it.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(web.app, "compile_catalogues", functools.cache(web.app.compile_catalogues))
        cache = FileSystemBytecodeCache(str(tmp_path_factory.mktemp("jinja")))
        patch.setattr(Flask, "jinja_options", {**Flask.jinja_options, "bytecode_cache": cache})
        yield


@pytest.fixture
def audio_tools() -> None:
    """Tests that render or convert audio need Debian's sox and espeak-ng: they fail, never skip."""
    missing = [tool for tool in ("sox", "espeak-ng") if not shutil.which(tool)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed: apt-get install espeak-ng sox libsox-fmt-mp3")


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database migrated once per session; the fixtures below start from a copy of it.

    Running the migrations is about half of what building the services costs, and most tests do that.
    """
    config_path = write_config(tmp_path_factory.mktemp("migrated"))
    build_services(load_config(config_path)).engine.dispose()  # disposing checkpoints the WAL into the file
    return Path(load_config(config_path).general.data_dir) / "allerta.db"


def _seed(tmp_path: Path, migrated_database: Path) -> None:
    """The data_dir write_config(tmp_path) names, holding a copy of the migrated database."""
    (tmp_path / "data").mkdir(exist_ok=True)
    shutil.copyfile(migrated_database, tmp_path / "data" / "allerta.db")


@pytest.fixture
def config_path(tmp_path: Path, migrated_database: Path, database: str) -> Path:
    _seed(tmp_path, migrated_database)
    return write_config(tmp_path)


@pytest.fixture
def services(config_path: Path) -> Services:
    return build_services(load_config(config_path))


@pytest.fixture
def contacts(services: Services) -> Services:
    report = import_contacts(services.sessions, CONTACTS_CSV.encode("utf-8"))
    assert report.imported and not report.rejected, report.rejected
    return services


@pytest.fixture(scope="session")
def panel_data_dir(tmp_path_factory: pytest.TempPathFactory, migrated_database: Path) -> Path:
    """A data_dir as make_app leaves it (users, contacts, audit chain and its anchor), made once per session."""
    made = tmp_path_factory.mktemp("panel")
    _seed(made, migrated_database)
    make_app(made).extensions["allerta"].services.engine.dispose()  # disposing checkpoints the WAL
    return made / "data"


@pytest.fixture
def app(tmp_path: Path, panel_data_dir: Path, database: str):
    """The panel over a copy of panel_data_dir: one user per role (web_support.ROLE_USERS), the sample contacts
    (on PostgreSQL, made afresh in the test's own database)."""
    if database == "postgresql":
        return make_app(tmp_path)
    shutil.copytree(panel_data_dir, tmp_path / "data")
    return open_app(tmp_path)


@pytest.fixture
def panel(app):
    return app.extensions["allerta"]


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
