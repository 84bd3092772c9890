"""Schema versions: Alembic migrations from the first schema on.

``upgrade(engine)`` brings any database to the head revision (``gapsweep db upgrade``).
``ensure_current(engine)`` is what every command runs on opening a database: an empty database is
initialised (creating the schema from nothing cannot lose data); one at an older revision is an
error telling you to run ``gapsweep db upgrade``; one from a newer gapsweep is an error too.

Alembic is imported only to migrate: reading a database at the head revision (what ``gapsweep
status`` and every other read does) finds the head from the migration files themselves (their
``revision`` / ``down_revision`` lines) and the database's revision from ``alembic_version``, which
keeps ~0.3 s of imports off every command that reads results (the test suite checks both readings
against Alembic's own).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from db.engine import DatabaseError, mask

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"          # Alembic's default, which db/migrations/env.py keeps
_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*=\s*(?:'([^']*)'|\"([^\"]*)\"|None)\s*$",
                            re.M)
_PG_MIGRATION_LOCK = 0x6761707377656570   # "gapsweep": serialises concurrent upgrades


def alembic_config(connection: Connection | None = None) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _revisions() -> dict[str, str | None]:
    """revision → down revision, read from the migration files' own lines."""
    graph: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = {m.group(1): m.group(2) or m.group(3) for m in _REVISION_LINE.finditer(path.read_text())}
        if "revision" in found:
            graph[found["revision"]] = found.get("down_revision")
    return graph


def head_revision() -> str:
    """The newest revision: the one no other revision follows (one line of history)."""
    graph = _revisions()
    heads = set(graph) - set(graph.values())
    if len(heads) != 1:
        raise DatabaseError(f"the migrations in {MIGRATIONS} have {len(heads)} heads "
                            f"({', '.join(sorted(heads)) or 'none'}); they must form one line")
    return heads.pop()


def current_revision(connection: Connection) -> str | None:
    """The database's revision (``alembic_version``), None when it has none."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


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
        from alembic import command

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
    if revision not in _revisions():
        raise DatabaseError(
            f"the results database {mask(engine.url)} is at schema revision {revision}, which this "
            "gapsweep does not know: it was written by a newer version; upgrade gapsweep")
