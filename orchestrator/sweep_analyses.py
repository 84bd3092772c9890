"""A sweep's analyses as the engine runs them: one worker task per configuration, vmapped over its
seeds (``workers.analysis.task``), then stored, written and optionally logged to MLflow
(``orchestrator.analysis``), each finished configuration reported to an events object
(``orchestrator.events.AnalysisEvents``). What ``gapsweep analyse`` and a sweep file's
``analyses:`` both run.

    with analysis_workers(store, "quickstart", address="auto") as workers:
        results = faithfulness_for_sweep(store, "quickstart", workers=workers, events=events)
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Iterator

from db.engine import run_dir
from db.rows import SweepRow
from db.store import ResultsStore
from orchestrator import analysis
from orchestrator.cluster import WorkerCall, check_gpus, ray_session, run_here, run_on_workers
from orchestrator.events import AnalysisEvents
from orchestrator.report import mlflow_experiment
from orchestrator.spec import SpecError, parse_spec
from workers.compile.programs import PROGRAMS


def figure_dir(sweep_name: str) -> Path:
    """Where a sweep's analysis figures and arrays go by default: <run dir>/analyses/<sweep>."""
    return run_dir() / "analyses" / sweep_name


def _sweep_row(store: ResultsStore, name: str) -> SweepRow:
    store.sweep_id(name)     # the error that lists the known sweeps
    return next(s for s in store.sweeps() if s.name == name)


def task_resources(store: ResultsStore, sweep_name: str, gpus: float | None = None
                   ) -> tuple[float, float]:
    """(cpus, gpus) of one analysis task on a cluster: the sweep's resources, ``gpus`` first."""
    try:
        resources = parse_spec(_sweep_row(store, sweep_name).spec_yaml or "").resources
        cpus, sweep_gpus = resources.cpus, resources.gpus
    except SpecError:
        cpus, sweep_gpus = 1.0, 0.0             # a sweep registered without a full sweep file
    return cpus, sweep_gpus if gpus is None else gpus


@contextlib.contextmanager
def analysis_workers(store: ResultsStore, sweep_name: str, address: str | None = None,
                     gpus: float | None = None) -> Iterator:
    """The ``workers`` an analysis runs its calls with: :func:`run_here` without ``address``;
    with it, Ray tasks on that cluster with the sweep's resources (``gpus`` first), inside one
    Ray session, after checking that the cluster has the GPUs."""
    if not address:
        yield run_here
        return
    cpus, gpus = task_resources(store, sweep_name, gpus)
    with ray_session(address):
        check_gpus(gpus, "each analysis task")
        yield functools.partial(run_on_workers, cpus=cpus, gpus=gpus)


def faithfulness_for_sweep(store: ResultsStore, sweep_name: str, labels=None,
                           cache_dir: str | None = None, figures: Path | None = None,
                           mlflow_uri: str | None = None, chunk: int | None = None,
                           workers=run_here, events: AnalysisEvents | None = None) -> list:
    """Faithfulness of each configuration (default: every BFS / Bellman-Ford one): one worker
    task per configuration (``workers``: :func:`run_here` or from :func:`analysis_workers`), then
    stored, plotted and, with ``mlflow_uri``, logged; ``FaithfulnessResult``s in the order of
    ``labels``."""
    from workers.analysis.task import faithfulness_task   # JAX: only when an analysis runs

    events = events or AnalysisEvents()
    figures = figures or figure_dir(sweep_name)
    sweep = _sweep_row(store, sweep_name)
    configs = store.configurations(sweep.id)
    labels = labels or [c.label for c in configs if c.algorithm in PROGRAMS]
    populations = [analysis.load_population(store, sweep.id, label) for label in labels]
    calls = [WorkerCall(f"{sweep_name}/{p.label}/faithfulness", faithfulness_task,
                        (p.config.to_dict(), p.params),
                        {"cache_dir": cache_dir, "chunk": chunk}) for p in populations]
    results: list = [None] * len(populations)
    events.analysis_start("faithfulness", len(calls))
    try:
        for index, arrays in workers(calls):
            population = populations[index]
            result = analysis.faithfulness_result(population, arrays)
            analysis.store_faithfulness(store, population, result)
            path = analysis.plot_faithfulness(
                result, figures / f"faithfulness-{analysis.slug(population.label)}.png",
                f"{sweep_name} / {population.label}")
            run_id = None
            if mlflow_uri:
                run_id = analysis.log_artifacts_to_mlflow(
                    mlflow_uri, mlflow_experiment(sweep_name, sweep.spec_yaml), sweep_name,
                    population.label, [path])
            events.faithfulness_done(population, result, arrays, path, run_id)
            results[index] = result
    finally:
        events.analysis_stop("faithfulness")
    return results


