"""Schema versions: Alembic migrations from the first schema on.

``upgrade(engine)`` brings any database to the head revision (``gapsweep db upgrade``).
``ensure_current(engine)`` is what every command runs on opening a database: an empty database is
initialised (creating the schema from nothing cannot lose data); one at an older revision is an
error telling you to run ``gapsweep db upgrade``; one from a newer gapsweep is an error too.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from db.engine import DatabaseError, mask

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x6761707377656570   # "gapsweep": serialises concurrent upgrades


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _lock(connection: Connection) -> None:
    # SQLite: the transaction began with BEGIN IMMEDIATE, which already excludes other writers.
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to head in one transaction; returns (revision before, revision after)."""
    with engine.begin() as connection:
        _lock(connection)
        before = current_revision(connection)
        _check_known(before, engine)
        command.upgrade(alembic_config(connection), "head")
        return before, current_revision(connection)


def ensure_current(engine: Engine) -> None:
    head = head_revision()
    with engine.connect() as connection:
        revision = current_revision(connection)
        tables = set(inspect(connection).get_table_names())
    if revision == head:
        return
    if revision is None and not tables & {"sweeps", "configurations", "runs"}:
        upgrade(engine)
        return
    _check_known(revision, engine)
    raise DatabaseError(
        f"the results database {mask(engine.url)} is at schema revision {revision or 'none'}, "
        f"but this gapsweep needs {head}; run: gapsweep db upgrade --db '{mask(engine.url)}'")


def _check_known(revision: str | None, engine: Engine) -> None:
    if revision is None:
        return
    script = ScriptDirectory.from_config(alembic_config())
    try:
        script.get_revision(revision)
    except Exception:
        raise DatabaseError(
            f"the results database {mask(engine.url)} is at schema revision {revision}, which this "
            "gapsweep does not know: it was written by a newer version; upgrade gapsweep") from None
