"""The aggregation report: each sweep's test scores beside the numbers the paper reports.

    from db.store import ResultsStore
    from orchestrator import report, report_figures, report_formats

    with ResultsStore(url) as store:
        result = report.build_report(store, experiment="table10_edge_info")
    print(report_formats.to_markdown(result))   # or to_text / to_csv / to_latex / to_json
    report_figures.write_figures(result, Path("runs/reports"))   # one <sweep>.png per sweep

This module holds the statistics and the values they fill (``Report`` → ``SweepReport`` →
``ConfigurationResult``, ``PairComparison``), built from the rows ``ResultsStore.sweep_seeds``
reads; ``orchestrator.report_formats`` writes them as text (rich), markdown, csv, latex and json,
``orchestrator.report_figures`` draws them and logs the figures to MLflow.

How sweeps meet the paper: a sweep's ``experiment`` is a key of ``tables`` in
``orchestrator/paper/reported_results.yaml`` (a copy of the project's shared transcription of the
paper's tables) and a configuration's ``label`` is a row key of that table. Configurations and
experiments without a paper counterpart are reported too, with empty paper columns. Several sweeps
may share an experiment (a scaled-down one and the full one): each sweep is its own table.

Conventions (``Conventions``, also stated under every formatted report):

- ours: the test scores of a configuration's runs with status ``done``, stored as fractions and
  reported in percent: mean ± sample std (ddof = 1; none below two scores) (max).
- seeds: done / planned, where planned counts every run of the configuration in the sweep; diverged
  and failed runs are counted apart. A sweep with pending, running or failed runs is *partial*: it
  reports what is done and says so.
- 95% CI of our mean: percentile bootstrap over seeds, 10,000 resamples drawn with
  ``numpy.random.default_rng(0)`` afresh for each configuration, so every interval is reproducible
  and independent of what else is in the report (it equals ``scipy.stats.bootstrap`` with
  ``method="percentile"`` and the same generator).
- Δ: (our mean − paper mean) / paper std, signed.
- best step 0: ``†N`` after our score says that N of its seeds kept the parameters of their first
  validation, after a single training step (their starting point; a note under the table says so);
  csv and json carry the count as ``n_best_step_0``.
- a sweep with exactly two configurations (an ablation) also gets Welch's t-test and the
  Mann–Whitney U test, both two-sided, of "other − reference" (the reference is the paper's
  first row, else the configuration registered first); the verdict on the paper's direction is
  Welch's at α = 0.05.

- what many seeds show (``SeedStatistics``, ``RowComparison``; estimators in
  ``orchestrator.seed_stats``, each defined in ``Conventions.sentence``): IQM and quantiles,
  success rates (100 % and ≥ τ), the expected best of k seeds, a bimodality flag; every pair of
  rows compared (paired when both train seed k on the same fresh data: ``shared_data_key``),
  Holm-adjusted over the table, with the seeds 80 % power would need.
- the wide test (``seed_stats.TestNoise``, once ``gapsweep analyse wide-test`` has scored the
  seeds on many more test graphs): its mean ± std beside the CLRS-30 test's, and the seeds'
  spread on the 32-graph test split split into seed variance (cov of the two scores) and the
  test split's own noise.

The report reads the results database only, through the store (one transaction); writing figures
and logging them to MLflow are separate steps.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import yaml
from sqlalchemy import Engine

from db.rows import RUN_STATUSES, ConfigurationSeeds, SeedOutcome
from db.store import ResultsStore
from orchestrator import seed_stats
from orchestrator.published_anchors import Anchor, anchors_for, load_anchors
from orchestrator.score_text import best_step_0, best_step_0_note
# the bootstrap and test settings are seed_stats's, so the mean's CI and the rest share them
from orchestrator.seed_stats import ALPHA, BOOTSTRAP_RESAMPLES, BOOTSTRAP_RNG_SEED, CI_LEVEL
from workers.config import TrainConfig
from workers.data.requests import CLRS30_TEST
from workers.errors import GapsweepError

PAPER_RESULTS_PATH = Path(__file__).parent / "paper" / "reported_results.yaml"

STD_DDOF = 1
SUCCESS_THRESHOLD = 95.0                 # the configurable τ (percent), beside exact (100 %)


# -- the paper's numbers ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PaperCell:
    """One cell of a paper table: mean ± std (max) over seeds, in percent."""

    mean_pct: float
    std_pct: float
    max_pct: float


@dataclasses.dataclass(frozen=True)
class PaperTable:
    """One table of the paper, keyed like a sweep's ``experiment``."""

    experiment: str
    title: str
    seeds: int
    test_set: str | None                 # None: CLRS length generalisation, n = 64
    note: str | None
    rows: Mapping[str, PaperCell]        # configuration label → cell, in the paper's order


