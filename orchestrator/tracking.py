"""MLflow tracking of a sweep: one experiment, a parent run per configuration, a child run per seed.

The driver (the single writer of the results database) mirrors what it records into MLflow::

    tracker = SweepTracker(None, experiment="table1", sweep_name="table1")
    tracker.configuration("bfs", config_dict, config_hash)        # parent run, created or found
    tracker.log_seeds("bfs", [(seed, run_result), ...])            # child runs, new seeds only
    tracker.update_summary("bfs", test_scores, {"done": 3, "diverged": 1, "failed": 0})
    run = tracker.find_run(ROLE_CONFIGURATION, label="bfs")         # a parent run, else None
    tracker.close()                                                # parents → FINISHED

Layout in MLflow:

- experiment: named by the caller (default: the sweep name); ``sweep_tags`` become experiment tags
  and tags of every parent run; :func:`runs_page_url` gives the UI page that lists its runs with
  seeds under their configurations.
- parent run per configuration, named by its label; params = the resolved config, flattened
  (nested keys joined with ``.``, lists as JSON, values cut to MLflow's 6,000 characters; the whole
  config is also stored as the artifact ``config.json``); tags ``gapsweep.sweep``,
  ``gapsweep.config_hash``, ``gapsweep.label``, ``gapsweep.role=configuration``; metrics
  ``test_mean``, ``test_std`` (sample, two or more scores), ``test_max``, ``n_done``,
  ``n_diverged``, ``n_failed`` and, when the counts have it, ``n_best_step_0`` (done seeds whose
  best step is 0), logged at step = seeds finished so far, so that their history shows the sweep's
  progress.
- child run per seed, nested under its parent (MLflow's ``mlflow.parentRunId`` tag), named
  ``<label>/seed=<n>``; param ``seed``; every curve of the result as a metric history against its
  own steps (``val_score`` and ``train_loss`` against training steps, ``hint_acc/<hint>`` against
  hint steps); the scalars ``test_score``, ``best_val_score``, ``best_step``, ``final_step``,
  ``diverged_step``, ``wall_seconds`` that the result has; tags ``gapsweep.sweep``,
  ``gapsweep.config_hash``, ``gapsweep.label``, ``gapsweep.seed``, ``gapsweep.db_run_id``,
  ``gapsweep.status``, ``gapsweep.role=seed``, ``gapsweep.best_step_0`` ("true" when the best step
  is 0: the parameters are essentially the starting point, ``orchestrator.score_text.best_step_0``),
  ``gapsweep.canary`` (the task's numerical canary, ``workers.canary``: "passed", "single" for a
  population of one, "none" where none ran) with ``gapsweep.canary_deviation`` (its largest
  relative lane difference) and ``gapsweep.canary_seconds`` (its cost, for the task); the
  artifact ``best_params.npz`` (``db.snapshots.encode`` of the "best" snapshot, readable with
  ``numpy.load``) when there is one.
- a done seed's run ends FINISHED, a diverged seed's FAILED, so that the UI's status icon marks
  diverged seeds at a glance. The tag ``gapsweep.status`` holds the recorded status itself
  ("done" / "diverged"): filter on it, not on MLflow's status.

Writes go through ``MlflowClient`` (no global active run) and are batched: a seed costs one
``create_run`` (with its tags), one ``log_batch`` per 1,000 values, one artifact upload and one
``set_terminated``. Even so, MLflow's SQL store spends ~0.12 ms of Python per metric value (it
validates each value twice and builds an ORM object for each row): ~50 of the ~65 ms a seed with
two 200-point curves takes, so that 1,024 seeds take ~68 s in one process on 2 cores. Calls with
``PARALLEL_MIN_SEEDS`` or more new seeds are therefore spread over spawned worker processes, each
with its own client: two bring 1,024 seeds to ~47 s (SQLite serialises their commits).

MLflow itself is imported where it is used: ``import mlflow.tracking`` takes ~1.4 s, which CLI
commands that never track should not pay.

Re-running is safe: the experiment is found by name and parent runs by (sweep, config hash) tags
before anything is created, and seeds that already have a child run are skipped (one search per
configuration, cached). A child run still RUNNING was cut off by an interrupted driver: it is
deleted and its seed logged again.

Local default: the SQLite store ``<run dir>/mlflow.db`` with artifacts in ``<run dir>/mlartifacts``
(run dir: ``$GAPSWEEP_RUN_DIR`` or ``./runs``). For any ``sqlite:///`` store the tracker creates the
experiment with its artifacts in ``mlartifacts/<experiment>`` beside the database file (MLflow's
own default for a SQLite store is ``./mlruns`` under the current directory). Any other tracking
URI, e.g. ``http://host:5000``, keeps the server's artifact settings.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import re
import shlex
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from db import snapshots
from db.engine import run_dir
from orchestrator.score_text import best_step_0
from workers.errors import GapsweepError
from workers.processes import SPAWN_WITHOUT_SIGINT, kill_workers

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from db.rows import RunCounts
    from db.store import RunResult

TRACKING_DB_FILENAME = "mlflow.db"
ARTIFACTS_DIRNAME = "mlartifacts"
BEST_PARAMS_ARTIFACT = "best_params.npz"
CONFIG_ARTIFACT = "config.json"
SEEDS_TABLE_ARTIFACT = "seeds.csv"
SEEDS_TABLE_COLUMNS = ("seed", "status", "test_score", "best_val_score", "best_step",
                       "wall_seconds", "attempts", "db_run_id")

# ``tracking: {per_seed_runs: auto}``: a child run per seed up to this many seed-runs in a sweep
# (configurations × seeds), beyond it a run per configuration with the seeds in ``seeds.csv``.
# Logging a seed's run costs ~50 ms (``benchmarks/mlflow_logging.py``): 4,096 of them ~3.5 min;
# 102,400 would be ~85 min, and an experiment page of 100,000 runs is one nobody can browse.
PER_SEED_RUNS_AUTO_MAX = 4096

TAG_SWEEP = "gapsweep.sweep"
TAG_CONFIG_HASH = "gapsweep.config_hash"
TAG_LABEL = "gapsweep.label"
TAG_ROLE = "gapsweep.role"
TAG_SEED = "gapsweep.seed"
TAG_DB_RUN_ID = "gapsweep.db_run_id"
TAG_STATUS = "gapsweep.status"
TAG_BEST_STEP_0 = "gapsweep.best_step_0"    # "true" / "false"
TAG_CANARY = "gapsweep.canary"              # the task's numerical canary: passed | single | none
TAG_CANARY_DEVIATION = "gapsweep.canary_deviation"
TAG_CANARY_SECONDS = "gapsweep.canary_seconds"
TAG_PER_SEED_RUNS = "gapsweep.per_seed_runs"   # on parent runs: "true" / "false"
TAG_PARENT_RUN_ID = "mlflow.parentRunId"     # MLflow's own tag: the UI nests the run under it
ROLE_CONFIGURATION = "configuration"
ROLE_SEED = "seed"

SEED_SCALARS = ("test_score", "best_val_score", "best_step", "final_step", "diverged_step",
                "wall_seconds")
MLFLOW_STATUS_OF = {"done": "FINISHED", "diverged": "FAILED"}

# MLflow's limits (mlflow.utils.validation): values per log_batch call, params among them, and
# the length of a param value.
MAX_VALUES_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_VALUE_LENGTH = 6000
SEARCH_PAGE_SIZE = 10_000

# Parallel logging: calls with at least PARALLEL_MIN_SEEDS new seeds use worker processes (started
# once, ~3 s, kept until close()), each given SEEDS_PER_TASK seeds at a time. Two processes on a
# 2-core machine log ~1.5× as many seeds per second as one; a third only adds contention for
# SQLite's write lock.
PARALLEL_MIN_SEEDS = 16
SEEDS_PER_TASK = 16
DEFAULT_LOG_PROCESSES = 2

# MLflow's HTTP retry settings for a tracking server, unless already set in the environment
HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}

_INVALID_KEY_CHARACTERS = re.compile(r"[^\w./\- :]")
_INVALID_SLUG_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


class TrackingError(GapsweepError, RuntimeError):
    """The tracker was used out of order or given what MLflow cannot hold; the message says why."""


TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"     # MLflow's own variable


def per_seed_runs(setting: bool | str, seed_runs: int) -> bool:
    """Whether a sweep of ``seed_runs`` seed-runs logs a child run per seed, for the sweep file's
    ``tracking.per_seed_runs`` (true, false or "auto": up to ``PER_SEED_RUNS_AUTO_MAX``)."""
    if setting == "auto":
        return seed_runs <= PER_SEED_RUNS_AUTO_MAX
    if isinstance(setting, bool):
        return setting
    raise TrackingError(f"tracking.per_seed_runs is {setting!r}; allowed: true, false, auto")


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` (how a cluster's nodes name their tracking server), else the local
    store ``sqlite:///<run dir>/mlflow.db`` (absolute path)."""
    return (os.environ.get(TRACKING_URI_ENV)
            or f"sqlite:///{(run_dir() / TRACKING_DB_FILENAME).resolve()}")