def landscapes_for_sweep(store: ResultsStore, sweep_name: str, labels=None, seeds=None,
                         cache_dir: str | None = None, figures: Path | None = None,
                         mlflow_uri: str | None = None, grid: int = 21, span: float = 1.0,
                         graphs: int = 16, first: int = 1, workers=run_here,
                         events: AnalysisEvents | None = None) -> list:
    """Loss landscapes of each configuration (default: all) at the given seeds (default: its
    ``first`` done seeds): one worker task per configuration, vmapped over its seeds; then stored,
    written and, with ``mlflow_uri``, logged; ``LandscapeSet``s in the order of ``labels``."""
    from workers.analysis.task import landscape_task      # JAX: only when an analysis runs

    events = events or AnalysisEvents()
    figures = figures or figure_dir(sweep_name)
    sweep = _sweep_row(store, sweep_name)
    populations = []
    for label in labels or [c.label for c in store.configurations(sweep.id)]:
        wanted = seeds or [r.seed for r in store.runs_of(sweep.id, label, status="done")
                           ][:first] or None                   # none done: loading says so
        populations.append(analysis.load_population(store, sweep.id, label, seeds=wanted))
    calls = [WorkerCall(f"{sweep_name}/{p.label}/landscape", landscape_task,
                        (p.config.to_dict(), p.seeds, p.params),
                        {"cache_dir": cache_dir, "grid": grid, "span": span, "graphs": graphs})
             for p in populations]
    results: list = [None] * len(populations)
    events.analysis_start("landscapes", len(calls), f"{grid}×{grid}")
    try:
        for index, arrays in workers(calls):
            population = populations[index]
            result = analysis.landscape_set(population, arrays)
            analysis.store_landscapes(store, result)
            files = analysis.write_landscapes(result, figures,
                                              f"{sweep_name} / {population.label}")
            run_id = None
            if mlflow_uri:
                run_id = analysis.log_artifacts_to_mlflow(
                    mlflow_uri, mlflow_experiment(sweep_name, sweep.spec_yaml), sweep_name,
                    population.label, files)
            events.landscapes_done(population, result, arrays, files, figures, run_id)
            results[index] = result
    finally:
        events.analysis_stop("landscapes")
    return results


def run_sweep_analyses(store: ResultsStore, sweep_name: str, analyses, cache_dir: str | None,
                       mlflow_uri: str | None, workers=run_here,
                       events: AnalysisEvents | None = None) -> dict[str, list]:
    """A sweep file's ``analyses:``, as ``run_sweep`` runs them once its seeds are recorded;
    results by analysis name."""
    results = {}
    if "faithfulness" in analyses:
        results["faithfulness"] = faithfulness_for_sweep(
            store, sweep_name, None, cache_dir, None, mlflow_uri, workers=workers, events=events)
    if "landscape" in analyses:
        results["landscape"] = landscapes_for_sweep(
            store, sweep_name, None, None, cache_dir, None, mlflow_uri, workers=workers,
            events=events)
    return results
