"""The results schema: sweeps, configurations, runs, metrics, snapshots, and the tracking outbox
(SQLAlchemy 2.x ORM).

Plain SQL is a first-class way to read it (README, "Querying results"), so names are the words a
researcher would guess: ``runs.test_score``, ``metrics.name = 'val_score'``, ``configurations.label``.
Times are timezone-aware UTC. The schema itself is created and changed only by the Alembic
migrations in ``db/migrations``; a test checks that they and this module agree.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, DateTime, Float, ForeignKey,
                        Index, Integer, LargeBinary, MetaData, String, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

RUN_STATUSES = ("pending", "running", "done", "failed", "diverged")
FINISHED_STATUSES = ("done", "diverged")
SWEEP_STATUSES = ("registered", "running", "finished", "failed", "interrupted")
SNAPSHOT_KINDS = ("best", "final", "init", "compiled")
SPLITS = ("train", "val", "test")

# Configuration keys copied into indexed columns, for filtering without JSON functions.
FLAG_COLUMNS = ("algorithm", "hidden_size", "learning_rate", "train_steps", "use_edge_info",
                "use_pre_att_bias", "simplify_decoders", "regularization", "length_generalize")

# Constraint names are fixed so that migrations can refer to them on every backend.
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = metadata


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    experiment: Mapped[str] = mapped_column(String(200), index=True)
    spec_yaml: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="registered")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_host: Mapped[str | None] = mapped_column(String(255))
    submitted_by: Mapped[str | None] = mapped_column(String(255))
    code_version: Mapped[str | None] = mapped_column(String(64))

    configurations: Mapped[list["Configuration"]] = relationship(back_populates="sweep")

    __table_args__ = (CheckConstraint(_in("status", SWEEP_STATUSES), name="status"),)


class Configuration(Base):
    """One resolved training configuration of one sweep (the same config in two sweeps is two rows:
    each sweep is a self-contained experiment)."""

    __tablename__ = "configurations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(200))
    config_hash: Mapped[str] = mapped_column(String(64), index=True)
    config: Mapped[dict] = mapped_column(JSON)
    algorithm: Mapped[str] = mapped_column(String(40), index=True)
    hidden_size: Mapped[int | None] = mapped_column(Integer)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    train_steps: Mapped[int | None] = mapped_column(Integer)
    use_edge_info: Mapped[bool | None] = mapped_column(Boolean, index=True)
    use_pre_att_bias: Mapped[bool | None] = mapped_column(Boolean, index=True)
    simplify_decoders: Mapped[bool | None] = mapped_column(Boolean, index=True)
    regularization: Mapped[bool | None] = mapped_column(Boolean, index=True)
    length_generalize: Mapped[bool | None] = mapped_column(Boolean)

    sweep: Mapped[Sweep] = relationship(back_populates="configurations")
    runs: Mapped[list["Run"]] = relationship(back_populates="configuration")

    __table_args__ = (UniqueConstraint("sweep_id", "config_hash"),
                      UniqueConstraint("sweep_id", "label"))


class Run(Base):
    """One seed of one configuration."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    configuration_id: Mapped[int] = mapped_column(
        ForeignKey("configurations.id", ondelete="CASCADE"))
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_host: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    wall_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    best_step: Mapped[int | None] = mapped_column(Integer)
    best_val_score: Mapped[float | None] = mapped_column(Float)
    test_score: Mapped[float | None] = mapped_column(Float)
    final_step: Mapped[int | None] = mapped_column(Integer)
    diverged_step: Mapped[int | None] = mapped_column(Integer)
    # the numerical canary of the task that trained this run (workers/canary.py): 'passed',
    # 'single' (a population of one: nothing to compare), NULL where none ran; its largest
    # relative lane difference and its cost (seconds, for the whole task)
    canary: Mapped[str | None] = mapped_column(String(16))
    canary_deviation: Mapped[float | None] = mapped_column(Float)
    canary_seconds: Mapped[float | None] = mapped_column(Float)

    configuration: Mapped[Configuration] = relationship(back_populates="runs")

    __table_args__ = (UniqueConstraint("configuration_id", "seed"),
                      Index(None, "configuration_id", "status"),
                      CheckConstraint(_in("status", RUN_STATUSES), name="status"))


class Metric(Base):
    """Long-format curves: one row per (run, split, name, step)."""

    __tablename__ = "metrics"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    split: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)

    # On SQLite a table clustered on its primary key (WITHOUT ROWID): one B-tree where a rowid
    # table keeps two (the rows and the key's index), ~40% less disk and faster inserts of the
    # ~400 points a seed records (migration 0004; other backends ignore the option).
    __table_args__ = (CheckConstraint(_in("split", SPLITS), name="split"),
                      {"sqlite_with_rowid": False})


class Snapshot(Base):
    """A parameter pytree as a no-pickle ``.npz``: inline ``payload`` or an external ``uri``."""

    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(16))
    byte_size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("run_id", "kind"),
                      CheckConstraint(_in("kind", SNAPSHOT_KINDS), name="kind"),
                      CheckConstraint("(payload IS NULL) <> (uri IS NULL)", name="one_location"))


class TrackingOutbox(Base):
    """Finished runs that MLflow does not show yet: the results database is the source of truth and
    MLflow a projection of it. ``ResultsStore.record`` adds a row per recorded run in the same
    transaction; the tracker removes it once the run is in MLflow (a seed's child run, or the
    configuration's summary and ``seeds.csv``). Rows left by a tracking server that was down, or
    by ``--no-mlflow``, are what ``gapsweep track sync`` (and the next ``gapsweep run``) replays."""

    __tablename__ = "tracking_outbox"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