def load_paper_tables(path: str | Path = PAPER_RESULTS_PATH) -> dict[str, PaperTable]:
    """The ``tables`` of ``reported_results.yaml``, by experiment key."""
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    tables = {}
    for key, table in document["tables"].items():
        rows = {label: PaperCell(float(cell["mean"]), float(cell["std"]), float(cell["max"]))
                for label, cell in table["rows"].items()}
        tables[key] = PaperTable(key, table["title"], int(table["seeds"]), table.get("test"),
                                 table.get("note"), rows)
    return tables


# -- the report's data -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Conventions:
    """How the report's numbers are computed (see the module docstring)."""

    score_unit: str = "percent"
    std_ddof: int = STD_DDOF
    ci_level: float = CI_LEVEL
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES
    bootstrap_rng_seed: int = BOOTSTRAP_RNG_SEED
    alpha: float = ALPHA
    success_threshold_pct: float = SUCCESS_THRESHOLD
    quantiles_pct: tuple[float, ...] = seed_stats.QUANTILES
    expected_max_ks: tuple[int, ...] = seed_stats.EXPECTED_MAX_KS
    power: float = seed_stats.POWER
    bimodality_threshold: float = seed_stats.BIMODALITY_THRESHOLD
    bimodal_min_seeds: int = seed_stats.BIMODAL_MIN_SEEDS
    bimodal_min_mode_fraction: float = seed_stats.BIMODAL_MIN_MODE_FRACTION
    bimodal_max_dip: float = seed_stats.BIMODAL_MAX_DIP

    def sentence(self) -> str:
        level = f"{100 * self.ci_level:g}%"
        return (f"ours: test score (%) of the seeds with status done, mean ± sample std "
                f"(ddof = {self.std_ddof}) (max): ± is the spread of seeds, not an s.e.m.; "
                f"{level} CIs: percentile bootstrap over seeds, {self.bootstrap_resamples:,} "
                f"resamples, numpy default_rng({self.bootstrap_rng_seed}) afresh per "
                "configuration and per comparison; IQM: mean of the middle half (a quarter "
                "of the seeds cut each side, scipy trim_mean 0.25); quantiles "
                f"{'/'.join(f'{q:g}' for q in self.quantiles_pct)}: numpy linear "
                "interpolation; exact: seeds at 100%, "
                f"≥ {self.success_threshold_pct:g}%: seeds reaching it, {level} Wilson "
                "intervals; E[max of k]: the expected best of k seeds drawn from ours without "
                "replacement (unbiased; k = 1 is the mean, k = n the max; — where k > n); "
                f"bimodal: Sarle's coefficient > {self.bimodality_threshold:.3f}, a valley at "
                "the two-means split holding under "
                f"{self.bimodal_max_dip:g} × a flat density's seeds, ≥ {self.bimodal_min_seeds} "
                "seeds and each mode "
                f"≥ {100 * self.bimodal_min_mode_fraction:g}% of them; comparisons: every pair "
                "of rows, P(other > reference) (ties count half) and IQM(other) − IQM(reference) "
                "with bootstrap CIs, Mann–Whitney U (unpaired) or Wilcoxon signed-rank "
                "(paired: both rows train seed k on the same fresh data, over their shared "
                "seeds), two-sided, Holm-adjusted within the table; seeds for power: per row, "
                f"for a two-sided t-test (two-sample or paired) at α = {self.alpha:g} to detect "
                f"the observed standardised difference with {100 * self.power:g}% power; "
                "Δ = (ours − paper mean) / paper std; seeds: done/planned (planned = every run "
                "of the configuration); wide test: the seeds' best parameters scored on many "
                "test graphs drawn as the test split is (another data seed), pooled; seed "
                "variance = cov(test, wide) over seeds (clipped into [0, var(test)]), test-split "
                "noise = var(test) − that, "
                "seed share = their ratio (bootstrap CI over seeds), shift = mean(test − wide); "
                "two-configuration sweeps: Welch's t-test and "
                f"Mann–Whitney U, two-sided, verdict by Welch at α = {self.alpha:g}. Paper cells "
                "as published (its std convention is not stated).")