def ui_command(tracking_uri: str) -> str:
    """What to run to browse ``tracking_uri`` in the MLflow UI, on http://127.0.0.1:5000.

    A store (``sqlite:///…``, ``postgresql://…``) gets an ``mlflow ui`` command with one worker
    and without MLflow's job runner (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``: by default the
    server also starts a job runner and seven Huey consumer processes for GenAI jobs, ~2 GB more
    memory that browsing a sweep never uses). For SQLite it names ``mlartifacts`` beside the
    database as the default artifact root, so that an experiment created from the UI keeps its
    artifacts there too. A tracking server (``http(s)://…``) already serves the UI: its URL is
    returned as it is.
    """
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri
    command = ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false", "mlflow", "ui",
               "--backend-store-uri", tracking_uri]
    database = _sqlite_path(tracking_uri)
    if database is not None:
        command += ["--default-artifact-root", str(database.parent / ARTIFACTS_DIRNAME)]
    command += ["--host", "127.0.0.1", "--port", "5000", "--workers", "1"]
    return shlex.join(command)


def runs_page_url(tracking_uri: str, experiment_id: str) -> str:
    """The MLflow UI page that lists a sweep's runs, sorted by run name so that each seed run
    (``<label>/seed=<n>``) sits under its configuration's run (``<label>``).

    For a store the UI is the one :func:`ui_command` starts (http://127.0.0.1:5000); a tracking
    server serves its own. ``workflowType=machine_learning`` opens MLflow 3's model-training view
    (its default, the GenAI view, shows an experiment as an empty Traces overview; MLflow 3.17
    takes the view from the page address or the browser's last choice, not from the experiment).
    """
    base = (tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://"))
            else "http://127.0.0.1:5000")
    return (f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            "&orderByKey=tags.%60mlflow.runName%60&orderByAsc=true")


