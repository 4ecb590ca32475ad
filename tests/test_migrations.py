"""The shipped migrations build exactly the schema the models describe."""
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gateway.core.db import make_engine, migrate, schema_is_current
from gateway.core.models import Base


def test_migrations_match_models(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    assert schema_is_current(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], diff


def test_sqlite_pragmas(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_0003_fills_the_zone_of_deliveries_made_before(tmp_path):
    from alembic import command
    from gateway.core.db import _alembic_config
    engine = make_engine(f"sqlite:///{tmp_path / 'z.db'}")
    command.upgrade(_alembic_config(engine), "0002")
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO zones (id, name) VALUES (1, 'Fregene'), (2, 'Isola Sacra')")
        c.exec_driver_sql("INSERT INTO numbers (id, e164, kind, opted_out) VALUES (1, '+393331110001', 'mobile', 0)")
        c.exec_driver_sql("INSERT INTO contacts (id, name, zone_id, language, vulnerable, created_at) VALUES "
                          "(1, 'A', 2, 'it', 0, '2026-01-01'), (2, 'B', 1, 'it', 0, '2026-01-01')")
        c.exec_driver_sql("INSERT INTO contact_numbers (contact_id, number_id) VALUES (1, 1), (2, 1)")
        c.exec_driver_sql("INSERT INTO alerts (id, created_at, created_by, text, sms_text, encoding, segments, "
                          "channels, target, drill, priority, state, recipients, max_attempts, voice_interval, "
                          "voice_growth, voice_cap, stop_on_confirm, sms_fallback) VALUES (1, '2026-01-01', 'x', "
                          "'t', 't', 'gsm7', 1, 'sms', '{}', 0, 0, 'active', 1, 3, 300, 1.5, 6, 1, 0)")
        c.exec_driver_sql("INSERT INTO deliveries (id, alert_id, number_id, e164, channel, state, sort_key, "
                          "vulnerable, language, attempts, submissions, possible_duplicate, parts_total, "
                          "parts_delivered) VALUES (1, 1, 1, '+393331110001', 'sms', 'delivered', 3, 0, 'it', "
                          "1, 1, 0, 1, 1)")
    migrate(engine)
    with engine.connect() as c:
        # A household across two zones: the first by name, as the panel showed it before.
        assert c.exec_driver_sql("SELECT zone FROM deliveries WHERE id = 1").scalar() == "Fregene"