@dataclasses.dataclass(frozen=True)
class ExpectedMax:
    """The expected best of ``k`` seeds, with its bootstrap interval (percent)."""

    k: int
    value_pct: float
    low_pct: float
    high_pct: float


@dataclasses.dataclass(frozen=True)
class SeedStatistics:
    """What a configuration's many seeds show beyond mean ± std (percent throughout)."""

    iqm_pct: float
    iqm_low_pct: float
    iqm_high_pct: float
    quantiles_pct: tuple[float, ...]            # at Conventions.quantiles_pct
    exact: seed_stats.SuccessRate               # seeds at 100 %
    success: seed_stats.SuccessRate             # seeds at ≥ Conventions.success_threshold_pct
    expected_max: tuple[ExpectedMax, ...]       # k of EXPECTED_MAX_KS (and the paper's) ≤ seeds
    modes: seed_stats.Modes

    def expected_max_at(self, k: int) -> ExpectedMax | None:
        return next((e for e in self.expected_max if e.k == k), None)


@dataclasses.dataclass(frozen=True)
class ConfigurationResult:
    """One configuration of one sweep: its seeds' scores, run counts and the paper's cell."""

    label: str
    algorithm: str
    seeds: tuple[int, ...]               # done seeds with a test score, ascending
    scores_pct: tuple[float, ...]        # their test scores in percent, in the same order
    n_planned: int                       # every run of the configuration, whatever its status
    n_done: int
    n_diverged: int
    n_failed: int
    n_running: int
    n_pending: int
    n_best_step_0: int                   # scored seeds whose best step is 0 (their starting point)
    mean_pct: float | None               # None without scores
    std_pct: float | None                # sample std (ddof 1); None below two scores
    max_pct: float | None
    ci95_low_pct: float | None           # percentile bootstrap interval of the mean
    ci95_high_pct: float | None
    paper: PaperCell | None              # None: no paper counterpart
    difference_in_paper_std: float | None    # (mean − paper mean) / paper std
    statistics: SeedStatistics | None = None # None without scores
    shared_data: tuple | None = None         # fresh data key: equal keys train seed k alike
    wide_test: seed_stats.TestNoise | None = None   # None: no (or too few) wide-test scores
    wide_test_seeds: tuple[int, ...] = ()            # seeds with a wide-test score, ascending
    wide_test_scores_pct: tuple[float, ...] = ()     # their wide-test scores, in that order
    anchors: tuple[Anchor, ...] = ()                 # published numbers on the same test set

    @property
    def partial(self) -> bool:
        return self.n_pending + self.n_running + self.n_failed > 0


def format_points(value: float) -> str:
    """A difference of two means in percentage points, signed (a comparison's sentence)."""
    return f"{value:+.2f} points"


def format_p(p: float | None) -> str:
    """A p-value to two significant digits; — for none."""
    return "—" if p is None else f"{p:.2g}"


@dataclasses.dataclass(frozen=True)
class PairComparison:
    """The two configurations of an ablation: ``other`` − ``reference``."""

    reference: str
    other: str
    difference_pct: float | None         # other mean − reference mean, in points
    welch_t: float | None                # None: fewer than two scores on a side, or no variance
    welch_p: float | None
    mann_whitney_u: float | None         # U of ``other``; None: a side without scores
    mann_whitney_p: float | None
    paper_difference_pct: float | None   # the same difference in the paper; None: not in it
    verdict: str | None                  # supports | contradicts | inconclusive (on the paper's
                                         # direction, by Welch at ALPHA); None: nothing to judge

    def sentence(self) -> str:
        """The comparison in words, e.g. for the notes under a table."""
        head = f"{self.other} − {self.reference}: ours "
        if self.difference_pct is None:
            return head + "— (a configuration has no done seeds)"
        head += (f"{format_points(self.difference_pct)} (Welch p = {format_p(self.welch_p)}, "
                 f"Mann–Whitney p = {format_p(self.mann_whitney_p)})")
        if self.paper_difference_pct is None:
            return head + "; no paper numbers for this pair"
        head += f"; paper {format_points(self.paper_difference_pct)}"
        paper_higher = self.other if self.paper_difference_pct > 0 else self.reference
        ours_higher = self.other if self.difference_pct > 0 else self.reference
        if self.verdict == "supports":
            return head + (f": supports the paper ({paper_higher} higher, Welch p < "
                           f"{ALPHA:g})")
        if self.verdict == "contradicts":
            return head + (f": contradicts the paper ({ours_higher} higher here, Welch p < "
                           f"{ALPHA:g})")
        if self.verdict == "inconclusive":
            return head + (f": inconclusive (no significant difference at α = {ALPHA:g}; the "
                           f"paper has {paper_higher} higher)")
        if self.welch_p is None:
            return head + (": not enough done seeds for Welch's test (two per configuration, "
                           "with some variance)")
        return head + ": the paper has no difference to test"


