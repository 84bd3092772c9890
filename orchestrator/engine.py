"""One sweep from plan to recorded results and analyses, in values and events: ``run_sweep``.

    plan = make_plan(load_spec("sweeps/quickstart.yaml"))
    result = run_sweep(plan, SweepSettings(db="sqlite:///runs/gapsweep.db"), events)
    result.outcome.recorded, result.counts, result.analyses

``run_sweep`` builds the data a local run is missing (once, here, before any task starts),
registers the sweep, trains every pending seed as Ray tasks (``schedule.SweepRunner``) and then
runs the sweep file's ``analyses:`` in the same Ray session (``sweep_analyses``); the database
gets every result (waiting for it when it stops answering: ``db.retry.RetryingStore``) and MLflow
its runs. It prints nothing: each step is an ``events`` call
(``orchestrator.events.SweepEvents``), and the returned ``SweepResult`` holds what happened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

from db.retry import DEFAULT_MAX_WAIT_S, RetryingStore
from db.store import ResultsStore
from orchestrator.cluster import ray_session, run_on_workers
from orchestrator.events import DataEvents, SweepEvents
from orchestrator.plan import SweepPlan
from orchestrator.probes import probe_mlflow, probe_ray
from orchestrator.schedule import SweepOutcome, SweepRunner
from orchestrator.sweep_analyses import run_sweep_analyses
from orchestrator.tracking import SweepTracker, default_tracking_uri, per_seed_runs
from orchestrator.version import code_version
from workers.data import DataCache, available_cores, stop_generation_workers
from workers.data.cache import Fetched
from workers.train import TrainData


@dataclasses.dataclass(frozen=True)
class SweepSettings:
    """Where and how a sweep runs (the ``gapsweep run`` flags; every default works on a laptop).

    ``address``: a Ray cluster ('auto', HOST:6379, ray://HOST:10001); None, a local Ray.
    ``db``: the results database URL (None: ``db.engine.resolve_url``'s default).
    ``mlflow``: the tracking URI (None: ``tracking.default_tracking_uri()``); ``track=False``
    records in the database only. ``population``: at most this many seeds per task (None: the
    sweep's). ``gpus``: GPUs per task instead of the sweep's ``resources.gpus``. ``cache_dir``:
    the data cache of a local run. ``db_wait``: how long (seconds) to wait for a results database
    that stops answering mid-sweep, per outage, before failing (``db.retry.RetryingStore``; 0:
    fail at once); finished populations are held in memory meanwhile. ``simulate``: train
    nothing; each task sleeps this many seconds and records ``workers.synthetic`` results (device
    "synthetic"), no data is built (a sweep that exercises the cluster and the stores only)."""

    address: str | None = None
    db: str | None = None
    mlflow: str | None = None
    track: bool = True
    retry_failed: bool = False
    population: int | None = None
    gpus: float | None = None
    cache_dir: str | None = None
    db_wait: float = DEFAULT_MAX_WAIT_S
    simulate: float | None = None


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What one ``run_sweep`` did: the training outcome, the counts per configuration the store
    has after it, and each analysis's results (by name; empty when none ran)."""

    outcome: SweepOutcome
    counts: list
    store_url: str
    tracking_uri: str | None
    analyses: dict[str, list]
    experiment_id: str | None = None     # the sweep's MLflow experiment (None without tracking)
    db_wait_seconds: float = 0.0         # waited in all for an unreachable results database
    db_outages: int = 0                  # how many times it stopped answering

    @property
    def exit_code(self) -> int:
        """0 when every seed is recorded, 1 when some failed, 130 when interrupted."""
        return 130 if self.outcome.interrupted else 1 if self.outcome.failed else 0


def build_data(requests: list, cache: DataCache, processes: int | None = None,
               events: DataEvents | None = None) -> list[Fetched]:
    """Each request from the cache (verified against its checksums), built on ``processes``
    cores (default: all) where missing or damaged; what each fetch did, in order."""
    events = events or DataEvents()
    processes = processes or available_cores()
    events.data_start(requests, cache.directory)
    fetched = []
    try:
        for request in requests:
            fetched.append(cache.fetch(
                request, processes=processes,
                progress=lambda graphs, request=request: events.data_progress(request, graphs)))
            events.data_done(request, fetched[-1])
    finally:
        stop_generation_workers()
        events.data_stop()
    return fetched


def prepare_data(plan: SweepPlan, cache: DataCache, events: DataEvents | None = None) -> int:
    """Build the data the plan's configurations need and the cache lacks, here, on all cores;
    the number of data sets built."""
    requests = list(dict.fromkeys(r for c in plan.configurations
                                  for r in TrainData.requests(c.config)))
    missing = [r for r in requests if not cache.contains(r)]
    if missing:
        build_data(missing, cache, events=events)
    return len(missing)


def run_sweep(plan: SweepPlan, settings: SweepSettings = SweepSettings(),
              events: SweepEvents | None = None, trainer=None) -> SweepResult:
    """Register ``plan``'s sweep, train its pending seeds, record them, run its analyses.

    Re-running picks up exactly what is left; Ctrl-C stops cleanly (``outcome.interrupted``).
    ``trainer`` replaces the worker's training function (tests and benchmarks)."""
    events = events or SweepEvents()
    spec = plan.spec
    if settings.simulate is not None:
        from workers.synthetic import run_synthetic_task

        trainer = functools.partial(run_synthetic_task, seconds=settings.simulate)
    tracking_uri = (settings.mlflow or default_tracking_uri()) if settings.track else None
    if settings.address:                           # nothing is registered before the services answer
        probe_ray(settings.address)
    if tracking_uri:
        probe_mlflow(tracking_uri)
    version = code_version()                       # before JAX starts threads (git forks)
    seed_runs = len(plan.configurations) * len(plan.seeds)
    tracker = (SweepTracker(tracking_uri, spec.tracking.experiment or plan.sweep_name,
                            plan.sweep_name, {"gapsweep.experiment": spec.experiment},
                            per_seed_runs=per_seed_runs(spec.tracking.per_seed_runs, seed_runs))
               if tracking_uri else None)
    experiment_id = tracker.experiment_id if tracker is not None else None
    analyses: dict[str, list] = {}
    with ResultsStore(settings.db) as results:     # a bad URL fails before any data is built
        store = RetryingStore(results, on_wait=events.message, max_wait_s=settings.db_wait)
        cache_dir = None
        simulated = settings.simulate is not None
        if settings.address is None and not simulated:   # local: build missing data, once, first
            cache = DataCache(settings.cache_dir)
            cache_dir = str(cache.directory)
            prepare_data(plan, cache, events)
        events.run_start(plan, settings.address or "a local Ray", store.display_url,
                         tracking_uri)
        if simulated:
            events.message(f"simulated: no training; each task sleeps {settings.simulate:g} s and "
                           "records synthetic results (device 'synthetic')"
                           + ("; the sweep's analyses are skipped" if spec.analyses else ""))
        runner = SweepRunner(plan, store, tracker, address=settings.address, cache_dir=cache_dir,
                             retry_failed=settings.retry_failed, population=settings.population,
                             trainer=trainer, events=events, code_version=version,
                             gpus=settings.gpus)
        # with analyses: one Ray session for the training and the analysis tasks after it
        with ray_session(settings.address) if spec.analyses else contextlib.nullcontext():
            outcome = runner.run()
            counts = store.counts(outcome.sweep_id)
            events.trained(outcome, counts, tracking_uri, experiment_id)
            if spec.analyses and outcome.recorded and not outcome.interrupted and not simulated:
                events.analyses_start(list(spec.analyses))
                analyses = run_sweep_analyses(
                    store, plan.sweep_name, spec.analyses, cache_dir, tracking_uri,
                    functools.partial(run_on_workers, cpus=spec.resources.cpus, gpus=runner.gpus),
                    events, spec.wide_test)
    if store.outages:
        events.message(f"waited {store.waited_s:.0f} s in all for the results database "
                       f"({store.outages} outage(s))")
    return SweepResult(outcome, counts, store.display_url, tracking_uri, analyses, experiment_id,
                       store.waited_s, store.outages)
