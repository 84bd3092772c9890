"""Where the results database is, and how to connect to it safely.

URL resolution: an explicit ``--db URL``, else ``$GAPSWEEP_DB``, else the SQLite file
``<run dir>/gapsweep.db`` (run dir: ``$GAPSWEEP_RUN_DIR``, default ``./runs``). Any SQLAlchemy URL
works; ``postgresql://`` means psycopg 3. Credentials belong in the URL given on the command line
or the environment (``$GAPSWEEP_DB``, or libpq's ``PGPASSWORD`` / ``~/.pgpass``), never in sweep
files, and are masked whenever a URL is shown.

SQLite connections get WAL journaling, a busy timeout, enforced foreign keys, and ``BEGIN
IMMEDIATE`` for every transaction, so read-then-write sequences from several processes serialise
instead of losing rows.
"""

from __future__ import annotations

import os
from pathlib import Path

from typing import TYPE_CHECKING

from workers.errors import GapsweepError

if TYPE_CHECKING:       # SQLAlchemy is imported where a URL is parsed: `stack env` never needs it
    from sqlalchemy import Engine
    from sqlalchemy.engine import URL

ENV_URL = "GAPSWEEP_DB"
ENV_RUN_DIR = "GAPSWEEP_RUN_DIR"
DB_FILENAME = "gapsweep.db"
SQLITE_BUSY_TIMEOUT_S = 60


class DatabaseError(GapsweepError, RuntimeError):
    """A database that cannot be used as it is; the message says what to do."""


def run_dir() -> Path:
    """The local run directory: ``$GAPSWEEP_RUN_DIR`` or ``./runs``."""
    return Path(os.environ.get(ENV_RUN_DIR) or "runs")


def default_url() -> str:
    return f"sqlite:///{(run_dir() / DB_FILENAME).resolve()}"


def resolve_url(url: str | URL | None = None) -> URL:
    """The URL to use: the argument, else ``$GAPSWEEP_DB``, else the local SQLite file."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = url if url is not None else (os.environ.get(ENV_URL) or default_url())
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise DatabaseError(
            f"not a database URL: {mask(str(text))!r}; expected e.g. sqlite:///runs/gapsweep.db "
            "or postgresql://user@host:5432/gapsweep") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def mask(url: str | URL) -> str:
    """The URL with any password replaced by ``***``, for messages and logs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


CONNECT_TIMEOUT_ENV = "GAPSWEEP_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT_S = 10.0


def connect_timeout() -> float:
    """Seconds to wait for a service (PostgreSQL, a Ray head, a dashboard, an MLflow server) to
    answer before saying it is unreachable: ``$GAPSWEEP_CONNECT_TIMEOUT``, else 10."""
    raw = os.environ.get(CONNECT_TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_CONNECT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise DatabaseError(f"{CONNECT_TIMEOUT_ENV} = {raw!r} is not allowed; give a positive "
                            "number of seconds")
    return value


def make_engine(url: str | URL | None = None) -> Engine:
    from sqlalchemy import create_engine

    resolved = resolve_url(url)
    if is_sqlite(resolved):
        database = resolved.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(resolved, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _configure_sqlite(engine)
        return engine
    if resolved.get_backend_name() == "postgresql":
        return create_engine(resolved, pool_pre_ping=True,
                             connect_args={"connect_timeout": max(1, round(connect_timeout()))})
    return create_engine(resolved)


def _configure_sqlite(engine: Engine) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event own transactions (pysqlite's implicit BEGIN is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