@dataclasses.dataclass(frozen=True)
class RowComparison:
    """Two rows of one table: ``other`` against ``reference`` (the earlier row), paired over
    their shared seeds where both train seed k on the same fresh data."""

    reference: str
    other: str
    result: seed_stats.Comparison
    holm_p: float | None                 # the p-value after Holm's correction over the table
    design: str                          # why paired or not, in words

    def sentence(self) -> str:
        r = self.result
        p = format_p(r.p_value)
        return (f"{self.other} vs {self.reference} ({self.design}): P(other > reference) = "
                f"{r.probability_of_improvement:.2f} [{r.poi_low:.2f}, {r.poi_high:.2f}], "
                f"ΔIQM {format_points(r.iqm_difference)} [{r.iqm_difference_low:+.2f}, "
                f"{r.iqm_difference_high:+.2f}], {r.test} p = {p}, Holm p = "
                f"{format_p(self.holm_p)}; " + power_phrase(r))


def power_phrase(r: seed_stats.Comparison) -> str:
    """How many seeds would detect the observed difference, in words."""
    unit = "pairs" if r.paired else "seeds per row"
    if r.seeds_for_power is None:
        return "no difference to size a study for"
    return (f"{r.seeds_for_power:,} {unit} would detect this difference with "
            f"{100 * seed_stats.POWER:g}% power")


@dataclasses.dataclass(frozen=True)
class SweepReport:
    """One sweep's table: its configurations beside the paper's table for its experiment."""

    sweep: str
    experiment: str
    status: str
    mlflow_experiment: str               # the sweep file's tracking.experiment, else the sweep name
    paper: PaperTable | None
    configurations: tuple[ConfigurationResult, ...]   # paper order first, then registration order
    paper_rows_missing: tuple[str, ...]  # paper rows with no configuration in this sweep
    comparison: PairComparison | None    # exactly two configurations only
    comparisons: tuple[RowComparison, ...] = ()     # every pair of rows with scores

    @property
    def title(self) -> str:
        title = f"{self.sweep} — {self.experiment}"
        return f"{title}: {self.paper.title}" if self.paper else title

    def count(self, status: str) -> int:
        """Runs of the sweep with ``status`` (a run status, "planned" for all of them, or
        "best_step_0" for scored seeds at best step 0)."""
        return sum(getattr(c, f"n_{status}") for c in self.configurations)

    @property
    def partial(self) -> bool:
        return any(c.partial for c in self.configurations)

    def notes(self) -> list[str]:
        """What to read under the table: partial state, the paper's setting, the comparison."""
        notes = []
        if self.partial:
            rest = ", ".join(f"{self.count(s)} {s}" for s in ("running", "pending", "failed",
                                                               "diverged") if self.count(s))
            notes.append(f"partial: {self.count('done')}/{self.count('planned')} done ({rest}); "
                         "the table reports the done seeds")
        if self.paper is None:
            notes.append(f"experiment {self.experiment!r} has no table in the paper: paper "
                         "columns empty")
        else:
            setting = f"{self.paper.seeds} seeds, test {self.paper.test_set or 'n = 64'}"
            notes.append(f"paper ({self.paper.experiment}): {setting}"
                         + (f"; {self.paper.note}" if self.paper.note else ""))
            if unmatched := [c.label for c in self.configurations if c.paper is None]:
                notes.append(f"not in the paper's table: {', '.join(unmatched)}")
            if self.paper_rows_missing:
                notes.append(f"paper rows not in this sweep: {', '.join(self.paper_rows_missing)}")
        if self.comparison is not None:
            notes.append(self.comparison.sentence())
        if self.count("best_step_0"):
            notes.append(best_step_0_note(self.count("best_step_0"), self.count("done")))
        notes.append("± is the sample std over seeds (ddof = 1), not an s.e.m.; [..] are 95% "
                     "bootstrap (Wilson for rates) intervals")
        for c in self.configurations:
            if c.statistics is not None and c.statistics.modes.bimodal:
                notes.append(modes_sentence(c))
        for c in self.configurations:
            if c.wide_test is not None:
                notes.append(wide_test_sentence(c))
        for c in self.configurations:
            if c.anchors:
                notes.append(f"{c.label}, published: " + "; ".join(a.label for a in c.anchors))
        if self.comparisons:
            paired = sum(r.result.paired for r in self.comparisons)
            notes.append(f"comparisons: {len(self.comparisons)} pair(s) of rows, {paired} paired "
                         "(same fresh training data per seed), the rest unpaired; p-values "
                         "Holm-adjusted over the table")
        return notes


