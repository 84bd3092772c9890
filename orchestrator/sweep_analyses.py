"""Analyses of a finished sweep's stored parameters (``gapsweep analyse``, a sweep file's
``analyses:``): trace and attention faithfulness per hint step (paper Figs. 3-5, 12-15), loss
landscapes (Figs. 6, 7, 17-19) and the wide test (each seed's best parameters scored on many
more test graphs than CLRS-30's 32, so the report can tell seed variance from test-sample noise).

    with analysis_workers(store, "quickstart", address="auto") as workers:
        results = faithfulness_for_sweep(store, "quickstart", workers=workers, events=events)

The driver reads each configuration's done runs and their ``best`` snapshots from the results
database and stacks them (``load_population``); one worker task per configuration
(``workers.analysis.analysis_task``: a Ray task with the sweep's resources, or this process)
computes the analysis vmapped over the seeds and returns plain arrays; the driver turns them into
results here and keeps them: metric curves of each run in the database
(``test/attention_faithfulness`` per step, landscape summaries, wide-test scores), figures and arrays under
``<run dir>/analyses/<sweep>/``, and optionally MLflow artifacts of each configuration's parent
run (``analyses/…``). Each finished configuration is reported to an events object
(``orchestrator.events.AnalysisEvents``); nothing here prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from db.engine import run_dir
from db.rows import SweepRow
from db.store import (WIDE_TEST_DATA_SEED, WIDE_TEST_GRAPHS, WIDE_TEST_SCORE, Curve,
                      ResultsStore, StoreError)
from orchestrator.cluster import (WorkerCall, check_cpus, check_gpus, ray_session, run_here,
                                  run_on_workers)
from orchestrator.events import AnalysisEvents
from orchestrator.probes import probe_mlflow
from orchestrator.report import mlflow_experiment
from orchestrator.spec import SpecError, WideTest, parse_spec
from orchestrator.tracking import ROLE_CONFIGURATION, SweepTracker, TrackingError
from workers.compile.algorithm_programs import PROGRAMS
from workers.config import TrainConfig

ATTENTION_CURVE = "attention_faithfulness"


def slug(label: str) -> str:
    """A configuration label as a file-name part (``algorithm=bfs`` → ``algorithm_bfs``)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)


@dataclasses.dataclass
class Population:
    """A configuration's done runs with their best parameters stacked [S, …]."""

    label: str
    config: TrainConfig
    run_ids: list[int]
    seeds: list[int]
    test_scores: np.ndarray
    params: dict


def load_population(store: ResultsStore, sweep_id: int, label: str, kind: str = "best",
                    seeds: Sequence[int] | None = None) -> Population:
    configs = {c.label: c for c in store.configurations(sweep_id)}
    if label not in configs:
        raise StoreError(f"the sweep has no configuration {label!r}; it has: "
                         f"{', '.join(configs) or 'none'}")
    runs = store.runs_of(sweep_id, label, status="done")
    if seeds is not None:
        wanted = set(seeds)
        runs = [r for r in runs if r.seed in wanted]
    if not runs:
        raise StoreError(f"configuration {label!r} has no done run"
                         + (f" with seed(s) {sorted(seeds)}" if seeds is not None else ""))
    trees = [store.load_snapshot(r.id, kind) for r in runs]
    import jax

    params = jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *trees)
    return Population(label=label, config=TrainConfig.from_dict(configs[label].config),
                      run_ids=[r.id for r in runs], seeds=[r.seed for r in runs],
                      test_scores=np.array([r.test_score for r in runs], dtype=float),
                      params=params)


