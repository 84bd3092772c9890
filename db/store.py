"""The results API: what the orchestrator (the single writer) does with the database.

    store = ResultsStore("sqlite:///runs/gapsweep.db")
    sweep = store.register_sweep("table1", "table1_baseline", yaml_text, configurations, seeds)
    todo = store.pending(sweep.id)                          # resume: what is left
    store.claim([r.run_id for r in todo])                   # pending → running, attempts + 1
    store.record([RunResult(...), ...])                     # one population, all or nothing
    store.finish_sweep(sweep.id)
    for c in store.counts(sweep.id):                        # reading: frozen rows (db/rows.py)
        print(c.label, c.runs.done, c.test_mean)

Every method is one transaction. Registration is idempotent (sweeps by name, configurations by
(sweep, hash), runs by (configuration, seed)); recording skips runs that are already finished, so a
population that arrives twice is stored once. Snapshots are encoded before the transaction starts;
large ones are written to the snapshot directory first so that no committed row ever points at a
missing file, and files this call created are removed again if the transaction fails. Reads
return the frozen rows of ``db.rows`` (``SweepRow``, ``ConfigurationCounts``, ``RunRow``…), read by
attribute; the report's input is ``sweep_seeds``, one transaction for every sweep it shows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import json
import math
import os
import socket
import sqlite3
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, text, update

from db import snapshots
from db.engine import DatabaseError, is_sqlite, make_engine, mask, resolve_url, run_dir
from db.migrate import ensure_current
from db.models import (FINISHED_STATUSES, FLAG_COLUMNS, SNAPSHOT_KINDS, SPLITS, Configuration,
                       Metric, Run, Snapshot, Sweep, TrackingOutbox, utcnow)
from db.rows import (ConfigurationCounts, ConfigurationRow, ConfigurationSeeds, FinishedScores,
                     RunCounts, RunDetail, RunRow, SeedOutcome, SnapshotInfo, SweepRow,
                     SweepSeeds)
from workers.rules import LABEL_FORMS, labels_named_by

# The wide test's per-run metrics (split "test", step 0), written by ``gapsweep analyse wide-test``
# (orchestrator.sweep_analyses) and read back by ``sweep_seeds``.
WIDE_TEST_SCORE = "wide_test/score"
WIDE_TEST_GRAPHS = "wide_test/graphs"
WIDE_TEST_DATA_SEED = "wide_test/data_seed"

ENV_SNAPSHOT_DIR = "GAPSWEEP_SNAPSHOT_DIR"
DEFAULT_INLINE_LIMIT = 256 * 1024    # bytes; larger snapshots go to the snapshot directory


class StoreError(DatabaseError):
    """A request the results database refuses; the message says which sweep/run and why."""


@dataclasses.dataclass(frozen=True)
class ConfigurationEntry:
    """A resolved configuration to register: its label in the sweep, the full config, its hash."""

    label: str
    config: Mapping[str, Any]
    config_hash: str


@dataclasses.dataclass(frozen=True)
class RegisteredSweep:
    id: int
    name: str
    configuration_ids: dict[str, int]      # label → configurations.id
    created: bool


@dataclasses.dataclass(frozen=True)
class PendingRun:
    run_id: int
    configuration_id: int
    label: str
    config_hash: str
    seed: int
    status: str
    attempts: int


@dataclasses.dataclass(frozen=True)
class OutboxEntry:
    """A recorded run that MLflow does not show yet (``ResultsStore.outbox``)."""

    run_id: int
    label: str
    seed: int


@dataclasses.dataclass
class Curve:
    split: str                     # train | val | test
    name: str                      # e.g. val_score, train_loss, hint_acc/pi_h
    steps: Sequence[int]
    values: Sequence[float]


@dataclasses.dataclass
class _Curves:
    run_id: int
    curves: list[Curve]


@dataclasses.dataclass
class RunResult:
    """Everything recorded for one finished seed."""

    run_id: int
    status: str                                    # done | diverged
    test_score: float | None = None
    best_val_score: float | None = None
    best_step: int | None = None
    final_step: int | None = None
    diverged_step: int | None = None
    wall_seconds: float | None = None
    worker_host: str | None = None
    device: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    canary: str | None = None                      # passed | single (workers/canary.py)
    canary_deviation: float | None = None
    canary_seconds: float | None = None
    curves: list[Curve] = dataclasses.field(default_factory=list)
    snapshots: dict[str, Mapping] = dataclasses.field(default_factory=dict)   # kind → pytree


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class ResultsStore:
    """The results database plus its snapshot directory."""

    def __init__(self, url: str | None = None, snapshot_dir: str | os.PathLike | None = None,
                 inline_limit: int = DEFAULT_INLINE_LIMIT, check_schema: bool = True):
        self.url = resolve_url(url)
        self.engine = make_engine(self.url)
        self.inline_limit = int(inline_limit)
        self.snapshot_dir = snapshots.SnapshotDirectory(
            snapshot_dir or os.environ.get(ENV_SNAPSHOT_DIR) or run_dir() / "snapshots")
        if check_schema:
            ensure_current(self.engine)

    @classmethod
    def over(cls, engine: Engine, snapshot_dir: str | os.PathLike | None = None,
             inline_limit: int = DEFAULT_INLINE_LIMIT) -> "ResultsStore":
        """A store over an engine made elsewhere (its schema not checked again); ``close``
        disposes of it."""
        store = cls.__new__(cls)
        store.url = engine.url
        store.engine = engine
        store.inline_limit = int(inline_limit)
        store.snapshot_dir = snapshots.SnapshotDirectory(
            snapshot_dir or os.environ.get(ENV_SNAPSHOT_DIR) or run_dir() / "snapshots")
        return store

    def __repr__(self) -> str:
        return f"ResultsStore({mask(self.url)!r})"

    @property
    def display_url(self) -> str:
        return mask(self.url)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- registration --------------------------------------------------------------------------

    def register_sweep(self, name: str, experiment: str, spec_yaml: str,
                       configurations: Sequence[ConfigurationEntry], seeds: Iterable[int],
                       code_version: str | None = None) -> RegisteredSweep:
        """Create (or extend) a sweep with its configurations and one pending run per seed."""
        seeds = sorted({int(s) for s in seeds})
        labels = Counter(c.label for c in configurations)
        hashes = Counter(c.config_hash for c in configurations)
        if dup := [label for label, n in labels.items() if n > 1]:
            raise StoreError(f"sweep {name!r}: duplicate configuration label(s) {dup}")
        if dup := [h for h, n in hashes.items() if n > 1]:
            same = [c.label for c in configurations if c.config_hash in dup]
            raise StoreError(f"sweep {name!r}: configurations {same} resolve to the same config")
        with self.engine.begin() as conn:
            self._lock(conn, f"sweep:{name}")
            row = conn.execute(select(Sweep.id).where(Sweep.name == name)).first()
            created = row is None
            if created:
                sweep_id = conn.execute(insert(Sweep).values(
                    name=name, experiment=experiment, spec_yaml=spec_yaml, status="registered",
                    created_at=utcnow(), submitted_host=socket.gethostname(),
                    submitted_by=_user(), code_version=code_version).returning(Sweep.id)).scalar_one()
            else:
                sweep_id = row.id
                conn.execute(update(Sweep).where(Sweep.id == sweep_id).values(
                    spec_yaml=spec_yaml, experiment=experiment, finished_at=None,
                    **({"code_version": code_version} if code_version else {})))
            existing = {r.label: r for r in conn.execute(
                select(Configuration.id, Configuration.label, Configuration.config_hash)
                .where(Configuration.sweep_id == sweep_id))}
            by_hash = {r.config_hash: r.label for r in existing.values()}
            ids: dict[str, int] = {}
            for entry in configurations:
                old = existing.get(entry.label)
                if old is not None and old.config_hash != entry.config_hash:
                    raise StoreError(
                        f"sweep {name!r} already has a configuration {entry.label!r} with a different "
                        f"config (hash {old.config_hash[:12]} ≠ {entry.config_hash[:12]}); give the "
                        "changed sweep a new name, or the changed configuration a new label")
                if old is None and entry.config_hash in by_hash:
                    raise StoreError(
                        f"sweep {name!r}: configuration {entry.label!r} is the same config as the "
                        f"registered {by_hash[entry.config_hash]!r}")
                if old is not None:
                    ids[entry.label] = old.id
                    continue
                config = dict(entry.config)
                ids[entry.label] = conn.execute(insert(Configuration).values(
                    sweep_id=sweep_id, label=entry.label, config_hash=entry.config_hash,
                    config=config, **{k: config.get(k) for k in FLAG_COLUMNS}
                ).returning(Configuration.id)).scalar_one()
            for configuration_id in ids.values():
                have = set(conn.execute(select(Run.seed).where(
                    Run.configuration_id == configuration_id)).scalars())
                new = [{"configuration_id": configuration_id, "seed": s, "status": "pending",
                        "attempts": 0} for s in seeds if s not in have]
                if new:
                    conn.execute(insert(Run), new)
        return RegisteredSweep(sweep_id, name, ids, created)

    # -- the run life cycle --------------------------------------------------------------------

    def pending(self, sweep_id: int, retry_failed: bool = False,
                labels: Iterable[str] | None = None) -> list[PendingRun]:
        """Runs of the sweep still to do: pending (and failed, with ``retry_failed``)."""
        statuses = ["pending", "failed"] if retry_failed else ["pending"]
        query = (select(Run.id, Run.configuration_id, Configuration.label, Configuration.config_hash,
                        Run.seed, Run.status, Run.attempts)
                 .join(Configuration, Run.configuration_id == Configuration.id)
                 .where(Configuration.sweep_id == sweep_id, Run.status.in_(statuses))
                 .order_by(Configuration.id, Run.seed))
        if labels is not None:
            query = query.where(Configuration.label.in_(list(labels)))
        with self.engine.begin() as conn:
            return [PendingRun(*row) for row in conn.execute(query)]

    def reset_running(self, sweep_id: int) -> int:
        """Runs left ``running`` by a driver that died go back to ``pending``; returns how many."""
        with self.engine.begin() as conn:
            ids = select(Run.id).join(Configuration).where(
                Configuration.sweep_id == sweep_id, Run.status == "running").scalar_subquery()
            return conn.execute(update(Run).where(Run.id.in_(ids)).values(
                status="pending", started_at=None)).rowcount

    def claim(self, run_ids: Sequence[int], worker_host: str | None = None,
              retry_failed: bool = False, reclaim_running: bool = False) -> list[int]:
        """Move claimable runs to ``running`` (attempts + 1); returns the ids actually claimed.

        ``reclaim_running``: the given runs that are ``running`` already count as claimed too
        (left as they are, attempts not counted again). Only for retrying a claim whose connection
        was lost (``db.retry.RetryingStore``): its commit may have gone through before the reply
        was lost, and a plain retry would then claim nothing. It trusts that this caller's lost
        claim is what made them running, so it is not for claims that race another driver.
        """
        claimable = ["pending", "failed"] if retry_failed else ["pending"]
        if not run_ids:
            return []
        ids = list(run_ids)
        with self.engine.begin() as conn:
            running = set()
            if reclaim_running:
                running = set(conn.execute(self._for_update(select(Run.id).where(
                    Run.id.in_(ids), Run.status == "running"))).scalars())
            result = conn.execute(
                update(Run).where(Run.id.in_(ids), Run.status.in_(claimable))
                .values(status="running", attempts=Run.attempts + 1, started_at=utcnow(),
                        error=None, worker_host=worker_host).returning(Run.id))
            return sorted(running | set(result.scalars()))

    def release(self, run_ids: Sequence[int], error: str | None = None) -> int:
        """Running runs go back to ``pending`` (an interrupted or retried task)."""
        if not run_ids:
            return 0
        with self.engine.begin() as conn:
            return conn.execute(update(Run).where(Run.id.in_(list(run_ids)),
                                                  Run.status == "running")
                                .values(status="pending", error=error, started_at=None)).rowcount

    def mark_failed(self, run_ids: Sequence[int], error: str) -> int:
        """Runs that will not be retried again: ``failed`` with the error text."""
        if not run_ids:
            return 0
        with self.engine.begin() as conn:
            return conn.execute(update(Run).where(Run.id.in_(list(run_ids)),
                                                  Run.status.in_(["pending", "running"]))
                                .values(status="failed", error=error, finished_at=utcnow())).rowcount

    def record(self, results: Sequence[RunResult]) -> list[int]:
        """Store a population's results, curves and snapshots in one transaction.

        Runs already finished (``done``/``diverged``) are skipped, so nothing is recorded twice;
        an unknown run id or any failure rolls the whole population back. Returns the recorded ids.
        """
        if not results:
            return []
        for r in results:
            if r.status not in FINISHED_STATUSES:
                raise StoreError(f"run {r.run_id}: status {r.status!r} is not a result; "
                                 f"allowed: {', '.join(FINISHED_STATUSES)}")
            for curve in r.curves:
                if curve.split not in SPLITS:
                    raise StoreError(f"run {r.run_id}: curve {curve.name!r} has split "
                                     f"{curve.split!r}; allowed: {', '.join(SPLITS)}")
            for kind in r.snapshots:
                if kind not in SNAPSHOT_KINDS:
                    raise StoreError(f"run {r.run_id}: snapshot kind {kind!r}; allowed: "
                                     f"{', '.join(SNAPSHOT_KINDS)}")
        encoded = {(r.run_id, kind): snapshots.encode(tree)
                   for r in results for kind, tree in r.snapshots.items()}
        created_files: list[Path] = []
        try:
            with self.engine.begin() as conn:
                ids = [r.run_id for r in results]
                found = dict(conn.execute(self._for_update(
                    select(Run.id, Run.status).where(Run.id.in_(ids)))).all())
                if missing := sorted(set(ids) - set(found)):
                    raise StoreError(f"cannot record unknown run id(s) {missing[:10]}")
                todo = [r for r in results if found[r.run_id] not in FINISHED_STATUSES]
                if not todo:
                    return []
                now = utcnow()
                conn.execute(
                    update(Run).where(Run.id == bindparam("rid")).values(
                        status=bindparam("st"), test_score=bindparam("ts"),
                        best_val_score=bindparam("bv"), best_step=bindparam("bs"),
                        final_step=bindparam("fs"), diverged_step=bindparam("ds"),
                        wall_seconds=bindparam("ws"),
                        worker_host=func.coalesce(bindparam("wh"), Run.worker_host),
                        device=bindparam("dev"), started_at=func.coalesce(bindparam("sa"),
                                                                          Run.started_at),
                        finished_at=bindparam("fa"), error=None, canary=bindparam("cy"),
                        canary_deviation=bindparam("cd"), canary_seconds=bindparam("cs")),
                    [{"rid": r.run_id, "st": r.status, "ts": _finite(r.test_score),
                      "bv": _finite(r.best_val_score), "bs": r.best_step, "fs": r.final_step,
                      "ds": r.diverged_step, "ws": r.wall_seconds, "wh": r.worker_host,
                      "dev": r.device, "sa": r.started_at, "fa": r.finished_at or now,
                      "cy": r.canary, "cd": _finite(r.canary_deviation),
                      "cs": r.canary_seconds}
                     for r in todo])
                self._insert_metrics(conn, todo)
                rows = []
                for r in todo:
                    for kind in r.snapshots:
                        payload = encoded[(r.run_id, kind)]
                        sha = snapshots.digest(payload)
                        row = {"run_id": r.run_id, "kind": kind, "format": snapshots.FORMAT,
                               "byte_size": len(payload), "sha256": sha, "payload": None,
                               "uri": None, "created_at": now}
                        if len(payload) <= self.inline_limit:
                            row["payload"] = payload
                        else:
                            row["uri"], new = self.snapshot_dir.put(payload, sha)
                            if new:
                                created_files.append(self.snapshot_dir.path_for(sha))
                        rows.append(row)
                if rows:
                    conn.execute(insert(Snapshot), rows)
                conn.execute(insert(TrackingOutbox),
                             [{"run_id": r.run_id, "created_at": now} for r in todo])
                return [r.run_id for r in todo]
        except BaseException as error:
            # A lost connection may have lost only the commit's reply: the rows may be there and
            # point at these files, so they stay (content-addressed, an orphan costs only space).
            from db.retry import is_unreachable

            if not is_unreachable(error):
                for path in created_files:
                    path.unlink(missing_ok=True)
            raise

    # -- the tracking outbox: recorded runs that MLflow does not show yet -----------------------

    def outbox(self, sweep_id: int, labels: Iterable[str] | None = None) -> list[OutboxEntry]:
        """The sweep's runs in the tracking outbox (recorded, not yet in MLflow), by
        configuration and seed."""
        query = (select(TrackingOutbox.run_id, Configuration.label, Run.seed)
                 .join(Run, TrackingOutbox.run_id == Run.id)
                 .join(Configuration, Run.configuration_id == Configuration.id)
                 .where(Configuration.sweep_id == sweep_id)
                 .order_by(Configuration.id, Run.seed))
        if labels is not None:
            query = query.where(Configuration.label.in_(list(labels)))
        with self.engine.begin() as conn:
            return [OutboxEntry(*row) for row in conn.execute(query)]

    def outbox_done(self, run_ids: Sequence[int]) -> int:
        """These runs are in MLflow now: out of the outbox; returns how many were in it."""
        ids = [int(i) for i in run_ids]
        removed = 0
        with self.engine.begin() as conn:
            for start in range(0, len(ids), 10_000):       # within every backend's bind limit
                removed += conn.execute(delete(TrackingOutbox).where(
                    TrackingOutbox.run_id.in_(ids[start:start + 10_000]))).rowcount
        return removed

    def outbox_counts(self) -> dict[str, int]:
        """Sweep name → runs in its tracking outbox, for the sweeps that have any."""
        query = (select(Sweep.name, func.count(TrackingOutbox.run_id))
                 .select_from(TrackingOutbox).join(Run, TrackingOutbox.run_id == Run.id)
                 .join(Configuration, Run.configuration_id == Configuration.id)
                 .join(Sweep, Configuration.sweep_id == Sweep.id)
                 .group_by(Sweep.name).order_by(Sweep.name))
        with self.engine.begin() as conn:
            return dict(conn.execute(query).all())

    def finish_sweep(self, sweep_id: int, status: str = "finished") -> None:
        with self.engine.begin() as conn:
            conn.execute(update(Sweep).where(Sweep.id == sweep_id).values(
                status=status, finished_at=utcnow() if status != "running" else None))

    # -- reading -------------------------------------------------------------------------------

    def sweep_id(self, name: str) -> int:
        with self.engine.begin() as conn:
            row = conn.execute(select(Sweep.id).where(Sweep.name == name)).first()
        if row is None:
            raise StoreError(f"no sweep named {name!r} in {self.display_url}; "
                             f"known: {', '.join(s.name for s in self.sweeps()) or 'none'}")
        return row.id

    def sweep(self, name: str | None = None) -> SweepRow:
        """The sweep named ``name``, or without a name the newest (the one registered last: the
        largest id, as the README's queries choose it). ``StoreError`` when there is none."""
        with self.engine.begin() as conn:
            sweeps = self._sweeps(conn, name)
            if not sweeps and name is not None:
                known = [s.name for s in self._sweeps(conn)]
        if sweeps:
            return sweeps[-1]
        if name is None:
            raise StoreError(f"no sweeps in {self.display_url} yet; run one first (e.g. gapsweep "
                             "run sweeps/quickstart.yaml) or give --db the database that has yours")
        raise StoreError(f"no sweep named {name!r} in {self.display_url}; "
                         f"known: {', '.join(known) or 'none'}")

    def configuration_label(self, sweep_id: int, value: str) -> str:
        """The label of the sweep's one configuration that ``value`` names: its label, or a part
        of it no other label has (``bfs`` for ``algorithm=bfs``: ``workers.rules.labels_named_by``).
        ``StoreError`` listing the sweep's labels when it names none or several."""
        with self.engine.begin() as conn:
            name = conn.execute(select(Sweep.name).where(Sweep.id == sweep_id)).scalar_one()
            labels = list(conn.execute(select(Configuration.label).where(
                Configuration.sweep_id == sweep_id).order_by(Configuration.id)).scalars())
        named = labels_named_by(value, labels)
        if len(named) == 1:
            return named[0]
        if not named:
            raise StoreError(f"sweep {name!r} has no configuration {value!r}; it has: "
                             f"{', '.join(labels) or 'none'} (give {LABEL_FORMS})")
        raise StoreError(f"{value!r} names {len(named)} configurations of sweep {name!r} "
                         f"({', '.join(named)}); give one of its labels: {', '.join(labels)}")

    def sweeps(self, name: str | None = None, experiment: str | None = None) -> list[SweepRow]:
        """Every sweep in registration order; only the one named ``name`` or those of
        ``experiment`` when given (an empty list when there is none)."""
        with self.engine.begin() as conn:
            return self._sweeps(conn, name, experiment)

    def counts(self, sweep_id: int | None = None) -> list[ConfigurationCounts]:
        """Per configuration: run counts by status, test score mean/std/max of finished seeds and
        ``best_step_0``, how many of those have best step 0 (essentially untrained parameters)."""
        query = (select(Sweep.name.label("sweep"), Configuration.id.label("configuration_id"),
                        Configuration.label, Configuration.algorithm, Run.status,
                        func.count(Run.id).label("n"))
                 .select_from(Configuration).join(Sweep).outerjoin(Run)
                 .group_by(Sweep.name, Configuration.id, Configuration.label,
                           Configuration.algorithm, Run.status)
                 .order_by(Sweep.name, Configuration.id))
        scores = (select(Run.configuration_id, Run.test_score, Run.best_step)
                  .where(Run.status == "done", Run.test_score.is_not(None)))
        if sweep_id is not None:
            query = query.where(Configuration.sweep_id == sweep_id)
            scores = scores.join(Configuration).where(Configuration.sweep_id == sweep_id)
        heads: dict[int, tuple[str, str, str]] = {}      # configuration id → sweep, label, algorithm
        by_status: dict[int, dict[str, int]] = {}
        with self.engine.begin() as conn:
            for row in conn.execute(query):
                heads.setdefault(row.configuration_id, (row.sweep, row.label, row.algorithm))
                statuses = by_status.setdefault(row.configuration_id, {})
                if row.status is not None:
                    statuses[row.status] = row.n
            per_config: dict[int, list[float]] = {}
            best_step_0: Counter = Counter()
            for cid, score, best_step in conn.execute(scores):
                per_config.setdefault(cid, []).append(score)
                best_step_0[cid] += best_step == 0
        table = []
        for cid, (sweep, label, algorithm) in heads.items():
            values = np.asarray(per_config.get(cid, []), dtype=float)
            table.append(ConfigurationCounts(
                sweep=sweep, configuration_id=cid, label=label, algorithm=algorithm,
                runs=RunCounts(**by_status[cid], best_step_0=best_step_0[cid]),
                test_mean=float(values.mean()) if values.size else None,
                test_std=float(values.std(ddof=1)) if values.size > 1 else None,
                test_max=float(values.max()) if values.size else None))
        return table

    def finished_scores(self, configuration_id: int) -> FinishedScores:
        """Test scores of a configuration's done runs, and its run counts by status plus
        ``best_step_0``: how many of those scores have best step 0 (essentially untrained)."""
        with self.engine.begin() as conn:
            done = conn.execute(select(Run.test_score, Run.best_step).where(
                Run.configuration_id == configuration_id, Run.status == "done",
                Run.test_score.is_not(None)).order_by(Run.seed)).all()
            counts = dict(conn.execute(select(Run.status, func.count()).where(
                Run.configuration_id == configuration_id).group_by(Run.status)).all())
        return FinishedScores(tuple(r.test_score for r in done),
                              RunCounts(**counts, best_step_0=sum(r.best_step == 0 for r in done)))

    def run(self, run_id: int) -> RunDetail:
        """One run's row with its sweep name and configuration label."""
        query = (select(Run.__table__, Configuration.label, Sweep.name.label("sweep"))
                 .join(Configuration, Run.configuration_id == Configuration.id)
                 .join(Sweep, Configuration.sweep_id == Sweep.id).where(Run.id == run_id))
        with self.engine.begin() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise StoreError(f"no run with id {run_id} in {self.display_url}")
        return RunDetail(**row._mapping)

    def recorded_results(self, run_ids: Sequence[int]) -> list[RunResult]:
        """Finished runs as the ``RunResult`` that recorded them: the row's fields, every curve,
        and the ``best`` snapshot where there is one (what a tracker logs of a seed; used to log
        seeds a tracking server missed). In the order of ``run_ids``; an unfinished run is an
        error."""
        ids = [int(i) for i in run_ids]
        if not ids:
            return []
        fields = [f.name for f in dataclasses.fields(RunResult)
                  if f.name not in ("run_id", "curves", "snapshots")]
        with self.engine.begin() as conn:
            rows = {r.id: r for r in conn.execute(
                select(Run.__table__).where(Run.id.in_(ids)))}
            points = conn.execute(select(Metric.run_id, Metric.split, Metric.name, Metric.step,
                                         Metric.value).where(Metric.run_id.in_(ids))
                                  .order_by(Metric.run_id, Metric.split, Metric.name, Metric.step))
            curves: dict[int, dict[tuple[str, str], tuple[list, list]]] = {}
            for m in points:
                steps, values = curves.setdefault(m.run_id, {}).setdefault((m.split, m.name),
                                                                             ([], []))
                steps.append(m.step)
                values.append(math.nan if m.value is None else m.value)
            with_best = set(conn.execute(select(Snapshot.run_id).where(
                Snapshot.run_id.in_(ids), Snapshot.kind == "best")).scalars())
        results = []
        for run_id in ids:
            row = rows.get(run_id)
            if row is None or row.status not in FINISHED_STATUSES:
                raise StoreError(f"run {run_id} is {'unknown' if row is None else row.status} in "
                                 f"{self.display_url}; only finished runs have a result")
            results.append(RunResult(
                run_id, **{name: getattr(row, name) for name in fields},
                curves=[Curve(split, name, steps, values)
                        for (split, name), (steps, values) in curves.get(run_id, {}).items()],
                snapshots={"best": self.load_snapshot(run_id, "best")} if run_id in with_best
                else {}))
        return results

    def runs_of(self, sweep_id: int, label: str, status: str | None = None) -> list[RunRow]:
        """One configuration's runs, by seed."""
        query = (select(Run.id, Run.seed, Run.status, Run.attempts, Run.test_score,
                        Run.best_val_score, Run.best_step, Run.wall_seconds, Run.error)
                 .join(Configuration).where(Configuration.sweep_id == sweep_id,
                                            Configuration.label == label).order_by(Run.seed))
        if status is not None:
            query = query.where(Run.status == status)
        with self.engine.begin() as conn:
            labels = list(conn.execute(select(Configuration.label).where(
                Configuration.sweep_id == sweep_id)).scalars())
            if label not in labels:
                raise StoreError(f"the sweep has no configuration {label!r}; it has: "
                                 f"{', '.join(labels) or 'none'}")
            return [RunRow(*row) for row in conn.execute(query)]

    def configurations(self, sweep_id: int) -> list[ConfigurationRow]:
        """The sweep's configurations in order: id, label, algorithm, the resolved config."""
        with self.engine.begin() as conn:
            return self._configurations(conn, [sweep_id])

    def sweep_seeds(self, name: str | None = None,
                    experiment: str | None = None) -> list[SweepSeeds]:
        """The sweeps (all; the one named ``name``; those of ``experiment``) with their
        configurations and every run's seed, status, test score, best step and wide-test score
        (metrics ``test/wide_test/score`` and ``…/graphs``, where stored), read in one
        transaction, so that a sweep being recorded meanwhile is seen at one moment.

        Raises ``StoreError``, listing the known sweeps, when a sweep or experiment is asked for
        and the database has none.
        """
        with self.engine.begin() as conn:
            sweeps = self._sweeps(conn, name, experiment)
            if not sweeps and (name is not None or experiment is not None):
                known = self._sweeps(conn)
                asked = f"sweep {name!r}" if name is not None else f"experiment {experiment!r}"
                listing = ", ".join(f"{s.name} ({s.experiment})" for s in known) or "none"
                raise StoreError(f"no {asked} in {mask(self.engine.url)}; known sweeps: {listing}")
            sweep_ids = [s.id for s in sweeps]
            configurations = self._configurations(conn, sweep_ids)
            wide: dict[int, dict[str, float | None]] = {}
            for row in conn.execute(
                    select(Metric.run_id, Metric.name, Metric.value)
                    .join(Run, Metric.run_id == Run.id)
                    .join(Configuration, Run.configuration_id == Configuration.id)
                    .where(Configuration.sweep_id.in_(sweep_ids), Metric.split == "test",
                           Metric.step == 0,
                           Metric.name.in_((WIDE_TEST_SCORE, WIDE_TEST_GRAPHS)))):
                wide.setdefault(row.run_id, {})[row.name] = row.value
            runs: dict[int, list[SeedOutcome]] = {}
            for row in conn.execute(
                    select(Run.id, Run.configuration_id, Run.seed, Run.status, Run.test_score,
                           Run.best_step)
                    .join(Configuration, Run.configuration_id == Configuration.id)
                    .where(Configuration.sweep_id.in_(sweep_ids))
                    .order_by(Run.configuration_id, Run.seed)):
                scored = wide.get(row.id, {})
                graphs = scored.get(WIDE_TEST_GRAPHS)
                runs.setdefault(row.configuration_id, []).append(SeedOutcome(
                    *row[2:], wide_test_score=scored.get(WIDE_TEST_SCORE),
                    wide_test_graphs=None if graphs is None else int(graphs)))
        return [SweepSeeds(sweep, tuple(ConfigurationSeeds(c, tuple(runs.get(c.id, ())))
                                        for c in configurations if c.sweep_id == sweep.id))
                for sweep in sweeps]

    def replace_metrics(self, curves: Mapping[int, Sequence[Curve]]) -> None:
        """Store analysis curves (run id → curves) in one transaction, replacing earlier values of
        the same (run, split, name): an analysis run again overwrites, never duplicates."""
        with self.engine.begin() as conn:
            for run_id, run_curves in curves.items():
                for c in run_curves:
                    conn.execute(delete(Metric).where(Metric.run_id == run_id,
                                                      Metric.split == c.split,
                                                      Metric.name == c.name))
            self._insert_metrics(conn, [_Curves(run_id, list(cs)) for run_id, cs in curves.items()])

    def curve(self, run_id: int, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        with self.engine.begin() as conn:
            rows = conn.execute(select(Metric.step, Metric.value).where(
                Metric.run_id == run_id, Metric.split == split, Metric.name == name)
                .order_by(Metric.step)).all()
        steps = np.array([r.step for r in rows], dtype=np.int64)
        values = np.array([np.nan if r.value is None else r.value for r in rows], dtype=float)
        return steps, values

    def snapshot_info(self, run_id: int, kind: str = "best") -> SnapshotInfo:
        if kind not in SNAPSHOT_KINDS:
            raise StoreError(f"snapshot kind {kind!r}; allowed: {', '.join(SNAPSHOT_KINDS)}")
        with self.engine.begin() as conn:
            row = conn.execute(select(Snapshot.run_id, Snapshot.kind, Snapshot.format,
                                      Snapshot.byte_size, Snapshot.sha256, Snapshot.uri)
                               .where(Snapshot.run_id == run_id, Snapshot.kind == kind)).first()
            if row is None:
                kinds = conn.execute(select(Snapshot.kind).where(Snapshot.run_id == run_id)).scalars()
                raise StoreError(f"run {run_id} has no {kind!r} snapshot; it has: "
                                 f"{', '.join(kinds) or 'none'}")
        return SnapshotInfo(*row)

    def snapshot_bytes(self, run_id: int, kind: str = "best") -> bytes:
        """The snapshot's ``.npz`` bytes, verified against the recorded sha256 and size."""
        info = self.snapshot_info(run_id, kind)
        if info.uri is None:
            with self.engine.begin() as conn:
                payload = conn.execute(select(Snapshot.payload).where(
                    Snapshot.run_id == run_id, Snapshot.kind == kind)).scalar_one()
        else:
            payload = snapshots.read_uri(info.uri)
        actual = snapshots.digest(payload)
        if actual != info.sha256 or len(payload) != info.byte_size:
            raise snapshots.SnapshotIntegrityError(
                f"run {run_id} {kind} snapshot{' at ' + info.uri if info.uri else ''}: recorded "
                f"sha256 {info.sha256} ({info.byte_size} bytes), found {actual} ({len(payload)} "
                "bytes); it was altered or damaged and will not be loaded")
        return bytes(payload)

    def load_snapshot(self, run_id: int, kind: str = "best") -> dict:
        """The parameter pytree (nested dict of NumPy arrays), checksum verified."""
        return snapshots.decode(self.snapshot_bytes(run_id, kind))

    # -- helpers -------------------------------------------------------------------------------

    def _sweeps(self, conn: Connection, name: str | None = None,
                experiment: str | None = None) -> list[SweepRow]:
        query = select(Sweep.id, Sweep.name, Sweep.experiment, Sweep.status, Sweep.created_at,
                       Sweep.finished_at, Sweep.code_version, Sweep.spec_yaml).order_by(Sweep.id)
        if name is not None:
            query = query.where(Sweep.name == name)
        if experiment is not None:
            query = query.where(Sweep.experiment == experiment)
        return [SweepRow(*row) for row in conn.execute(query)]

    def _configurations(self, conn: Connection, sweep_ids: Sequence[int]) -> list[ConfigurationRow]:
        return [ConfigurationRow(*row) for row in conn.execute(
            select(Configuration.id, Configuration.sweep_id, Configuration.label,
                   Configuration.algorithm, Configuration.config, Configuration.config_hash)
            .where(Configuration.sweep_id.in_(list(sweep_ids))).order_by(Configuration.id))]

    def _lock(self, conn: Connection, key: str) -> None:
        # SQLite transactions begin IMMEDIATE (one writer at a time): nothing more to do.
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                         {"k": zlib.crc32(key.encode())})

    def _for_update(self, query):
        return query if is_sqlite(self.url) else query.with_for_update()

    def _insert_metrics(self, conn: Connection, results: Sequence[RunResult]) -> None:
        """Bulk insert of every curve point: COPY on PostgreSQL (psycopg), executemany elsewhere.
        Non-finite values (a diverged seed's loss) are stored as NULL on every backend."""
        columns = []
        for r in results:
            for c in r.curves:
                steps = np.asarray(c.steps, dtype=np.int64).ravel()
                values = np.asarray(c.values, dtype=np.float64).ravel()
                if steps.shape != values.shape:
                    raise StoreError(f"run {r.run_id} curve {c.name!r}: {steps.size} steps but "
                                     f"{values.size} values")
                if c.name and ("\t" in c.name or "\n" in c.name or "\\" in c.name):
                    raise StoreError(f"run {r.run_id}: curve name {c.name!r} has a control character")
                columns.append((r.run_id, c.split, c.name, steps.tolist(),
                                [v if math.isfinite(v) else None for v in values.tolist()]))
        if not columns:
            return
        if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
            cursor = conn.connection.driver_connection.cursor()
            with cursor.copy("COPY metrics (run_id, split, name, step, value) FROM STDIN") as copy:
                for run_id, split, name, steps, values in columns:
                    prefix = f"{run_id}\t{split}\t{name}\t"
                    copy.write("".join(f"{prefix}{step}\t{_copy_text(value)}\n"
                                       for step, value in zip(steps, values)))
            return
        if conn.dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 38):
            # a curve a statement, its points as one JSON array that SQLite unpacks in C: fewer
            # Python-to-SQLite crossings than one bound row per point (a 102,400-seed sweep
            # records 41 million; benchmarks/RESULTS.md, "Scale").
            # JSON numbers are Python's repr of each double, read back exactly (tested).
            conn.exec_driver_sql(_SQLITE_CURVE_INSERT, [
                (run_id, split, name, json.dumps([[step, value] for step, value in
                                                  zip(steps, values)], allow_nan=False))
                for run_id, split, name, steps, values in columns])
            return
        rows = [(run_id, split, name, step, value)
                for run_id, split, name, steps, values in columns
                for step, value in zip(steps, values)]
        table = Metric.__table__
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "INSERT INTO metrics (run_id, split, name, step, value) VALUES (?, ?, ?, ?, ?)", rows)
        else:
            conn.execute(insert(table), [dict(zip(("run_id", "split", "name", "step", "value"), r))
                                         for r in rows])

_SQLITE_CURVE_INSERT = ("INSERT INTO metrics (run_id, split, name, step, value) "
                        "SELECT ?, ?, ?, point.value ->> 0, point.value ->> 1 FROM json_each(?) point")


def _copy_text(value: float | None) -> str:
    return "\\N" if value is None else repr(value)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None