def modes_sentence(c: ConfigurationResult) -> str:
    m = c.statistics.modes
    return (f"{c.label}: bimodal (Sarle's coefficient {m.coefficient:.2f}): "
            f"{100 * m.low_fraction:.0f}% of seeds around {m.low_mean:.2f}%, "
            f"{100 * m.high_fraction:.0f}% around {m.high_mean:.2f}% (split at {m.split:.2f}%)")




def seed_share_text(t: seed_stats.TestNoise) -> str | None:
    """The seed share with its interval, e.g. "38% [25, 51]"; None where it is undefined."""
    if t.seed_share is None:
        return None
    return (f"{100 * t.seed_share:.0f}% [{100 * t.seed_share_low:.0f}, "
            f"{100 * t.seed_share_high:.0f}]")


def wide_test_sentence(c: ConfigurationResult) -> str:
    t = c.wide_test
    share = ("" if t.seed_share is None else
             f"seed variance is {seed_share_text(t)} of the spread of "
             f"the {t.test_graphs}-graph test scores (seed std {t.seed_std:.2f}, test-split "
             f"noise std {t.test_noise_std:.2f} points); ")
    return (f"{c.label}: wide test ({t.graphs:,} graphs, {t.seeds} seeds) {t.wide_mean:.2f} ± "
            f"{t.wide_std:.2f}%; {share}the test split's graphs shift every seed by "
            f"{t.shift:+.2f} [{t.shift_low:+.2f}, {t.shift_high:+.2f}] points")


@dataclasses.dataclass(frozen=True)
class Report:
    """Every sweep asked for, in registration order."""

    database: str                        # the database URL, password masked
    sweeps: tuple[SweepReport, ...]
    conventions: Conventions = Conventions()


# -- statistics ------------------------------------------------------------------------------------