@dataclasses.dataclass
class FaithfulnessResult:
    label: str
    algorithm: str
    seeds: list[int]
    test_scores: np.ndarray              # [S], fractions
    attention: np.ndarray                # [S, T - 1]
    trace: dict[str, np.ndarray]         # hint -> [S, T - 1]
    chance: np.ndarray                   # [T - 1]
    pearson: tuple[float, float]         # (r, p) of mean attention faithfulness vs test score
    spearman: tuple[float, float]

    @property
    def mean_attention(self) -> np.ndarray:
        """Per seed, attention faithfulness averaged over the steps."""
        return np.nanmean(self.attention, axis=1)

    def to_json(self) -> dict:
        def clean(a):
            return [None if not np.isfinite(v) else float(v) for v in np.asarray(a).ravel()]

        return {"label": self.label, "algorithm": self.algorithm, "seeds": self.seeds,
                "test_scores": clean(self.test_scores),
                "attention": {"mean": clean(np.nanmean(self.attention, 0)),
                              "std": clean(np.nanstd(self.attention, 0)),
                              "per_seed": [clean(row) for row in self.attention]},
                "trace": {h: {"mean": clean(np.nanmean(v, 0)), "std": clean(np.nanstd(v, 0))}
                          for h, v in self.trace.items()},
                "chance": clean(self.chance),
                "pearson": {"r": self.pearson[0], "p": self.pearson[1]},
                "spearman": {"rho": self.spearman[0], "p": self.spearman[1]}}


def _correlation(x: np.ndarray, y: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    from scipy import stats

    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return (float("nan"), float("nan")), (float("nan"), float("nan"))
    pearson = stats.pearsonr(x[ok], y[ok])
    spearman = stats.spearmanr(x[ok], y[ok])
    return ((float(pearson.statistic), float(pearson.pvalue)),
            (float(spearman.statistic), float(spearman.pvalue)))


def faithfulness_result(population: Population, arrays) -> FaithfulnessResult:
    """A configuration's faithfulness from its worker task's ``FaithfulnessArrays`` (rows in the
    population's seed order), with the correlation of faithfulness and test score across seeds."""
    if len(arrays.attention) != len(population.seeds):
        raise ValueError(f"{len(arrays.attention)} row(s) of faithfulness for "
                         f"{len(population.seeds)} seed(s)")
    result = FaithfulnessResult(
        label=population.label, algorithm=population.config.algorithm, seeds=population.seeds,
        test_scores=population.test_scores, attention=arrays.attention, trace=arrays.trace,
        chance=arrays.chance, pearson=(np.nan, np.nan), spearman=(np.nan, np.nan))
    result.pearson, result.spearman = _correlation(result.mean_attention, population.test_scores)
    return result


def store_faithfulness(store: ResultsStore, population: Population,
                       result: FaithfulnessResult) -> None:
    """Each run's attention faithfulness per step as the curve ``test/attention_faithfulness``."""
    steps = np.arange(result.attention.shape[1])
    store.replace_metrics({run_id: [Curve("test", ATTENTION_CURVE, steps, result.attention[i])]
                           for i, run_id in enumerate(population.run_ids)})


def plot_faithfulness(result: FaithfulnessResult, path: Path, title: str) -> Path:
    """Left: per hint step, mean ± std over seeds of each hint's trace accuracy and of attention
    faithfulness, with the chance level; right: per seed, attention faithfulness (mean over
    steps) against the test score, with Pearson's r and its p-value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    steps = np.arange(result.attention.shape[1]) + 1
    series = {f"hint {h}" + (" (mse)" if h == "d" else ""): v for h, v in result.trace.items()}
    series["attention"] = result.attention
    for name, values in series.items():
        with np.errstate(all="ignore"):
            mean, std = np.nanmean(values, 0), np.nanstd(values, 0)
        left.plot(steps[:len(mean)], mean, marker="o", ms=3, label=name)
        left.fill_between(steps[:len(mean)], mean - std, mean + std, alpha=0.2)
    left.plot(steps, result.chance, ls="--", color="gray", label="attention by chance")
    left.set_xlabel("hint step t (predicting hint t)")
    left.set_ylabel("agreement with the algorithm")
    left.set_ylim(-0.02, 1.02)
    left.legend(fontsize=8)
    left.set_title(f"{title}: trace and attention faithfulness ({len(result.seeds)} seeds)",
                   fontsize=9)
    right.scatter(result.mean_attention, 100 * result.test_scores, s=14)
    right.set_xlabel("attention faithfulness (mean over steps)")
    right.set_ylabel("test score (%)")
    r, p = result.pearson
    right.set_title(f"faithfulness vs effectiveness: Pearson r = {r:.2f} (p = {p:.2g})",
                    fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def log_artifacts_to_mlflow(tracking_uri: str, experiment: str, sweep: str, label: str,
                            paths: Sequence[Path], artifact_dir: str = "analyses") -> str:
    """Log files as artifacts of the configuration's parent run (tags gapsweep.sweep,
    gapsweep.label, gapsweep.role=configuration); returns its run id."""
    if "'" in sweep or "'" in label:
        raise TrackingError(f"{sweep!r} / {label!r}: a name with a quote (') cannot be searched "
                            "for in MLflow")
    with SweepTracker(tracking_uri, experiment, sweep, log_processes=1) as tracker:
        found = tracker.find_run(ROLE_CONFIGURATION, label=label)
        if found is None:
            raise TrackingError(f"no MLflow parent run of configuration {label!r} of sweep "
                                f"{sweep!r} in experiment {experiment!r} at {tracking_uri}")
        run_id = found.info.run_id
        for path in paths:
            tracker.client.log_artifact(run_id, str(path), artifact_dir)
    return run_id


# -- loss landscapes ------------------------------------------------------------------------------


@dataclasses.dataclass
class LandscapeSet:
    """A configuration's loss landscapes: per analysed seed, name → Landscape; ``shared``: those of
    the configuration itself (around the compiled network); and the files written for them."""

    label: str
    seeds: list[int]
    run_ids: list[int]
    per_seed: list[dict]
    shared: dict
    files: list[Path] = dataclasses.field(default_factory=list)


def landscape_set(population: Population, arrays) -> LandscapeSet:
    """A configuration's landscapes from its worker task's ``LandscapeArrays``."""
    if len(arrays.per_seed) != len(population.seeds):
        raise ValueError(f"landscapes of {len(arrays.per_seed)} seed(s) for "
                         f"{len(population.seeds)} seed(s)")
    return LandscapeSet(population.label, population.seeds, population.run_ids,
                        arrays.per_seed, arrays.shared)


def write_landscapes(result: LandscapeSet, directory: Path, title: str) -> list[Path]:
    """Per seed and landscape ``landscape-<label>-seed<k>-<name>.npz`` (the arrays) and ``.png``;
    the configuration's own as ``landscape-<label>-<name>``."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = slug(result.label)
    named = [(f"{stem}-seed{seed}-{name}", f"{title} / seed {seed}: {name}", landscape)
             for seed, landscapes in zip(result.seeds, result.per_seed)
             for name, landscape in landscapes.items()]
    named += [(f"{stem}-{name}", f"{title}: {name}", landscape)
              for name, landscape in result.shared.items()]
    files = []
    for base_name, caption, landscape in named:
        base = directory / f"landscape-{base_name}"
        landscape.to_npz(base.with_suffix(".npz"))
        landscape.plot(base.with_suffix(".png"), caption)
        files += [base.with_suffix(".npz"), base.with_suffix(".png")]
    result.files = files
    return files