def quiet_mlflow() -> None:
    """Keep MLflow's chatter off the terminal without hiding its warnings and errors.

    Raises MLflow's database-setup logger to WARNING (it announces "Creating initial MLflow
    database tables..." and "Updating database tables" on a new store) and turns off the two
    "View run/experiment at: URL" lines that ``set_terminated`` prints to stdout for every run
    against a tracking server (fetching the run once more to print them).
    """
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config → MLflow params: ``a.b`` keys, lists as JSON, values cut to fit MLflow."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, path))
            continue
        if isinstance(value, (list, tuple)):
            value = json.dumps(list(value), default=str)
        flat[_INVALID_KEY_CHARACTERS.sub("_", path)] = str(value)[:MAX_PARAM_VALUE_LENGTH]
    return flat


def _sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, else None."""
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix):]).resolve() if tracking_uri.startswith(prefix) else None


def _csv_number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _millis(moment: dt.datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def _quoted(value: str) -> str:
    """``value`` as a single-quoted literal of an MLflow filter string."""
    if "'" in value:
        raise TrackingError(f"{value!r}: a sweep name or config hash with a quote (') cannot be "
                            "searched for in MLflow")
    return f"'{value}'"


def _log_batch(client: "MlflowClient", run_id: str, metrics: Sequence["Metric"] = (),
               params: Sequence["Param"] = ()) -> None:
    """``log_batch`` in calls within MLflow's limits (1,000 values, of them at most 100 params)."""
    metrics, params = list(metrics), list(params)
    while metrics or params:
        chunk_params, params = params[:MAX_PARAMS_PER_BATCH], params[MAX_PARAMS_PER_BATCH:]
        room = MAX_VALUES_PER_BATCH - len(chunk_params)
        chunk_metrics, metrics = metrics[:room], metrics[room:]
        client.log_batch(run_id, metrics=chunk_metrics, params=chunk_params)