def bootstrap_mean_ci(scores: Sequence[float], level: float = CI_LEVEL,
                      resamples: int = BOOTSTRAP_RESAMPLES,
                      rng_seed: int = BOOTSTRAP_RNG_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: ``resamples`` draws of len(scores) seeds with
    replacement from ``numpy.random.default_rng(rng_seed)``."""
    values = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(rng_seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    return seed_stats.percentile_interval(means, level)


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def compare_pair(reference: ConfigurationResult, other: ConfigurationResult) -> PairComparison:
    """Welch's t-test and Mann–Whitney U (two-sided) of ``other`` − ``reference``, and the
    verdict on the paper's direction."""
    from scipy import stats

    a = np.asarray(reference.scores_pct, dtype=float)
    b = np.asarray(other.scores_pct, dtype=float)
    difference = welch_t = welch_p = u = u_p = None
    if a.size and b.size:
        difference = float(b.mean() - a.mean())
        mann_whitney = stats.mannwhitneyu(b, a, alternative="two-sided")
        u, u_p = _finite(mann_whitney.statistic), _finite(mann_whitney.pvalue)
    if a.size >= 2 and b.size >= 2 and a.var(ddof=1) + b.var(ddof=1) > 0:
        welch = stats.ttest_ind(b, a, equal_var=False)
        welch_t, welch_p = _finite(welch.statistic), _finite(welch.pvalue)
    paper_difference = (other.paper.mean_pct - reference.paper.mean_pct
                        if reference.paper and other.paper else None)
    verdict = None
    if paper_difference and welch_p is not None:
        if welch_p >= ALPHA:
            verdict = "inconclusive"
        else:
            verdict = "supports" if (difference > 0) == (paper_difference > 0) else "contradicts"
    return PairComparison(reference.label, other.label, difference, welch_t, welch_p, u, u_p,
                          paper_difference, verdict)


def seed_statistics(scores_pct: Sequence[float], success_threshold_pct: float = SUCCESS_THRESHOLD,
                    extra_ks: Sequence[int] = ()) -> SeedStatistics | None:
    """IQM, quantiles, success rates, expected maxima and modes of one configuration's scores
    (percent); None without scores."""
    scores = np.asarray(scores_pct, dtype=float)
    if scores.size == 0:
        return None
    resamples = seed_stats.Resamples(scores)
    iqm_low, iqm_high = resamples.interval(resamples.iqms())
    ks = sorted({k for k in (*seed_stats.EXPECTED_MAX_KS, *extra_ks, scores.size)
                 if 1 <= k <= scores.size})
    maxima = tuple(ExpectedMax(k, seed_stats.expected_max(scores, k),
                               *resamples.interval(resamples.expected_maxima(k))) for k in ks)
    return SeedStatistics(seed_stats.iqm(scores), iqm_low, iqm_high, seed_stats.quantiles(scores),
                          seed_stats.success_rate(scores, 100.0),
                          seed_stats.success_rate(scores, success_threshold_pct), maxima,
                          seed_stats.modes(scores))


def shared_data_key(config: Mapping) -> tuple | None:
    """What fixes seed k's training graphs under ``train_data: fresh`` (algorithm, train lengths,
    batch size, data seed): configurations with equal keys train seed k on the same graphs (and
    from the same initial key), so they can be compared seed by seed; None for pooled data (a
    seed's batches depend on its population) or a configuration this code cannot read."""
    c = readable_config(config)
    if c is None or c.train_data != "fresh":
        return None
    return (c.algorithm, tuple(c.train_lengths), c.batch_size, c.data_seed)


def readable_config(config: Mapping) -> TrainConfig | None:
    """A stored configuration as a TrainConfig; None where this code cannot read it (another
    version's keys): the report then leaves out what needs it, rather than failing."""
    try:
        return TrainConfig.from_dict(config)
    except (GapsweepError, TypeError, ValueError):
        return None


def _configuration_result(seeds: ConfigurationSeeds, paper: PaperCell | None,
                          success_threshold_pct: float = SUCCESS_THRESHOLD,
                          paper_seeds: int | None = None,
                          anchors: Sequence[Anchor] = ()) -> ConfigurationResult:
    runs: Sequence[SeedOutcome] = seeds.runs
    counts = {status: sum(r.status == status for r in runs) for status in RUN_STATUSES}
    scored = [r for r in runs if r.status == "done" and r.test_score is not None]
    scores = np.asarray([100.0 * r.test_score for r in scored], dtype=float)
    mean = std = best = low = high = difference = None
    if scores.size:
        mean, best = float(scores.mean()), float(scores.max())
        low, high = bootstrap_mean_ci(scores)
        if paper is not None and paper.std_pct > 0:
            difference = (mean - paper.mean_pct) / paper.std_pct
    if scores.size >= 2:
        std = float(scores.std(ddof=STD_DDOF))
    config = seeds.configuration.config
    parsed = readable_config(config)
    algorithm = seeds.configuration.algorithm
    wide_test = None
    widely = [r for r in scored if r.wide_test_score is not None and r.wide_test_graphs]
    if widely:     # one wide test per run is stored; seeds scored with another count left out
        graphs = max({r.wide_test_graphs for r in widely},
                     key=lambda g: sum(r.wide_test_graphs == g for r in widely))
        widely = [r for r in widely if r.wide_test_graphs == graphs]
        wide_test = seed_stats.test_noise([100.0 * r.test_score for r in widely],
                                          [100.0 * r.wide_test_score for r in widely],
                                          CLRS30_TEST["count"], graphs)
    return ConfigurationResult(
        seeds.configuration.label, algorithm,
        tuple(int(r.seed) for r in scored), tuple(float(s) for s in scores),
        len(runs), counts["done"], counts["diverged"], counts["failed"], counts["running"],
        counts["pending"], sum(best_step_0(r.best_step) for r in scored), mean, std, best, low,
        high, paper, difference,
        seed_statistics(scores, success_threshold_pct, (paper_seeds,) if paper_seeds else ()),
        shared_data_key(config), wide_test, tuple(int(r.seed) for r in widely),
        tuple(100.0 * r.wide_test_score for r in widely),
        anchors_for(anchors, algorithm, parsed.test_size) if parsed else ())


def compare_rows(configurations: Sequence[ConfigurationResult]) -> tuple[RowComparison, ...]:
    """Every pair of rows with scores, each later row against each earlier one; paired over the
    shared seeds where both rows have the same ``shared_data`` key and at least two shared seeds;
    p-values Holm-adjusted over the pairs."""
    found = []
    for i, reference in enumerate(configurations):
        for other in configurations[i + 1:]:
            if not reference.scores_pct or not other.scores_pct:
                continue
            by_seed_ref = dict(zip(reference.seeds, reference.scores_pct))
            by_seed_other = dict(zip(other.seeds, other.scores_pct))
            shared = sorted(set(by_seed_ref) & set(by_seed_other))
            same_data = (reference.shared_data is not None
                         and reference.shared_data == other.shared_data)
            if same_data and len(shared) >= 2:
                result = seed_stats.compare([by_seed_other[k] for k in shared],
                                            [by_seed_ref[k] for k in shared], paired=True)
                design = f"paired over {len(shared)} shared seeds: same fresh data per seed"
            else:
                result = seed_stats.compare(other.scores_pct, reference.scores_pct, paired=False)
                design = ("unpaired: " + ("fewer than two shared seeds" if same_data else
                                          "different training data per seed"))
            found.append((reference.label, other.label, result, design))
    adjusted = seed_stats.holm([r.p_value for _, _, r, _ in found])
    return tuple(RowComparison(ref, other, result, p, design)
                 for (ref, other, result, design), p in zip(found, adjusted))


def mlflow_experiment(sweep_name: str, spec_yaml: str | None) -> str:
    """The MLflow experiment ``gapsweep run`` logs a sweep to: its file's tracking.experiment,
    else the sweep name."""
    try:
        spec = yaml.safe_load(spec_yaml or "")
    except yaml.YAMLError:
        return sweep_name
    tracking = spec.get("tracking") if isinstance(spec, dict) else None
    chosen = tracking.get("experiment") if isinstance(tracking, dict) else None
    return chosen if isinstance(chosen, str) and chosen.strip() else sweep_name


# -- building the report ---------------------------------------------------------------------------

def build_report(store_or_engine: ResultsStore | Engine, sweep: str | None = None,
                 experiment: str | None = None,
                 paper_tables: Mapping[str, PaperTable] | None = None,
                 success_threshold_pct: float = SUCCESS_THRESHOLD,
                 anchors: Sequence[Anchor] | None = None) -> Report:
    """The report of one sweep (``sweep``), of every sweep of one ``experiment``, or of all sweeps.

    ``paper_tables``: the paper's numbers (default: the packaged ``reported_results.yaml``);
    ``anchors``: other papers' numbers (default: the packaged ``published_anchors.yaml``);
    ``success_threshold_pct``: τ of the "≥ τ%" success rate (exact, 100 %, is always given).
    Raises ``StoreError`` for a sweep name or experiment the
    database does not have, ``ValueError`` for a τ outside (0, 100].
    """
    if not 0 < success_threshold_pct <= 100:
        raise ValueError(f"success threshold = {success_threshold_pct!r} is not allowed; give a "
                         "percentage in (0, 100], e.g. 95")
    store = (store_or_engine if isinstance(store_or_engine, ResultsStore)
             else ResultsStore.over(store_or_engine))
    tables = load_paper_tables() if paper_tables is None else paper_tables
    anchors = load_anchors() if anchors is None else tuple(anchors)
    reports = []
    for entry in store.sweep_seeds(name=sweep, experiment=experiment):
        row = entry.sweep
        paper = tables.get(row.experiment)
        paper_rows = paper.rows if paper else {}
        paper_order = list(paper_rows)
        mine = sorted(entry.configurations, key=lambda c: (
            paper_order.index(c.configuration.label) if c.configuration.label in paper_rows
            else len(paper_order), c.configuration.id))
        results = tuple(_configuration_result(c, paper_rows.get(c.configuration.label),
                                              success_threshold_pct,
                                              paper.seeds if paper else None, anchors)
                        for c in mine)
        labels = {c.configuration.label for c in mine}
        reports.append(SweepReport(
            row.name, row.experiment, row.status, mlflow_experiment(row.name, row.spec_yaml),
            paper, results, tuple(label for label in paper_rows if label not in labels),
            compare_pair(*results) if len(results) == 2 else None, compare_rows(results)))
    return Report(store.display_url, tuple(reports),
                  Conventions(success_threshold_pct=success_threshold_pct))
