"""The services every entry point needs: the database, the store and the alert service.

Built here, in the core, so the panel, the CLI and the engine open the database the
same way; the engine's channels are wired on top of these by gateway/shell/composition.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.alerts import AlertService
from gateway.core.config import Config, ConfigError
from gateway.core.db import make_engine, make_sessionmaker, migrate, shown_url
from gateway.core.line_health import stale_after
from gateway.core.quiet_hours import parse_window
from gateway.core.store import Store


@dataclass
class Services:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    store: Store
    alerts: AlertService


def _database_error(config: Config, exc: BaseException) -> ConfigError:
    """A database that cannot be opened is a configuration error naming its key, not a traceback."""
    key = "[database] url" if config.database.url else "[general] data_dir"
    shown = shown_url(config.database_url)  # never print the password
    if isinstance(exc, ImportError):
        detail = (f"no database driver for this URL ({exc.name or exc}); for PostgreSQL install "
                  "the 'postgresql' extra: pip install 'allerta[postgresql]'")
    else:
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return ConfigError(f"{key}: cannot open the database {shown}: {detail}")


def build_services(config: Config, *, migrate_schema: bool = True) -> Services:
    try:
        engine = make_engine(config.database_url, busy_timeout=config.database.busy_timeout)
        if migrate_schema:
            migrate(engine)
    except (ArgumentError, SQLAlchemyError, ImportError, OSError) as exc:
        raise _database_error(config, exc) from None
    sessions = make_sessionmaker(engine)
    general = config.general
    quiet_hours = parse_window(config.ops.quiet_hours)   # validated with the configuration
    return Services(config=config, engine=engine, sessions=sessions,
                    store=Store(sessions, report_wait_seconds=config.engine.report_timeout, quiet_hours=quiet_hours,
                                node=config.node_name, single_node=engine.dialect.name == "sqlite"),
                    alerts=AlertService(sessions, region=general.region, max_segments=general.max_sms_segments,
                                        drill_prefix=general.drill_prefix,
                                        stale_seconds=stale_after(config.engine.health_interval),
                                        quiet_hours=quiet_hours,
                                        hotline_number=general.hotline_number if general.hotline_in_sms else ""))