# -- seed runs (in the driver or in a log worker process) -----------------------------------------

@dataclasses.dataclass(frozen=True)
class SeedRunContext:
    """What a seed's child run needs besides the seed and its result."""

    experiment_id: str
    parent_run_id: str
    sweep_name: str
    config_hash: str
    label: str


def _log_seed_run(client: "MlflowClient", context: SeedRunContext, seed: int,
                  result: "RunResult", scratch: Path) -> None:
    """One finished seed → one child run: create (with tags), one batch, artifact, terminate."""
    from mlflow.entities import Metric, Param

    tags = {TAG_PARENT_RUN_ID: context.parent_run_id, TAG_SWEEP: context.sweep_name,
            TAG_CONFIG_HASH: context.config_hash, TAG_LABEL: context.label, TAG_SEED: str(seed),
            TAG_DB_RUN_ID: str(result.run_id), TAG_STATUS: result.status, TAG_ROLE: ROLE_SEED,
            TAG_BEST_STEP_0: str(best_step_0(result.best_step)).lower(),
            TAG_CANARY: result.canary or "none"}
    if result.canary_deviation is not None:
        tags[TAG_CANARY_DEVIATION] = f"{result.canary_deviation:.3g}"
    if result.canary_seconds is not None:
        tags[TAG_CANARY_SECONDS] = f"{result.canary_seconds:.2f}"
    run = client.create_run(context.experiment_id, start_time=_millis(result.started_at),
                            run_name=f"{context.label}/seed={seed}", tags=tags)
    run_id = run.info.run_id
    timestamp = _millis(result.finished_at) or int(time.time() * 1000)
    metrics = [Metric(curve.name, float(value), timestamp, int(step))
               for curve in result.curves
               for step, value in zip(curve.steps, curve.values, strict=True)]
    metrics += [Metric(name, float(getattr(result, name)), timestamp, 0)
                for name in SEED_SCALARS if getattr(result, name) is not None]
    _log_batch(client, run_id, metrics, [Param("seed", str(seed))])
    best = result.snapshots.get("best")
    if best is not None:
        path = scratch / BEST_PARAMS_ARTIFACT
        path.write_bytes(snapshots.encode(best))
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status=MLFLOW_STATUS_OF[result.status],
                          end_time=_millis(result.finished_at))


def _log_seed_runs(client: "MlflowClient", context: SeedRunContext,
                   records: Sequence[tuple[int, "RunResult"]]) -> list[int]:
    """Child runs for ``records``; returns their seeds."""
    with tempfile.TemporaryDirectory(prefix="gapsweep-mlflow-") as scratch:
        for seed, result in records:
            _log_seed_run(client, context, seed, result, Path(scratch))
    return [seed for seed, _ in records]


_worker_client: "MlflowClient | None" = None     # a log worker process's own client


def _start_log_worker(tracking_uri: str) -> None:
    global _worker_client
    quiet_mlflow()
    from mlflow.tracking import MlflowClient

    _worker_client = MlflowClient(tracking_uri=tracking_uri)


def _log_seed_runs_in_worker(context: SeedRunContext,
                             records: Sequence[tuple[int, "RunResult"]]) -> list[int]:
    return _log_seed_runs(_worker_client, context, records)


