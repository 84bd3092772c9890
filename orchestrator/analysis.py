"""Analyses of a finished sweep's stored parameters (``gapsweep analyse``): trace and attention
faithfulness per hint step (paper Figs. 3-5, 12-15) and loss landscapes (Figs. 6, 7, 17-19).

The driver reads each configuration's done runs and their ``best`` snapshots from the results
database and stacks them; a worker task (``workers.analysis.analysis_task``: a Ray task with the sweep's
resources, or this process) computes the analysis vmapped over the seeds and returns plain arrays;
the driver turns them into results here: metric curves of each run in the database
(``test/attention_faithfulness`` per step, landscape summaries), figures and arrays under
``<run dir>/analyses/<sweep>/``, and optionally MLflow artifacts of each configuration's parent run
(``analyses/…``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from db.store import Curve, ResultsStore, StoreError
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
    configs = {c["label"]: c for c in store.configurations(sweep_id)}
    if label not in configs:
        raise StoreError(f"the sweep has no configuration {label!r}; it has: "
                         f"{', '.join(configs) or 'none'}")
    runs = store.runs_of(sweep_id, label, status="done")
    if seeds is not None:
        wanted = set(seeds)
        runs = [r for r in runs if r["seed"] in wanted]
    if not runs:
        raise StoreError(f"configuration {label!r} has no done run"
                         + (f" with seed(s) {sorted(seeds)}" if seeds is not None else ""))
    trees = [store.load_snapshot(r["id"], kind) for r in runs]
    import jax

    params = jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *trees)
    return Population(label=label, config=TrainConfig.from_dict(configs[label]["config"]),
                      run_ids=[r["id"] for r in runs], seeds=[r["seed"] for r in runs],
                      test_scores=np.array([r["test_score"] for r in runs], dtype=float),
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
    from orchestrator.tracking import TAG_LABEL, TAG_ROLE, TAG_SWEEP, SweepTracker, TrackingError

    if "'" in sweep or "'" in label:
        raise TrackingError(f"{sweep!r} / {label!r}: a name with a quote (') cannot be searched "
                            "for in MLflow")
    with SweepTracker(tracking_uri, experiment, sweep, log_processes=1) as tracker:
        found = tracker.client.search_runs(
            [tracker.experiment_id],
            f"tags.`{TAG_SWEEP}` = '{sweep}' AND tags.`{TAG_LABEL}` = '{label}' AND "
            f"tags.`{TAG_ROLE}` = 'configuration'")
        if not found:
            raise TrackingError(f"no MLflow parent run of configuration {label!r} of sweep "
                                f"{sweep!r} in experiment {experiment!r} at {tracking_uri}")
        run_id = found[0].info.run_id
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