def landscape_summary(landscape) -> dict[str, float]:
    """Centre loss and sharpness (mean and max rise of the finite losses over the centre's)."""
    losses = np.asarray(landscape.losses, dtype=float)
    a = int(np.argmin(np.abs(landscape.alphas)))
    b = int(np.argmin(np.abs(landscape.betas)))
    centre = float(losses[a, b])
    finite = losses[np.isfinite(losses)]
    return {"centre_loss": centre,
            "mean_rise": float(np.mean(finite) - centre) if finite.size else float("nan"),
            "max_rise": float(np.max(finite) - centre) if finite.size else float("nan")}


def store_landscapes(store: ResultsStore, result: LandscapeSet) -> None:
    """Each seed's landscape summaries as scalar metrics ``test/landscape/<name>/<stat>`` of its
    run (the configuration's own landscapes are in the files and MLflow only)."""
    store.replace_metrics({
        run_id: [Curve("test", f"landscape/{name}/{stat}", [0], [value])
                 for name, landscape in landscapes.items()
                 for stat, value in landscape_summary(landscape).items()]
        for run_id, landscapes in zip(result.run_ids, result.per_seed)})


# -- running them: one worker task per configuration --------------------------------------------

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
        check_cpus(cpus, "each analysis task")
        yield functools.partial(run_on_workers, cpus=cpus, gpus=gpus)