def _create_sqlite_store_whole(database: Path) -> None:
    """A new local SQLite store is created under a temporary name and linked into place once
    MLflow's migrations are all done (seconds: dozens of them). Created in place, a Ctrl-C in the
    middle left a half-migrated file that every later run refused ("index ... already exists")."""
    if database.exists():
        return
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    fd, name = tempfile.mkstemp(dir=database.parent, prefix=f".{database.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()                                          # SQLite creates it
    uri = f"sqlite:///{tmp}"
    try:
        store = SqlAlchemyStore(uri, DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
        store.engine.dispose()
        SqlAlchemyStore._engine_map.pop(uri, None)
        with contextlib.suppress(FileExistsError):       # another driver was first: keep its
            os.link(tmp, database)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


# -- the tracker -----------------------------------------------------------------------------------

class SweepTracker:
    """Mirrors one sweep into MLflow; see the module docstring for the layout.

    ``log_processes``: worker processes for large ``log_seeds`` calls (default: 2, at most the
    CPUs available; 1 logs everything in this process).
    """

    def __init__(self, tracking_uri: str | None, experiment: str, sweep_name: str,
                 sweep_tags: dict[str, str] | None = None, *, log_processes: int | None = None,
                 per_seed_runs: bool = True):
        quiet_mlflow()
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri or default_tracking_uri()
        if self.tracking_uri.startswith(("http://", "https://")):
            # a server that stops answering fails a call in 13 s, not MLflow's 4 min of retries
            # (7 with a doubling backoff; measured on a refused connection); MLflow's own
            # variables, where set, win
            for name, value in HTTP_RETRY_DEFAULTS.items():
                os.environ.setdefault(name, value)
        self.sweep_name = sweep_name
        self.sweep_tags = dict(sweep_tags or {})
        self.per_seed_runs = bool(per_seed_runs)
        self.log_processes = (log_processes if log_processes is not None
                              else min(DEFAULT_LOG_PROCESSES, len(os.sched_getaffinity(0))))
        database = _sqlite_path(self.tracking_uri)
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
            _create_sqlite_store_whole(database)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self._experiment_id = self._find_or_create_experiment(experiment or sweep_name, database)
        self._parent_run_ids: dict[str, str] = {}        # label → parent run id
        self._config_hashes: dict[str, str] = {}         # label → config hash
        self._logged_seeds: dict[str, set[int]] = {}     # label → seeds that have a child run
        self._log_workers: concurrent.futures.ProcessPoolExecutor | None = None

    @property
    def experiment_id(self) -> str:
        return self._experiment_id

    def __enter__(self) -> "SweepTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- experiment and configurations -----------------------------------------------------------

    def _find_or_create_experiment(self, name: str, database: Path | None) -> str:
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            if existing.lifecycle_stage != "active":
                raise TrackingError(
                    f"MLflow experiment {name!r} (id {existing.experiment_id}) is deleted: restore "
                    "it (`mlflow experiments restore`) or choose another experiment name")
            for key, value in self.sweep_tags.items():
                if existing.tags.get(key) != value:
                    self.client.set_experiment_tag(existing.experiment_id, key, value)
            return existing.experiment_id
        artifact_location = None
        if database is not None:
            slug = _INVALID_SLUG_CHARACTERS.sub("_", name).strip("._") or "experiment"
            artifact_location = (database.parent / ARTIFACTS_DIRNAME / slug).as_uri()
        return self.client.create_experiment(name, artifact_location=artifact_location,
                                             tags=self.sweep_tags or None)

    def configuration(self, label: str, config: dict, config_hash: str) -> str:
        """The parent run of a configuration: found by (sweep, config hash), else created."""
        if label in self._parent_run_ids:
            if self._config_hashes[label] != config_hash:
                raise TrackingError(
                    f"configuration {label!r} is registered with hash {self._config_hashes[label]}"
                    f", not {config_hash}: one label, one configuration")
            return self._parent_run_ids[label]
        run = self.find_run(ROLE_CONFIGURATION, config_hash=config_hash)
        if run is not None:
            run_id = run.info.run_id
            if run.info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            if run.data.tags.get(TAG_PER_SEED_RUNS) != self._per_seed_tag:
                self.client.set_tag(run_id, TAG_PER_SEED_RUNS, self._per_seed_tag)
        else:
            run_id = self._create_parent_run(label, config, config_hash)
        self._parent_run_ids[label] = run_id
        self._config_hashes[label] = config_hash
        return run_id

    def _create_parent_run(self, label: str, config: Mapping[str, Any], config_hash: str) -> str:
        from mlflow.entities import Param

        tags = {**self.sweep_tags, TAG_SWEEP: self.sweep_name, TAG_CONFIG_HASH: config_hash,
                TAG_LABEL: label, TAG_ROLE: ROLE_CONFIGURATION,
                TAG_PER_SEED_RUNS: self._per_seed_tag}
        run_id = self.client.create_run(self._experiment_id, run_name=label, tags=tags).info.run_id
        _log_batch(self.client, run_id,
                   params=[Param(key, value) for key, value in flatten_config(config).items()])
        self.client.log_dict(run_id, dict(config), CONFIG_ARTIFACT)
        return run_id

    @property
    def _per_seed_tag(self) -> str:
        return str(self.per_seed_runs).lower()

    def _parent_run_id(self, label: str) -> str:
        try:
            return self._parent_run_ids[label]
        except KeyError:
            raise TrackingError(
                f"configuration {label!r} is unknown to this tracker: call "
                f"configuration({label!r}, config, config_hash) before logging its seeds or "
                "summary") from None

    # -- seeds -----------------------------------------------------------------------------------

    def log_seeds(self, label: str, records: list[tuple[int, "RunResult"]]) -> int:
        """Child runs for the seeds of ``label`` that have none yet; returns how many were made."""
        context = SeedRunContext(self._experiment_id, self._parent_run_id(label), self.sweep_name,
                                 self._config_hashes[label], label)
        logged = self._seeds_logged(label)
        new: dict[int, RunResult] = {}
        for seed, result in records:
            if int(seed) not in logged:
                if result.status not in MLFLOW_STATUS_OF:
                    raise TrackingError(f"{label} seed {seed}: status {result.status!r} is not "
                                        f"one of {sorted(MLFLOW_STATUS_OF)}")
                new[int(seed)] = result
        todo = list(new.items())
        try:
            if len(todo) >= PARALLEL_MIN_SEEDS and self.log_processes > 1:
                workers = self._workers()
                tasks = [workers.submit(_log_seed_runs_in_worker, context,
                                        todo[start:start + SEEDS_PER_TASK])
                         for start in range(0, len(todo), SEEDS_PER_TASK)]
                for task in concurrent.futures.as_completed(tasks):
                    logged.update(task.result())
            else:
                logged.update(_log_seed_runs(self.client, context, todo))
        except BaseException:
            # Some seeds of this call may be logged, others not: search again next time.
            del self._logged_seeds[label]
            raise
        return len(todo)

    def missing_seeds(self, label: str, seeds) -> list[int]:
        """Those of ``seeds`` (of ``label``) that have no child run, in order."""
        logged = self._seeds_logged(label)
        return sorted(int(s) for s in seeds if int(s) not in logged)

    def _seeds_logged(self, label: str) -> set[int]:
        """Seeds of ``label`` with a child run (one search, then cached).

        A child run still RUNNING was cut off half-way by an interrupted driver: it is deleted, so
        that its seed is logged again, whole.
        """
        if label not in self._logged_seeds:
            seeds: set[int] = set()
            for run in self._search(f"tags.`{TAG_PARENT_RUN_ID}` = '{self._parent_run_id(label)}'"
                                    f" AND tags.`{TAG_ROLE}` = '{ROLE_SEED}'"):
                if run.info.status == "RUNNING":
                    self.client.delete_run(run.info.run_id)
                else:
                    seeds.add(int(run.data.tags[TAG_SEED]))
            self._logged_seeds[label] = seeds
        return self._logged_seeds[label]

    def _workers(self) -> concurrent.futures.ProcessPoolExecutor:
        """The log worker processes, started on first use ("spawn": the driver may run Ray)."""
        if self._log_workers is None:
            self._log_workers = concurrent.futures.ProcessPoolExecutor(   # Ctrl-C: ours alone
                max_workers=self.log_processes, mp_context=SPAWN_WITHOUT_SIGINT,
                initializer=_start_log_worker, initargs=(self.tracking_uri,))
        return self._log_workers

    # -- summaries and the end -------------------------------------------------------------------

    def update_summary(self, label: str, test_scores: Sequence[float],
                       counts: "RunCounts | Mapping[str, int]") -> None:
        """Parent metrics over the finished seeds, at step = seeds finished so far; ``counts`` by
        status, and ``best_step_0`` if known: a ``RunCounts`` (as ``ResultsStore.finished_scores``
        gives) or a mapping of the statuses it has."""
        from mlflow.entities import Metric

        if dataclasses.is_dataclass(counts):
            counts = dataclasses.asdict(counts)
        parent_run_id = self._parent_run_id(label)
        scores = [float(s) for s in test_scores if s is not None and math.isfinite(float(s))]
        summary = {f"n_{status}": int(counts.get(status, 0))
                   for status in ("done", "diverged", "failed")}
        if "best_step_0" in counts:
            summary["n_best_step_0"] = int(counts["best_step_0"])
        if scores:
            mean = sum(scores) / len(scores)
            summary["test_mean"] = mean
            summary["test_max"] = max(scores)
            if len(scores) >= 2:
                summary["test_std"] = math.sqrt(
                    sum((s - mean) ** 2 for s in scores) / (len(scores) - 1))
        step = summary["n_done"] + summary["n_diverged"] + summary["n_failed"]
        timestamp = int(time.time() * 1000)
        _log_batch(self.client, parent_run_id,
                   [Metric(key, float(value), timestamp, step) for key, value in summary.items()])

    def log_seed_table(self, label: str, runs: Sequence[Any]) -> None:
        """The configuration's seeds as the parent run's ``seeds.csv`` (replacing the last one):
        one row per run (``db.rows.RunRow``: seed, status, scores, best step, wall seconds,
        attempts and the database's run id), what a sweep logged without per-seed runs shows."""
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(SEEDS_TABLE_COLUMNS)
        for run in runs:
            writer.writerow([run.seed, run.status, _csv_number(run.test_score),
                             _csv_number(run.best_val_score),
                             "" if run.best_step is None else run.best_step,
                             _csv_number(run.wall_seconds), run.attempts, run.id])
        self.client.log_text(self._parent_run_id(label), out.getvalue(), SEEDS_TABLE_ARTIFACT)

    def abandon(self) -> None:
        """Stop using MLflow at once, after it failed: the log workers are killed, and nothing
        more is sent (the parent runs stay RUNNING; the next tracker finds and resumes them)."""
        if self._log_workers is not None:
            kill_workers(self._log_workers)
            self._log_workers = None
        self._parent_run_ids.clear()
        self._config_hashes.clear()
        self._logged_seeds.clear()

    def close(self, interrupted: bool = False) -> None:
        """End the parent runs (FINISHED) and the log workers; a later tracker can resume.
        ``interrupted`` (Ctrl-C): the log workers are killed, not waited on (a seed they were
        logging is found half-logged and logged again by the next run, as after a crash)."""
        if self._log_workers is not None:
            if interrupted:
                kill_workers(self._log_workers)
            else:
                self._log_workers.shutdown()
            self._log_workers = None
        for run_id in self._parent_run_ids.values():
            self.client.set_terminated(run_id, status="FINISHED")
        self._parent_run_ids.clear()
        self._config_hashes.clear()
        self._logged_seeds.clear()

    # -- MLflow searches -------------------------------------------------------------------------

    def find_run(self, role: str, *, label: str | None = None, config_hash: str | None = None):
        """The sweep's run with tag ``gapsweep.role`` = ``role`` (and the ``label`` / config hash
        tags, when given) in the experiment, the first created where there are several; None where
        there is none. The one search for a configuration's parent run (by config hash here, by
        label for the analyses' artifacts) and for the report's run."""
        conditions = [f"tags.`{TAG_SWEEP}` = {_quoted(self.sweep_name)}"]
        if config_hash is not None:
            conditions.append(f"tags.`{TAG_CONFIG_HASH}` = {_quoted(config_hash)}")
        if label is not None:
            conditions.append(f"tags.`{TAG_LABEL}` = {_quoted(label)}")
        conditions.append(f"tags.`{TAG_ROLE}` = {_quoted(role)}")
        found = self._search(" AND ".join(conditions))
        return min(found, key=lambda r: r.info.start_time) if found else None

    def _search(self, filter_string: str) -> list:
        """Every active run of the experiment matching ``filter_string`` (all pages)."""
        runs = []
        page_token = None
        while True:
            page = self.client.search_runs([self._experiment_id], filter_string,
                                           max_results=SEARCH_PAGE_SIZE, page_token=page_token)
            runs.extend(page)
            page_token = page.token
            if not page_token:
                return runs
