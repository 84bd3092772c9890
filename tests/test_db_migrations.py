"""Migrations build the schema from nothing, agree with the ORM, and guard out-of-date databases."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from db.engine import DatabaseError, make_engine, mask
from db.migrate import ensure_current, head_revision, upgrade
from db.models import metadata
from db.store import ResultsStore


def test_upgrade_from_empty_then_idempotent(db_url):
    engine = make_engine(db_url)
    assert upgrade(engine) == (None, head_revision())
    assert upgrade(engine) == (head_revision(), head_revision())
    tables = set(sa.inspect(engine).get_table_names())
    assert {"sweeps", "configurations", "runs", "metrics", "snapshots", "alembic_version"} <= tables
    with engine.connect() as conn:             # the migrated schema is exactly the ORM's
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                metadata)
    assert diff == []
    engine.dispose()


def test_a_database_of_the_first_schema_upgrades_and_keeps_its_runs(db_url):
    """0001 → 0002 adds the runs' canary columns; rows recorded before keep their values; 0003's
    tracking outbox holds every run finished before it (a database of then says nothing of what
    its MLflow has) and no other."""
    from alembic import command

    from db.migrate import alembic_config

    engine = make_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        conn.execute(sa.text("INSERT INTO sweeps (id, name, experiment, spec_yaml, status, "
                             "created_at) VALUES (1, 's', 'e', 'y', 'finished', '2026-11-30')"))
        conn.execute(sa.text("INSERT INTO configurations (id, sweep_id, label, config_hash, config, "
                             "algorithm) VALUES (1, 1, 'bfs', 'h', '{}', 'bfs')"))
        conn.execute(sa.text("INSERT INTO runs (id, configuration_id, seed, status, attempts, "
                             "test_score) VALUES (1, 1, 0, 'done', 1, 0.5)"))
        conn.execute(sa.text("INSERT INTO runs (id, configuration_id, seed, status, attempts) "
                             "VALUES (2, 1, 1, 'pending', 0)"))
    with pytest.raises(DatabaseError, match="run: gapsweep db upgrade"):
        ensure_current(engine)
    assert upgrade(engine) == ("0001", head_revision())
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT seed, test_score, canary, canary_seconds FROM runs")
                            ).first() == (0, 0.5, None, None)
        assert conn.execute(sa.text("SELECT run_id FROM tracking_outbox")).scalars().all() == [1]
    engine.dispose()


def test_empty_database_is_initialised_on_open(db_url):
    with ResultsStore(db_url) as store:
        assert store.sweeps() == []
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() \
                == head_revision()


def test_out_of_date_or_unknown_revisions_are_refused(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:             # tables present, version row gone: not at head
        conn.execute(sa.text("DELETE FROM alembic_version"))
    with pytest.raises(DatabaseError, match=r"needs \w+; run: gapsweep db upgrade --db"):
        ensure_current(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES ('ffff9999')"))
    with pytest.raises(DatabaseError, match="written by a newer version"):
        ResultsStore(db_url)
    engine.dispose()


def test_sqlite_connections_are_configured(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x' / 'r.db'}")   # parent directory created
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000
    engine.dispose()


def test_passwords_never_appear_in_messages():
    url = "postgresql://alice:s3cret@db.example:5432/results"
    assert "s3cret" not in mask(url) and "***" in mask(url)
    with pytest.raises(DatabaseError) as err:
        make_engine("not a url: s3cret")
    assert "s3cret" not in str(err.value)


def test_the_light_revision_readings_agree_with_alembic(db_url):
    """``head_revision`` and ``current_revision`` read the migration files and ``alembic_version``
    without importing Alembic; Alembic's own readings say the same, before and after upgrading."""
    from alembic.script import ScriptDirectory

    from db.migrate import alembic_config, current_revision

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine = make_engine(db_url)
    try:
        for step in ("empty", "upgraded"):
            with engine.connect() as connection:
                ours = current_revision(connection)
                theirs = MigrationContext.configure(connection).get_current_revision()
            assert ours == theirs == (None if step == "empty" else head_revision()), step
            upgrade(engine)
    finally:
        engine.dispose()
