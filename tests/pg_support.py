"""The tests' throwaway PostgreSQL cluster: gateway/shell/pg_cluster.py (the benchmarks start it too), with
every test's database a copy of one migrated once per cluster (CREATE DATABASE ... TEMPLATE): running the
migrations on every test's database was most of a PostgreSQL test's setup. The template's own migration
from an empty database is the PostgreSQL run of the whole chain."""
from __future__ import annotations

import os

from gateway.core.db import make_engine, migrate
from gateway.shell.pg_cluster import MISSING, server_bin
from gateway.shell.pg_cluster import PostgresCluster as _EmptyDatabases

__all__ = ["MISSING", "PostgresCluster", "server_bin"]


class PostgresCluster(_EmptyDatabases):
    _template: str | None = None

    def new_database(self) -> str:
        """A fresh database, its schema at the latest migration and no rows; its SQLAlchemy URL."""
        import psycopg  # noqa: PLC0415 - only the PostgreSQL tier needs the driver loaded
        name = f"allerta_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(host=str(self.socket_dir), user=self.user, dbname="postgres", autocommit=True) as conn:
            if self._template is None:
                template = f"allerta_template_{os.getpid()}"
                conn.execute(f'CREATE DATABASE "{template}"')
                engine = make_engine(self.url(template))
                migrate(engine)
                engine.dispose()   # CREATE DATABASE ... TEMPLATE refuses a template anyone is connected to
                self._template = template
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return self.url(name)