def faithfulness_for_sweep(store: ResultsStore, sweep_name: str, labels=None,
                           cache_dir: str | None = None, figures: Path | None = None,
                           mlflow_uri: str | None = None, chunk: int | None = None,
                           workers=run_here, events: AnalysisEvents | None = None) -> list:
    """Faithfulness of each configuration (default: every BFS / Bellman-Ford one): one worker
    task per configuration (``workers``: :func:`run_here` or from :func:`analysis_workers`), then
    stored, plotted and, with ``mlflow_uri``, logged; ``FaithfulnessResult``s in the order of
    ``labels``."""
    from workers.analysis.analysis_task import faithfulness_task   # JAX: only when an analysis runs

    events = events or AnalysisEvents()
    if mlflow_uri:
        probe_mlflow(mlflow_uri)                  # before any computation, not after it
    figures = figures or figure_dir(sweep_name)
    sweep = _sweep_row(store, sweep_name)
    configs = store.configurations(sweep.id)
    labels = ([store.configuration_label(sweep.id, value) for value in labels] if labels else
              [c.label for c in configs if c.algorithm in PROGRAMS])    # `bfs`: algorithm=bfs
    populations = [load_population(store, sweep.id, label) for label in labels]
    calls = [WorkerCall(f"{sweep_name}/{p.label}/faithfulness", faithfulness_task,
                        (p.config.to_dict(), p.params),
                        {"cache_dir": cache_dir, "chunk": chunk}) for p in populations]
    results: list = [None] * len(populations)
    events.analysis_start("faithfulness", len(calls))
    try:
        for index, arrays in workers(calls):
            population = populations[index]
            result = faithfulness_result(population, arrays)
            store_faithfulness(store, population, result)
            path = plot_faithfulness(
                result, figures / f"faithfulness-{slug(population.label)}.png",
                f"{sweep_name} / {population.label}")
            run_id = None
            if mlflow_uri:
                run_id = log_artifacts_to_mlflow(
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
    from workers.analysis.analysis_task import landscape_task      # JAX: only when an analysis runs

    events = events or AnalysisEvents()
    if mlflow_uri:
        probe_mlflow(mlflow_uri)                  # before any computation, not after it
    figures = figures or figure_dir(sweep_name)
    sweep = _sweep_row(store, sweep_name)
    populations = []
    labels = ([store.configuration_label(sweep.id, value) for value in labels] if labels else
              [c.label for c in store.configurations(sweep.id)])
    for label in labels:
        wanted = seeds or [r.seed for r in store.runs_of(sweep.id, label, status="done")
                           ][:first] or None                   # none done: loading says so
        populations.append(load_population(store, sweep.id, label, seeds=wanted))
    calls = [WorkerCall(f"{sweep_name}/{p.label}/landscape", landscape_task,
                        (p.config.to_dict(), p.seeds, p.params),
                        {"cache_dir": cache_dir, "grid": grid, "span": span, "graphs": graphs})
             for p in populations]
    results: list = [None] * len(populations)
    events.analysis_start("landscapes", len(calls), f"{grid}×{grid}")
    try:
        for index, arrays in workers(calls):
            population = populations[index]
            result = landscape_set(population, arrays)
            store_landscapes(store, result)
            files = write_landscapes(result, figures,
                                              f"{sweep_name} / {population.label}")
            run_id = None
            if mlflow_uri:
                run_id = log_artifacts_to_mlflow(
                    mlflow_uri, mlflow_experiment(sweep_name, sweep.spec_yaml), sweep_name,
                    population.label, files)
            events.landscapes_done(population, result, arrays, files, figures, run_id)
            results[index] = result
    finally:
        events.analysis_stop("landscapes")
    return results


# -- the wide test ---------------------------------------------------------------------------------


@dataclasses.dataclass
class WideTestResult:
    """A configuration's wide test: per seed its CLRS-30 test score and its wide-test score."""

    label: str
    seeds: list[int]
    run_ids: list[int]
    test_scores: np.ndarray              # [S], fractions: the CLRS-30 test split
    wide_scores: np.ndarray              # [S], fractions: the wide test set, pooled
    graphs: int
    size: int
    data_seed: int

    def to_json(self) -> dict:
        return {"label": self.label, "graphs": self.graphs, "size": self.size,
                "data_seed": self.data_seed, "seeds": self.seeds,
                "test_scores": [float(v) for v in self.test_scores],
                "wide_test_scores": [float(v) for v in self.wide_scores]}


def store_wide_test(store: ResultsStore, result: WideTestResult) -> None:
    """Each run's wide-test score, graph count and data seed as scalar metrics of split
    ``test`` (``wide_test/score``, ``…/graphs``, ``…/data_seed``), replacing earlier ones."""
    store.replace_metrics({
        run_id: [Curve("test", WIDE_TEST_SCORE, [0], [float(score)]),
                 Curve("test", WIDE_TEST_GRAPHS, [0], [float(result.graphs)]),
                 Curve("test", WIDE_TEST_DATA_SEED, [0], [float(result.data_seed)])]
        for run_id, score in zip(result.run_ids, result.wide_scores)})


def wide_test_for_sweep(store: ResultsStore, sweep_name: str, labels=None,
                        graphs: int = 1024, data_seed: int = 4, cache_dir: str | None = None,
                        chunk: int | None = None, workers=run_here,
                        events: AnalysisEvents | None = None) -> list:
    """Each configuration's (default: all) done seeds scored on ``graphs`` test graphs drawn
    with ``data_seed`` as CLRS-30's test split is drawn: one worker task per configuration; the
    scores are stored per run; ``WideTestResult``s in the order of ``labels``."""
    from workers.analysis.analysis_task import wide_test_task   # JAX: only when an analysis runs

    events = events or AnalysisEvents()
    sweep = _sweep_row(store, sweep_name)
    labels = ([store.configuration_label(sweep.id, value) for value in labels] if labels else
              [c.label for c in store.configurations(sweep.id)])
    populations = [load_population(store, sweep.id, label) for label in labels]
    calls = [WorkerCall(f"{sweep_name}/{p.label}/wide_test", wide_test_task,
                        (p.config.to_dict(), p.params, graphs, data_seed),
                        {"cache_dir": cache_dir, "chunk": chunk}) for p in populations]
    results: list = [None] * len(populations)
    events.analysis_start("wide_test", len(calls), f"{graphs:,} graphs, data seed {data_seed}")
    try:
        for index, arrays in workers(calls):
            population = populations[index]
            if len(arrays.scores) != len(population.seeds):
                raise ValueError(f"{len(arrays.scores)} wide-test score(s) for "
                                 f"{len(population.seeds)} seed(s)")
            result = WideTestResult(population.label, population.seeds, population.run_ids,
                                    population.test_scores, np.asarray(arrays.scores, float),
                                    arrays.graphs, arrays.size, arrays.data_seed)
            store_wide_test(store, result)
            events.wide_test_done(population, result, arrays)
            results[index] = result
    finally:
        events.analysis_stop("wide_test")
    return results


def run_sweep_analyses(store: ResultsStore, sweep_name: str, analyses, cache_dir: str | None,
                       mlflow_uri: str | None, workers=run_here,
                       events: AnalysisEvents | None = None, wide_test=None) -> dict[str, list]:
    """A sweep file's ``analyses:``, as ``run_sweep`` runs them once its seeds are recorded
    (``wide_test``: the sweep file's ``wide_test:`` settings, ``spec.WideTest``); results by
    analysis name."""
    results = {}
    if "faithfulness" in analyses:
        results["faithfulness"] = faithfulness_for_sweep(
            store, sweep_name, None, cache_dir, None, mlflow_uri, workers=workers, events=events)
    if "landscape" in analyses:
        results["landscape"] = landscapes_for_sweep(
            store, sweep_name, None, None, cache_dir, None, mlflow_uri, workers=workers,
            events=events)
    if "wide_test" in analyses:
        settings = wide_test or WideTest()
        results["wide_test"] = wide_test_for_sweep(
            store, sweep_name, None, settings.graphs, settings.data_seed, cache_dir,
            workers=workers, events=events)
    return results
