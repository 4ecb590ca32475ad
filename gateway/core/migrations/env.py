"""Alembic environment: migrations ship inside the package and run from code."""
from alembic import context

from gateway.core.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes["engine"]
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode copies a table and drops the old one; with foreign keys on, SQLite's
            # DROP TABLE first deletes every row, and ON DELETE CASCADE takes the children
            # with it (recreating `alerts` would empty `deliveries`). The pragma is a no-op
            # inside a transaction, so it is set before the migration's own begins.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table.
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
        if sqlite:
            problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {problems[:5]}")
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run 'allerta init'")
run_migrations_online()
